package queue

import (
	"context"

	"github.com/syncfanout/syncfanout/barrier"
)

// Ack acknowledges the delivery named by token (Message.AckToken) on
// behalf of clientID. When it was the last ack missing, the next message
// is released in the same step. Acking twice is harmless; a token for a
// message that is no longer in flight returns ErrStaleAck and changes
// nothing.
func (q *Queue) Ack(ctx context.Context, clientID, ackToken string) error {
	t, err := q.verifyAck(ctx, clientID, ackToken)
	if err != nil {
		return err
	}
	return q.ackToken(ctx, t)
}

// acker acks a Message: its own token, issued by this process, goes to
// ackIssued without verifying; another one (the caller changed AckToken)
// goes through Ack, which verifies it. A Queue (Subscription) or a Worker.
type acker interface {
	Ack(ctx context.Context, clientID, ackToken string) error
	ackIssued(ctx context.Context, t token) error
}

// ackIssued acks a token a subscription of this Queue issued, with the
// acks of the room's other local members handed the same message
// (joinAcks).
func (q *Queue) ackIssued(ctx context.Context, t token) error {
	if err := q.check(ctx); err != nil {
		return err
	}
	return q.acks.ack(ctx, t)
}

// ackToken acks for a token already checked (or issued by this process),
// in its shard's next batch when another ack of the shard is in flight.
func (q *Queue) ackToken(ctx context.Context, t token) error {
	if q.shardAcks == nil {
		return q.ackAlone(ctx, t)
	}
	return q.shardAcks.ack(ctx, t)
}

// ackAlone acks t in a call of its own.
func (q *Queue) ackAlone(ctx context.Context, t token) error {
	res, err := q.barrier.Ack(ctx, t.room, t.client, t.seq, t.epoch, t.inc)
	if err != nil {
		q.stats.ackRejected(err)
		return err
	}
	q.router.direct(t.room, res.Appended)
	q.ackCounted(res)
	q.notePartial(t.room, res.Partial)
	return nil
}

// ackCounted counts an accepted ack.
func (q *Queue) ackCounted(res barrier.Acked) {
	q.stats.Acked.Add(1)
	q.stats.observeAck(res)
	q.stats.Released.Add(uint64(res.Released))
}

// notePartial records whether room's quorum completes messages without
// every member, as its last ack reply said: the local coalescing of acks
// (joinAcks, Worker.AckCoalesce) then sends each ack at once, since the
// message need not wait for the members it would wait for.
func (q *Queue) notePartial(room string, partial bool) {
	if partial {
		q.partial.Store(room, struct{}{})
	} else if _, ok := q.partial.Load(room); ok {
		q.partial.Delete(room)
	}
}

func (q *Queue) isPartial(room string) bool {
	_, ok := q.partial.Load(room)
	return ok
}
