package queue

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncfanout/syncfanout/barrier"
)

type ackReq struct {
	client string
	inc    string // the client's membership the token was issued under
	seq    uint64
	epoch  string
	done   chan error // buffered: the batcher never waits for the caller
}

// ackReqs recycles the requests (and their channels) of the acks of
// local members: one per delivery otherwise. A request goes back only
// once its caller received its outcome, the last thing the batch does
// with it.
var ackReqs = sync.Pool{New: func() any { return &ackReq{done: make(chan error, 1)} }}

func newAckReq(t token) *ackReq {
	r := ackReqs.Get().(*ackReq)
	r.client, r.inc, r.seq, r.epoch = t.client, t.inc, t.seq, t.epoch
	return r
}

// outcome waits for the request's outcome and recycles it.
func (r *ackReq) outcome() error {
	return r.recycle(<-r.done)
}

// recycle returns err after putting the request, whose outcome err was
// received, back in the pool.
func (r *ackReq) recycle(err error) error {
	r.client, r.inc, r.epoch = "", "", ""
	ackReqs.Put(r)
	return err
}

type ackBatcher struct {
	pending []*ackReq
	wake    chan struct{} // buffered: an ack arrived while the batcher waits
	since   time.Time     // when the batcher started waiting for company
}

// ackExpect counts, for a room's newest message handed to the worker's
// members, how many were handed it and how many acks for it the worker
// took: the batcher waits for the missing ones (AckCoalesce).
type ackExpect struct {
	epoch         string
	seq           uint64
	handed, acked int
}

// ackBatches holds a worker's acks waiting to be sent, one batcher per
// room. It owns its lock and maps and takes from the worker only what it
// needs, so the batching can be driven without a Worker.
type ackBatches struct {
	coalesce time.Duration                      // WorkerOptions.AckCoalesce
	ctx      context.Context                    // ends the waits for company
	spawn    func(func()) bool                  // runs a batcher; false once stopped
	send     func(room string, batch []*ackReq) // one room's acks, in order
	waiting  *atomic.Int64                      // acks not yet in a call
	// partial, when set, says a room's quorum completes messages without
	// every member (Queue.isPartial): its acks never wait for company.
	partial func(room string) bool

	mu       sync.Mutex
	batchers map[string]*ackBatcher // by room
	expect   map[string]*ackExpect  // by room: acks to wait for (AckCoalesce)
}

func newAckBatches(ctx context.Context, coalesce time.Duration, spawn func(func()) bool, send func(string, []*ackReq), waiting *atomic.Int64) *ackBatches {
	return &ackBatches{
		coalesce: coalesce, ctx: ctx, spawn: spawn, send: send, waiting: waiting,
		batchers: map[string]*ackBatcher{},
		expect:   map[string]*ackExpect{},
	}
}

// expectAcks records that n members were handed message seq of room.
func (a *ackBatches) expectAcks(room, epoch string, seq uint64, n int) {
	if a.coalesce < 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.expect[room]
	if e == nil || e.seq != seq || e.epoch != epoch {
		e = &ackExpect{epoch: epoch, seq: seq}
		a.expect[room] = e
	}
	e.handed += n
}

// forget drops what is expected of a room no longer followed.
func (a *ackBatches) forget(room string) {
	a.mu.Lock()
	delete(a.expect, room)
	a.mu.Unlock()
}

// enqueue adds req to room's batch, starting the room's batcher if none
// runs; false when the batcher could not start (closed).
func (a *ackBatches) enqueue(room string, req *ackReq) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.batchers[room]
	if b == nil {
		b = &ackBatcher{wake: make(chan struct{}, 1)}
		if !a.spawn(func() { a.run(room, b) }) {
			return false
		}
		a.batchers[room] = b
	}
	b.pending = append(b.pending, req)
	// The batcher, when waiting for company, only needs waking once the
	// wait is pointless: every expected ack is in, or one it did not
	// expect came.
	wake := true
	if e := a.expect[room]; e != nil && e.seq == req.seq && e.epoch == req.epoch {
		e.acked++
		wake = e.acked >= e.handed
	}
	a.waiting.Add(1)
	if wake {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// coalesceWait returns how much longer the waiting acks of room should
// wait for the acks of the worker's other members handed the same
// message; 0 to send them now. a.mu must be held.
func (a *ackBatches) coalesceWait(room string, b *ackBatcher) time.Duration {
	e := a.expect[room]
	if a.coalesce < 0 || e == nil || e.acked >= e.handed || a.ctx.Err() != nil {
		return 0
	}
	if a.partial != nil && a.partial(room) {
		return 0
	}
	for _, r := range b.pending {
		if r.seq != e.seq || r.epoch != e.epoch {
			return 0 // not all for the newest message: nothing to gain
		}
	}
	now := time.Now()
	if b.since.IsZero() {
		b.since = now
	}
	return max(0, a.coalesce-now.Sub(b.since))
}

// run sends a room's acks until none are waiting: one call for what was
// waiting when it started (after waiting, AckCoalesce, for the acks of the
// worker's other members handed the same message), then one for
// everything that arrived during that call, and so on. It ends when the
// room is idle, so an idle worker holds no goroutine per room.
func (a *ackBatches) run(room string, b *ackBatcher) {
	for {
		a.mu.Lock()
		if wait := a.coalesceWait(room, b); wait > 0 && len(b.pending) > 0 {
			a.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-b.wake:
			case <-t.C:
			case <-a.ctx.Done():
			}
			t.Stop()
			continue
		}
		b.since = time.Time{}
		batch := b.pending
		b.pending = nil
		if len(batch) == 0 {
			delete(a.batchers, room)
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		a.waiting.Add(-int64(len(batch)))
		a.send(room, batch)
	}
}

// fail hands err to every ack still waiting; the batchers must have ended.
func (a *ackBatches) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for room, b := range a.batchers {
		for _, r := range b.pending {
			r.done <- err
		}
		delete(a.batchers, room)
	}
}

// maxAckBatch bounds the clients of one script call, so one call never
// holds Redis for long.
const maxAckBatch = 512

func (w *Worker) sendAcks(room string, batch []*ackReq) {
	type group struct {
		epoch string
		seq   uint64
	}
	var order []group
	groups := map[group][]*ackReq{}
	for _, r := range batch {
		g := group{r.epoch, r.seq}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], r)
	}
	for _, g := range order {
		reqs := groups[g]
		for len(reqs) > 0 {
			n := min(len(reqs), maxAckBatch)
			w.sendAckGroup(room, g.epoch, g.seq, reqs[:n])
			reqs = reqs[n:]
		}
	}
}

func (w *Worker) sendAckGroup(room, epoch string, seq uint64, reqs []*ackReq) {
	// Not any caller's context: the call carries other callers' acks too.
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	_ = w.q.ackBatch(ctx, room, epoch, seq, reqs, func(refused int) { // an error went to every caller
		w.m.ackCalls.Add(1)
		w.m.acks.Add(int64(len(reqs)))
		w.m.ackRefused.Add(int64(refused))
	})
	cancel()
}

// ackBatch sends the acks of reqs, all for message seq of room under
// epoch, in one ack_batch call and hands every caller its own outcome, as
// Ack would have returned it; on the call's error every caller gets it.
// Every count, the Queue's and count's (if not nil, told how many acks
// were refused), is made before any caller wakes: a caller whose Ack
// returned finds it in the stats.
func (q *Queue) ackBatch(ctx context.Context, room, epoch string, seq uint64, reqs []*ackReq, count func(refused int)) error {
	clients := make([]string, len(reqs))
	incs := make([]string, len(reqs))
	for i, r := range reqs {
		clients[i], incs[i] = r.client, r.inc
	}
	res, err := q.barrier.AckBatch(ctx, room, seq, epoch, clients, incs)
	if err != nil {
		if count != nil {
			count(0)
		}
		for _, r := range reqs {
			r.done <- err
		}
		return err
	}
	// The released message first: waking the callers takes a while, and
	// the next message's fanout should not wait behind it.
	q.router.direct(room, res.Appended)
	refused := 0
	for _, e := range res.Errs {
		if e != nil {
			refused++
			q.stats.ackRejected(e)
			continue
		}
		q.stats.Acked.Add(1)
	}
	q.stats.observeAck(barrier.Acked{Released: res.Released, At: res.At, InFlightAt: res.InFlightAt, Completed: res.Completed})
	q.notePartial(room, res.Partial)
	q.stats.Released.Add(uint64(res.Released))
	if count != nil {
		count(refused)
	}
	for i, r := range reqs {
		r.done <- res.Errs[i]
	}
	return nil
}
