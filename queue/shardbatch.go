package queue

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/barrier"
)

// shardAcks carries the single acks of a Queue (a q.Join that is its
// room's only local holder, Queue.Ack) and its sends to Redis through
// lanes (one per shard on a cluster, one on a single server; acks and
// sends have lanes of their own, so that an ack, which a release may wait
// on, never waits behind a send): while one call of a lane is in flight,
// the next ones of that lane wait, and go out together in one round trip
// when it returns. A call that finds its shard
// idle goes at once, alone, so an idle Queue pays no latency, and there is
// no timer: a batch is whatever arrived during the previous call.
//
// Each ack or send stays its own script call inside the batch (a
// pipeline), so every rule holds as for a lone call; the batch saves the
// round trips and the socket work of the calls it carries, on both sides
// (W2's producers: one round trip per send otherwise, about a third of
// the client's CPU). Only concurrent calls share a batch, so the sends of
// one goroutine keep their order. The first waiter of a batch sends it, so
// no goroutine is started.
type shardAcks struct {
	q     *Queue
	lanes []ackLane // acks
	sends []ackLane // sends
}

type ackLane struct {
	mu      sync.Mutex
	busy    bool // a call or a batch of this shard is in flight
	waiting []*laneAck
}

// laneAck is one call waiting in a lane: the ack of t, or the send s when
// s is set. Once taken out of waiting (under the lane's lock), it gets
// either lead (it sends the batch) or done.
type laneAck struct {
	ctx  context.Context
	t    token
	s    *laneSend
	err  error
	lead chan []*laneAck
	done chan struct{}
}

// laneSend is a send waiting in a lane, and its outcome.
type laneSend struct {
	args barrier.SendArgs
	res  barrier.Enqueued
}

// newShardAcks gives a single server one lane: its shards share one socket
// anyway, and one lane makes the batches largest (measured on W2: 1.1-1.4
// round trips per message against 2.7-2.9 with a lane per shard). On a
// cluster each shard has its own lane, so that a node that is slow or
// failing over holds back only the acks of its own shards.
func newShardAcks(q *Queue) *shardAcks {
	n := 1
	if _, ok := q.rdb.(*redis.ClusterClient); ok {
		n = q.opts.NumShards
	}
	return &shardAcks{q: q, lanes: make([]ackLane, n), sends: make([]ackLane, n)}
}

// lane returns the lane of room's shard.
func (s *shardAcks) lane(room string) *ackLane {
	return &s.lanes[s.q.layout.ShardOf(room)%len(s.lanes)]
}

// maxLaneBatch bounds the calls of one round trip, so one reply stays small.
const maxLaneBatch = 256

// ack acks t, alone or in its shard's next batch.
func (s *shardAcks) ack(ctx context.Context, t token) error {
	return s.call(&laneAck{ctx: ctx, t: t})
}

// send runs the send a, alone or in its room's shard's next batch, and
// hands what it released to the local subscribers.
func (s *shardAcks) send(ctx context.Context, a barrier.SendArgs) (barrier.Enqueued, error) {
	ls := &laneSend{args: a}
	err := s.call(&laneAck{ctx: ctx, s: ls})
	return ls.res, err
}

// alone runs the call a by itself.
func (s *shardAcks) alone(a *laneAck) error {
	if a.s == nil {
		return s.q.ackAlone(a.ctx, a.t)
	}
	return s.q.sendAlone(a.ctx, a.s)
}

// laneOf returns the lane of a's kind (ack or send) for its room's shard.
func (s *shardAcks) laneOf(a *laneAck) *ackLane {
	if a.s != nil {
		return &s.sends[s.q.layout.ShardOf(a.s.args.Room)%len(s.sends)]
	}
	return s.lane(a.t.room)
}

// call runs a, alone when its lane is idle, otherwise in the lane's next
// batch.
func (s *shardAcks) call(a *laneAck) error {
	ctx := a.ctx
	l := s.laneOf(a)
	l.mu.Lock()
	if !l.busy {
		l.busy = true
		l.mu.Unlock()
		err := s.alone(a)
		s.pass(l)
		return err
	}
	a.lead, a.done = make(chan []*laneAck, 1), make(chan struct{})
	l.waiting = append(l.waiting, a)
	l.mu.Unlock()

	select {
	case batch := <-a.lead:
		s.run(batch)
		s.pass(l)
		return a.err
	case <-a.done:
		return a.err
	case <-ctx.Done():
	}
	l.mu.Lock()
	for i, w := range l.waiting {
		if w == a {
			// Withdrawn before it went out: nothing changed in Redis.
			l.waiting = append(l.waiting[:i:i], l.waiting[i+1:]...)
			l.mu.Unlock()
			return ctx.Err()
		}
	}
	l.mu.Unlock()
	// Already taken into a batch: its outcome comes.
	select {
	case batch := <-a.lead:
		s.run(batch)
		s.pass(l)
	case <-a.done:
	}
	return a.err
}

// pass hands the lane, whose call just returned, to the calls that waited
// for it: the first of them sends them all. With none, the lane is idle.
func (s *shardAcks) pass(l *ackLane) {
	l.mu.Lock()
	n := min(len(l.waiting), maxLaneBatch)
	if n == 0 {
		l.busy = false
		l.mu.Unlock()
		return
	}
	batch := l.waiting[:n:n]
	l.waiting = append([]*laneAck(nil), l.waiting[n:]...)
	l.mu.Unlock()
	batch[0].lead <- batch
}

// run runs batch, whose first call is the caller's, in one round trip
// and wakes the others.
func (s *shardAcks) run(batch []*laneAck) {
	q := s.q
	if len(batch) == 1 {
		batch[0].err = s.alone(batch[0])
		return
	}
	var acks []barrier.AckArgs
	var sends []barrier.SendArgs
	for _, a := range batch {
		if a.s != nil {
			sends = append(sends, a.s.args)
		} else {
			acks = append(acks, barrier.AckArgs{Room: a.t.room, Client: a.t.client, Seq: a.t.seq, Epoch: a.t.epoch, Incarnation: a.t.inc})
		}
	}
	// Not the sender's context: the call carries the others' calls. Each
	// waiter's own context was live when it was queued.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(q.ctx), 10*time.Second)
	r := q.barrier.Pipelined(ctx, acks, sends)
	cancel()
	// The released messages first: waking the callers takes a while, and
	// the next messages' fanout should not wait behind it.
	ai, si := 0, 0
	for _, a := range batch {
		if a.s != nil {
			if !r.SendRetry[si] && r.SendErrs[si] == nil {
				q.router.direct(a.s.args.Room, r.Sends[si].Appended)
			}
			si++
		} else {
			if !r.AckRetry[ai] && r.AckErrs[ai] == nil {
				q.router.direct(a.t.room, r.Acks[ai].Appended)
			}
			ai++
		}
	}
	ai, si = 0, 0
	for i, a := range batch {
		if a.s != nil {
			switch {
			case r.SendRetry[si]:
				a.err = q.sendAlone(a.ctx, a.s)
			case r.SendErrs[si] != nil:
				a.err = r.SendErrs[si]
			default:
				a.s.res = r.Sends[si]
			}
			si++
		} else {
			switch {
			case r.AckRetry[ai]:
				a.err = q.ackAlone(a.ctx, a.t)
			case r.AckErrs[ai] != nil:
				q.stats.ackRejected(r.AckErrs[ai])
				a.err = r.AckErrs[ai]
			default:
				q.ackCounted(r.Acks[ai])
				q.notePartial(a.t.room, r.Acks[ai].Partial)
			}
			ai++
		}
		if i > 0 {
			close(a.done)
		}
	}
}
