package queue

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/internal/streamreader"
	"github.com/syncfanout/syncfanout/streams"
)

// router hands the entries of followed room streams to this process's
// consumers of them (roomSink): subscriptions and workers' rooms, in one
// registry. It keeps at most one reader (one blocked connection) per
// shard, whatever the number of rooms and consumers (reader.go).
type router struct {
	q *Queue

	mu           sync.Mutex
	closed       bool
	readerClient redis.UniversalClient
	ownsClient   bool
	readers      map[int]*streamreader.Reader
	warnBeat     warnLimiter
	warnRead     warnLimiter
	sinks        map[string][]roomSink // by room
	following    map[roomSink]bool     // every registered sink: whether it had the reader follow its room
	workers      map[*Worker]struct{}  // closed with the Queue
	fails        map[int]*shardFail    // by shard: readers' failures (readfail.go)
	failing      atomic.Int64          // shards whose reader has failed readFailAfter times in a row (readfail.go)
}

func newRouter(q *Queue) *router {
	return &router{
		q: q, readers: map[int]*streamreader.Reader{}, sinks: map[string][]roomSink{},
		following: map[roomSink]bool{}, workers: map[*Worker]struct{}{},
	}
}

// roomSink is a consumer of one room's stream in this process: a
// Subscription or a worker's room. It receives the room's entries in
// order, from the shard's reader (push) or from a script reply of this
// process (pushDirect, taken only when its position is prev); its cursor
// takes each once. Both run on other goroutines and must not block.
type roomSink interface {
	push(ev streams.Event, err error)
	pushDirect(prev string, evs []streams.Event)
	// roomReset drops what Redis no longer holds after the reader's
	// reconnect (reset.go); read is the reader's position, read before c.
	roomReset(c roomCheck, read string)
}

// add makes s receive room's entries. It must precede the join (or the
// read of the stream's tail) that starts s's cursor, so that nothing
// released after that point can be dispatched before s is there.
func (r *router) add(room string, s roomSink) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return sferr.ErrClosed
	}
	if _, ok := r.following[s]; !ok {
		r.following[s] = false
		r.sinks[room] = append(r.sinks[room], s)
	}
	return nil
}

// remove stops s receiving room's entries, and undoes its follow of the
// room (follow). Idempotent.
func (r *router) remove(room string, s roomSink) {
	r.mu.Lock()
	following, ok := r.following[s]
	if !ok {
		r.mu.Unlock()
		return
	}
	delete(r.following, s)
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
	rd := r.readers[r.q.layout.ShardOf(room)]
	r.mu.Unlock()
	if rd != nil && following {
		rd.Unfollow(r.q.layout.Stream(room))
	}
}

// sinksOf returns room's sinks.
func (r *router) sinksOf(room string) []roomSink {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]roomSink(nil), r.sinks[room]...)
}

// subscriptionsLocked returns the Subscriptions of the rooms keep accepts
// (all when keep is nil), by room; r.mu must be held.
func (r *router) subscriptionsLocked(keep func(room string) bool) map[string][]*Subscription {
	out := map[string][]*Subscription{}
	for room, list := range r.sinks {
		if keep != nil && !keep(room) {
			continue
		}
		for _, s := range list {
			if sub, ok := s.(*Subscription); ok {
				out[room] = append(out[room], sub)
			}
		}
	}
	return out
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
	sinks := r.sinksOf(room)
	r.handing(room, "", ev, sinks)
	for _, s := range sinks {
		s.push(ev, err)
	}
}

// direct hands the entries a script of this process appended to room's
// sinks, saving them the wait for their reader.
func (r *router) direct(room string, a barrier.Appended) {
	if len(a.Entries) == 0 || a.Prev == "" {
		return
	}
	sinks := r.sinksOf(room)
	if len(sinks) == 0 {
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
		r.handing(room, a.Prev, ev, sinks) // a subscription at Prev takes them all
	}
	for _, s := range sinks {
		s.pushDirect(a.Prev, evs)
	}
}

// handing tells the Queue's ack coalescer which local members are about to
// be handed the message ev (those at prev, or anywhere before ev if prev
// is ""), so that their acks wait for each other; before the push, so the
// first ack back already knows of the others. Workers coalesce their acks
// themselves (worker_ackbatch.go).
func (r *router) handing(room, prev string, ev streams.Event, sinks []roomSink) {
	if ev.Type != streams.Message && ev.Type != undecodable {
		return
	}
	var ids []string
	epoch := ""
	for _, x := range sinks {
		s, ok := x.(*Subscription)
		if !ok {
			continue
		}
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
	for _, list := range r.subscriptionsLocked(nil) {
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
	r.readers = map[int]*streamreader.Reader{}
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
