package queue

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

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

// follow has the shard's reader read sub's room after the ID from.
func (r *router) follow(ctx context.Context, sub *Subscription, from string) error {
	r.mu.Lock()
	rd, err := r.readerLocked(r.q.layout.ShardOf(sub.room))
	if err != nil {
		r.mu.Unlock()
		return err
	}
	sub.following = true
	r.mu.Unlock()
	return rd.Follow(ctx, sub.room, r.q.layout.Stream(sub.room), from)
}

// readerLocked returns the shard's reader, starting it on first use; r.mu
// must be held.
func (r *router) readerLocked(shard int) (*streams.Reader, error) {
	if r.closed {
		return nil, sferr.ErrClosed
	}
	if r.readerClient == nil {
		r.readerClient, r.ownsClient = dedicatedClient(r.q.rdb, r.q.opts.NumShards+2)
		watchNewClient(r.readerClient)
	}
	rd, ok := r.readers[shard]
	if !ok {
		rd = streams.NewReader(r.readerClient, r.dispatch, streams.ReaderOptions{
			OnError: func(err error) {
				r.warnRead.warn(r.q.opts.Logger, "syncfanout: stream reader", "shard", shard, "err", err)
				r.readerFailed(shard, err)
			},
			OnReconnect: r.onReconnect(shard),
		})
		r.readers[shard] = rd
	}
	return rd, nil
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

// heartbeat beats for every local subscription, one script call per room,
// and reports whether a room's call failed.
func (r *router) heartbeat(ctx context.Context) (failed bool) {
	r.mu.Lock()
	byRoom := make(map[string][]*Subscription, len(r.subs))
	for room, list := range r.subs {
		byRoom[room] = append([]*Subscription(nil), list...)
	}
	r.mu.Unlock()
	// Rooms beat in parallel: one after the other, a process with many
	// rooms could take longer than ClientTimeout to get round them.
	rooms := make([]string, 0, len(byRoom))
	for room := range byRoom {
		rooms = append(rooms, room)
	}
	var bad atomic.Bool
	forEachBounded(rooms, maxParallelCalls, func(room string) {
		if !r.heartbeatRoom(ctx, room, byRoom[room]) {
			bad.Store(true)
		}
	})
	return bad.Load()
}

func (r *router) heartbeatRoom(ctx context.Context, room string, list []*Subscription) bool {
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.clientID
	}
	alive, err := r.q.barrier.Heartbeat(ctx, room, ids)
	if err != nil {
		if ctx.Err() == nil {
			r.warnBeat.warn(r.q.opts.Logger, "syncfanout: heartbeat", "room", room, "err", err)
		}
		return false
	}
	for i, ok := range alive {
		if !ok && list[i].joined() {
			r.lost(ctx, list[i])
		}
	}
	return true
}

// heartbeatLoop beats every interval, and sooner after a failed round: a
// member whose beat failed (its room's master was just killed, say) beats
// again as soon as Redis answers, rather than an interval later, so that
// a failover within ClientTimeout/3 evicts nobody.
func (r *router) heartbeatLoop(ctx context.Context, every time.Duration) {
	heartbeatLoop(ctx, every, r.heartbeat)
}

// heartbeatLoop runs beat every interval, retrying a failed round after a
// backoff (at most 1s, and never slower than the interval).
func heartbeatLoop(ctx context.Context, every time.Duration, beat func(context.Context) bool) {
	var b retryBackoff
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		began := time.Now()
		if beat(ctx) {
			b.reset()
			t.Reset(every - min(time.Since(began), every))
		} else {
			t.Reset(b.next(min(every, time.Second)))
		}
	}
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

// dedicatedClient returns a client whose connections are kept for blocking
// reads, so readers never take connections from the caller's pool. Clients
// of other kinds are used as they are.
func dedicatedClient(rdb redis.UniversalClient, size int) (redis.UniversalClient, bool) {
	switch c := unwrapClient(rdb).(type) {
	case *redis.Client:
		o := *c.Options()
		o.PoolSize = size
		o.MinIdleConns = 0
		return redis.NewClient(&o), true
	case *redis.ClusterClient:
		o := *c.Options()
		o.PoolSize = size
		o.MinIdleConns = 0
		return redis.NewClusterClient(&o), true
	}
	return rdb, false
}

// housekeeping evicts silent members of any room, in any process's name,
// deletes rooms idle past IdleRoomTTL and trims idle rooms' streams:
// each round asks every shard's deadline index for due rooms, so it costs
// O(shards + due rooms), never O(rooms). It also checks the deployment's
// NumShards (shards.go): one more script call, at most every
// minConfigEvery.
func (q *Queue) housekeeping() {
	defer q.wg.Done()
	every := q.opts.HousekeepingInterval
	lastConfig := time.Now() // New has just checked
	configFailing := false
	t := time.NewTimer(jitter(every))
	defer t.Stop()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
		}
		// every/10 of slack: jitter brings rounds up to 10% early.
		if time.Since(lastConfig) >= configEvery(every)-every/10 {
			err := q.checkConfig(q.ctx)
			lastConfig = time.Now()
			// Once per outage: while Redis is down the reap below says so
			// every round already.
			if err != nil && q.ctx.Err() == nil && !configFailing {
				q.opts.Logger.Warn("syncfanout: housekeeping: checking the deployment's NumShards", "err", err)
			}
			configFailing = err != nil
		}
		q.reapDue(q.ctx)
		t.Reset(jitter(every))
	}
}

// jitter spreads the rounds of many processes by up to ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

func (q *Queue) reapDue(ctx context.Context) {
	for shard := range q.layout.NumShards() {
		rooms, err := q.barrier.Due(ctx, shard, 100)
		if err != nil {
			if ctx.Err() == nil {
				q.warnHousekeeping.warn(q.opts.Logger, "syncfanout: housekeeping", "shard", shard, "err", err)
			}
			return
		}
		for _, room := range rooms {
			_, _, expired, err := q.barrier.Reap(ctx, room)
			if err != nil && ctx.Err() == nil {
				q.warnHousekeeping.warn(q.opts.Logger, "syncfanout: housekeeping", "room", room, "err", err)
			}
			if expired {
				q.stats.ExpiredRooms.Add(1)
			}
		}
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

// followRoom has the shard's reader read room after the ID from. When it
// reports followed (even with an error: the reader then picks the room up
// at its next read), one unfollowRoom must follow.
func (r *router) followRoom(ctx context.Context, room, from string) (followed bool, err error) {
	r.mu.Lock()
	rd, err := r.readerLocked(r.q.layout.ShardOf(room))
	r.mu.Unlock()
	if err != nil {
		return false, err
	}
	return true, rd.Follow(ctx, room, r.q.layout.Stream(room), from)
}

func (r *router) unfollowRoom(room string) {
	r.mu.Lock()
	rd := r.readers[r.q.layout.ShardOf(room)]
	r.mu.Unlock()
	if rd != nil {
		rd.Unfollow(r.q.layout.Stream(room))
	}
}
