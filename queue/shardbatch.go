package queue

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/barrier"
)

// shardAcks carries the single acks of a Queue (a q.Join that is its
// room's only local holder, Queue.Ack) to Redis through lanes (one per
// shard on a cluster, one on a single server): while one ack of a lane is
// in flight, the next ones of that lane wait, and go out together in one
// round trip when it returns. An ack that finds its shard
// idle goes at once, alone, so an idle Queue pays no latency, and there is
// no timer: a batch is whatever arrived during the previous call.
//
// Each ack stays its own ack.lua call inside the batch (a pipeline), so
// every rule holds as for a lone ack; the batch saves the round trips and
// the socket work of the calls it carries. The first waiter of a batch
// sends it, so no goroutine is started.
type shardAcks struct {
	q     *Queue
	lanes []ackLane
}

type ackLane struct {
	mu      sync.Mutex
	busy    bool // an ack or a batch of this shard is in flight
	waiting []*laneAck
}

// laneAck is one ack waiting in a lane. Once taken out of waiting (under
// the lane's lock), it gets either lead (it sends the batch) or done.
type laneAck struct {
	ctx  context.Context
	t    token
	err  error
	lead chan []*laneAck
	done chan struct{}
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
	return &shardAcks{q: q, lanes: make([]ackLane, n)}
}

// lane returns the lane of room's shard.
func (s *shardAcks) lane(room string) *ackLane {
	return &s.lanes[s.q.layout.ShardOf(room)%len(s.lanes)]
}

// maxLaneBatch bounds the acks of one round trip, so one reply stays small.
const maxLaneBatch = 256

// ack acks t, alone or in its shard's next batch.
func (s *shardAcks) ack(ctx context.Context, t token) error {
	l := s.lane(t.room)
	l.mu.Lock()
	if !l.busy {
		l.busy = true
		l.mu.Unlock()
		err := s.q.ackAlone(ctx, t)
		s.pass(l)
		return err
	}
	a := &laneAck{ctx: ctx, t: t, lead: make(chan []*laneAck, 1), done: make(chan struct{})}
	l.waiting = append(l.waiting, a)
	l.mu.Unlock()

	select {
	case batch := <-a.lead:
		s.send(batch)
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
		s.send(batch)
		s.pass(l)
	case <-a.done:
	}
	return a.err
}

// pass hands the lane, whose call just returned, to the acks that waited
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

// send runs batch, whose first ack is the caller's, in one round trip and
// wakes the others.
func (s *shardAcks) send(batch []*laneAck) {
	q := s.q
	if len(batch) == 1 {
		batch[0].err = q.ackAlone(batch[0].ctx, batch[0].t)
		return
	}
	args := make([]barrier.AckArgs, len(batch))
	for i, a := range batch {
		args[i] = barrier.AckArgs{Room: a.t.room, Client: a.t.client, Seq: a.t.seq, Epoch: a.t.epoch, Incarnation: a.t.inc}
	}
	// Not the sender's context: the call carries the others' acks. Each
	// waiter's own context was live when it was queued.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(q.ctx), 10*time.Second)
	res, errs, retry := q.barrier.AckPipelined(ctx, args)
	cancel()
	// The released messages first: waking the callers takes a while, and
	// the next messages' fanout should not wait behind it.
	for i, a := range batch {
		if !retry[i] && errs[i] == nil {
			q.router.direct(a.t.room, res[i].Appended)
		}
	}
	for i, a := range batch {
		switch {
		case retry[i]:
			a.err = q.ackAlone(a.ctx, a.t)
		case errs[i] != nil:
			q.stats.ackRejected(errs[i])
			a.err = errs[i]
		default:
			q.ackCounted(res[i])
			q.notePartial(a.t.room, res[i].Partial)
		}
		if i > 0 {
			close(a.done)
		}
	}
}
