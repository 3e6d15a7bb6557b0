package queue

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/streams"
)

// router hands the entries of followed room streams to the in-process
// subscriptions. It keeps at most one reader (one blocked connection) per
// shard, whatever the number of rooms and subscriptions.
type router struct {
	q *Queue

	mu           sync.Mutex
	closed       bool
	readerClient redis.UniversalClient
	ownsClient   bool
	readers      map[int]*streams.Reader
	warnBeat     warnLimiter
	warnRead     warnLimiter
	subs         map[string][]*Subscription // by room
	sinks        map[string][]roomSink      // by room: workers' rooms (worker_rooms.go)
	workers      map[*Worker]struct{}       // closed with the Queue
	fails        map[int]*shardFail         // by shard: readers' failures (readfail.go)
}

func newRouter(q *Queue) *router {
	return &router{
		q: q, readers: map[int]*streams.Reader{}, subs: map[string][]*Subscription{},
		sinks: map[string][]roomSink{}, workers: map[*Worker]struct{}{},
	}
}

// register makes sub receive its room's entries; it must precede the join,
// so nothing released after the join can be dispatched before sub is there.
func (r *router) register(sub *Subscription) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return sferr.ErrClosed
	}
	r.subs[sub.room] = append(r.subs[sub.room], sub)
	return nil
}

func (r *router) unregister(sub *Subscription) {
	r.mu.Lock()
	list := r.subs[sub.room]
	for i, s := range list {
		if s == sub {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.subs, sub.room)
	} else {
		r.subs[sub.room] = list
	}
	rd := r.readers[r.q.layout.ShardOf(sub.room)]
	following := sub.following
	sub.following = false
	r.mu.Unlock()
	if rd != nil && following {
		rd.Unfollow(r.q.layout.Stream(sub.room))
	}
}

// roomSink receives the entries of one room's stream in order, from the
// shard's reader (push) or from a script reply of this process (pushDirect,
// taken only when its position is prev). Both run on other goroutines and
// must not block.
type roomSink interface {
	push(ev streams.Event, err error)
	pushDirect(prev string, evs []streams.Event)
}

// addSink makes s receive room's entries; it precedes following the room.
func (r *router) addSink(room string, s roomSink) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return sferr.ErrClosed
	}
	r.sinks[room] = append(r.sinks[room], s)
	return nil
}

func (r *router) removeSink(room string, s roomSink) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.sinks[room]
	for i, x := range list {
		if x == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.sinks, room)
	} else {
		r.sinks[room] = list
	}
}

// addWorker registers w to be closed with the Queue; ErrClosed once the
// router closed, so no worker outlives it.
func (r *router) addWorker(w *Worker) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return sferr.ErrClosed
	}
	r.workers[w] = struct{}{}
	return nil
}

func (r *router) removeWorker(w *Worker) {
	r.mu.Lock()
	delete(r.workers, w)
	r.mu.Unlock()
}

func (r *router) dispatch(room string, ev streams.Event, err error) {
	// streams.Decode, which the reader ran, checked the payload too: an
	// entry is counted here once, whatever the number of local subscribers.
	if err != nil {
		r.q.stats.Invalid.Add(1)
		r.q.opts.Logger.Warn("syncfanout: skipped a malformed stream entry", "room", room, "err", err)
		// Still passed on so positions move past it, and members ack it if
		// it may be the message their room waits on.
		ev = refusedEvent(room, ev.ID, err)
	}
	r.mu.Lock()
	subs := append([]*Subscription(nil), r.subs[room]...)
	sinks := append([]roomSink(nil), r.sinks[room]...)
	r.mu.Unlock()
	r.handing(room, "", ev, subs)
	for _, s := range subs {
		s.push(ev)
	}
	for _, s := range sinks {
		s.push(ev, err)
	}
}

// direct hands the entries a script of this process appended to the local
// subscriptions of room, saving them the wait for their reader.
func (r *router) direct(room string, a barrier.Appended) {
	if len(a.Entries) == 0 || a.Prev == "" {
		return
	}
	r.mu.Lock()
	subs := append([]*Subscription(nil), r.subs[room]...)
	sinks := append([]roomSink(nil), r.sinks[room]...)
	r.mu.Unlock()
	if len(subs)+len(sinks) == 0 {
		return
	}
	evs := make([]streams.Event, 0, len(a.Entries))
	for _, m := range a.Entries {
		ev, err := streams.Decode(room, m)
		if err != nil {
			return // cannot happen for entries our scripts wrote; the reader will report it
		}
		evs = append(evs, ev)
	}
	for _, ev := range evs {
		r.handing(room, a.Prev, ev, subs) // a subscription at Prev takes them all
	}
	for _, s := range subs {
		s.pushDirect(a.Prev, evs)
	}
	for _, s := range sinks {
		s.pushDirect(a.Prev, evs)
	}
}

// handing tells the Queue's ack coalescer which local members are about to
// be handed the message ev (those at prev, or anywhere before ev if prev
// is ""), so that their acks wait for each other; before the push, so the
// first ack back already knows of the others.
func (r *router) handing(room, prev string, ev streams.Event, subs []*Subscription) {
	if ev.Type != streams.Message && ev.Type != undecodable {
		return
	}
	var ids []string
	epoch := ""
	for _, s := range subs {
		if ep, ok := s.handing(prev, ev.ID); ok && (epoch == "" || ep == epoch) {
			epoch = ep
			ids = append(ids, s.clientID)
		}
	}
	r.q.acks.handing(room, epoch, ev.MessageID, ids)
}

// close ends every subscription (their clients leave their rooms, so the
// rooms do not wait for them until they time out) and stops the readers.
func (r *router) close() {
	r.mu.Lock()
	r.closed = true
	var all []*Subscription
	for _, list := range r.subs {
		all = append(all, list...)
	}
	workers := make([]*Worker, 0, len(r.workers))
	for w := range r.workers {
		workers = append(workers, w)
	}
	r.mu.Unlock()
	// Workers first (NewWorker refuses once closed is set): their clients
	// leave their rooms too.
	for _, w := range workers {
		_ = w.Close()
	}
	// Detached from any caller: Close has no context, and leaving is what
	// keeps the other members' rooms moving. Bounded so Close stays prompt.
	ctx, cancel := context.WithTimeout(context.Background(), leaveOnCloseTimeout)
	defer cancel()
	for _, s := range all {
		_ = s.leave(ctx)
	}
	r.mu.Lock()
	readers := r.readers
	r.readers = map[int]*streams.Reader{}
	client, owns := r.readerClient, r.ownsClient
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, rd := range readers {
		wg.Add(1)
		go func() { defer wg.Done(); rd.Close() }() // closes its own connection
	}
	wg.Wait()
	if owns && client != nil {
		_ = client.Close()
	}
}
