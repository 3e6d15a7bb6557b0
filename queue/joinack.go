package queue

import (
	"context"
	"sync"
	"time"
)

// joinAcks coalesces the acks of the Queue's own subscriptions (q.Join) of
// a room, the way a Worker coalesces its clients' acks: when several local
// members were handed the same message, their acks wait for each other and
// go in one ack_batch call, which costs Redis about what one ack does. The
// room cannot release before its slowest member anyway, so waiting for the
// local ones adds no release latency; a member that does not ack holds the
// others back at most the coalesce window. A lone local holder (S=1, or
// the last of a room whose others acked already) acks at once with ack.lua.
//
// Under a Policy.Window several messages of a room are handed at once:
// each has its own set of holders, and an ack, being cumulative, also
// takes its member out of the sets of the messages before it. Under a
// quorum the message need not wait for every member, so acks go out at
// once (Queue.notePartial).
//
// There is no goroutine: the ack that completes the set of holders sends
// the batch itself; otherwise the first waiter whose window ends does.
type joinAcks struct {
	q      *Queue
	window time.Duration

	mu sync.Mutex
	// rooms holds, by room, the messages handed to local members whose
	// acks are expected, oldest first: one at a time in lock-step, up to
	// the window under a Policy.Window (at most maxJoinAckRecords).
	rooms map[string][]*joinAckRoom
}

// maxJoinAckRecords bounds the messages of a room whose local acks are
// awaited: beyond it, the oldest one's acks go out without waiting.
const maxJoinAckRecords = 64

// joinAckRoom is a message of a room handed to local members.
type joinAckRoom struct {
	epoch   string
	seq     uint64
	waiting map[string]bool // members handed it that have not acked yet
	batch   *joinAckBatch   // acks waiting for the others', if any
}

type joinAckBatch struct {
	reqs []*ackReq
	// timer kicks the batch when its window ends: one per batch, not one
	// per waiting member.
	timer  *time.Timer
	kick   chan struct{} // closed when waiting longer is pointless
	kicked bool
	taken  bool // a caller is sending it
}

func newJoinAcks(q *Queue) *joinAcks {
	window := defaultAckCoalesce
	if at := q.opts.AckTimeout; at > 0 && window > at/10 {
		window = at / 10
	}
	return &joinAcks{q: q, window: window, rooms: map[string][]*joinAckRoom{}}
}

// findLocked returns the record of message seq of room under epoch.
func (a *joinAcks) findLocked(room, epoch string, seq uint64) *joinAckRoom {
	for _, e := range a.rooms[room] {
		if e.seq == seq && e.epoch == epoch {
			return e
		}
	}
	return nil
}

// handing records that the members ids, all under epoch, are about to be
// handed message seq of room. Called before the entry is pushed to them,
// so an ack that comes back at once already knows about the others.
func (a *joinAcks) handing(room, epoch string, seq uint64, ids []string) {
	if len(ids) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var recs []*joinAckRoom
	for _, e := range a.rooms[room] {
		if e.epoch != epoch {
			e.kickLocked() // the room was reset: nothing to wait for
			continue
		}
		recs = append(recs, e)
	}
	e := a.findLocked(room, epoch, seq)
	if e == nil {
		if n := len(recs); n > 0 && recs[n-1].seq > seq {
			a.setLocked(room, recs)
			return // a reader behind the replies: that message is done
		}
		e = &joinAckRoom{epoch: epoch, seq: seq, waiting: make(map[string]bool, len(ids))}
		recs = append(recs, e)
		if len(recs) > maxJoinAckRecords {
			recs[0].kickLocked()
			recs = recs[1:]
		}
	}
	a.setLocked(room, recs)
	for _, id := range ids {
		e.waiting[id] = true
	}
}

func (a *joinAcks) setLocked(room string, recs []*joinAckRoom) {
	if len(recs) == 0 {
		delete(a.rooms, room)
	} else {
		a.rooms[room] = recs
	}
}

// coveredLocked forgets client in the records of room's messages before
// seq: acks are cumulative, so its ack of seq covers them.
func (a *joinAcks) coveredLocked(room, epoch, client string, seq uint64) {
	for _, e := range a.rooms[room] {
		if e.seq >= seq || e.epoch != epoch || !e.waiting[client] {
			continue
		}
		delete(e.waiting, client)
		if len(e.waiting) == 0 {
			e.kickLocked()
			a.tidyLocked(room, e)
		}
	}
}

// gone forgets a member that ended (closed, left, evicted): nobody waits
// for its ack any more.
func (a *joinAcks) gone(room, client string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.rooms[room] {
		if !e.waiting[client] {
			continue
		}
		delete(e.waiting, client)
		if len(e.waiting) == 0 {
			e.kickLocked()
			a.tidyLocked(room, e)
		}
	}
}

// kickLocked tells the waiters of the pending batch to send it now.
func (e *joinAckRoom) kickLocked() {
	if b := e.batch; b != nil && !b.kicked {
		b.kicked = true
		close(b.kick)
	}
}

// takeLocked hands the pending batch b to the caller to send, unless
// another caller took it.
func (a *joinAcks) takeLocked(room string, e *joinAckRoom, b *joinAckBatch) bool {
	if b.taken {
		return false
	}
	b.taken = true
	if b.timer != nil {
		b.timer.Stop()
	}
	if e.batch == b {
		e.batch = nil
	}
	a.tidyLocked(room, e)
	return true
}

// tidyLocked drops the room's record once nothing is expected of it, so
// an idle room holds no memory.
func (a *joinAcks) tidyLocked(room string, e *joinAckRoom) {
	if len(e.waiting) != 0 || e.batch != nil {
		return
	}
	recs := a.rooms[room]
	for i, r := range recs {
		if r == e {
			a.setLocked(room, append(recs[:i:i], recs[i+1:]...))
			return
		}
	}
}

// ack acks the token t of a local subscription, with the acks of the
// other local members handed the same message when there are any.
func (a *joinAcks) ack(ctx context.Context, t token) error {
	if a.q.isPartial(t.room) {
		return a.q.ackToken(ctx, t) // a quorum need not wait for the others
	}
	a.mu.Lock()
	a.coveredLocked(t.room, t.epoch, t.client, t.seq)
	e := a.findLocked(t.room, t.epoch, t.seq)
	if e == nil || !e.waiting[t.client] {
		// Not the message the local members wait on (a stale or repeated
		// ack, a reset): alone, as Queue.Ack does.
		a.mu.Unlock()
		return a.q.ackToken(ctx, t)
	}
	delete(e.waiting, t.client)
	if e.batch == nil && len(e.waiting) == 0 {
		a.tidyLocked(t.room, e)
		a.mu.Unlock()
		return a.q.ackToken(ctx, t) // the only holder left: nothing to wait for
	}
	req := newAckReq(t)
	b := e.batch
	if b == nil {
		b = &joinAckBatch{kick: make(chan struct{})}
		e.batch = b
		if len(e.waiting) > 0 {
			b.timer = time.AfterFunc(a.window, func() {
				a.mu.Lock()
				if !b.kicked {
					b.kicked = true
					close(b.kick)
				}
				a.mu.Unlock()
			})
		}
	}
	b.reqs = append(b.reqs, req)
	if len(e.waiting) == 0 {
		a.takeLocked(t.room, e, b)
		a.mu.Unlock()
		a.send(t.room, t.epoch, t.seq, b.reqs)
		return req.outcome()
	}
	a.mu.Unlock()

	select {
	case err := <-req.done:
		return req.recycle(err)
	case <-b.kick:
	case <-ctx.Done():
		a.mu.Lock()
		if !b.taken {
			// Withdrawn before it went out: a done context changes nothing.
			for i, r := range b.reqs {
				if r == req {
					b.reqs = append(b.reqs[:i:i], b.reqs[i+1:]...)
					break
				}
			}
			if len(b.reqs) == 0 {
				a.takeLocked(t.room, e, b)
			}
		}
		a.mu.Unlock()
		return ctx.Err()
	}
	a.mu.Lock()
	mine := a.takeLocked(t.room, e, b)
	a.mu.Unlock()
	if mine {
		a.send(t.room, t.epoch, t.seq, b.reqs)
	}
	select {
	case err := <-req.done:
		return req.recycle(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *joinAcks) send(room, epoch string, seq uint64, reqs []*ackReq) {
	if len(reqs) == 0 {
		return
	}
	for len(reqs) > 0 {
		n := min(len(reqs), maxAckBatch)
		// Not the sending caller's context: the call carries the others' acks.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.q.ctx), 10*time.Second)
		_ = a.q.ackBatch(ctx, room, epoch, seq, reqs[:n], nil) // each caller got its outcome
		cancel()
		reqs = reqs[n:]
	}
}
