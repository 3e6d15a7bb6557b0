package queue

import (
	"context"
	"fmt"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/keys"
)

// Send enqueues data for every member of room. data is msgpack-encoded
// unless it is a []byte, which is stored untouched. It returns the
// message's ID, unique within the room. The message is released when every
// member acked the previous one, lowest priority number first, then in the
// order Redis accepted the sends.
func (q *Queue) Send(ctx context.Context, room string, data any, opts ...SendOption) (id uint64, err error) {
	return q.sendOne(ctx, room, data, opts, false)
}

// sendOne is Send, or SendOutOfBand when oob is set: they differ only in
// the script that stores the message and in what counts it.
func (q *Queue) sendOne(ctx context.Context, room string, data any, opts []SendOption, oob bool) (id uint64, err error) {
	if err := q.check(ctx); err != nil {
		return 0, err
	}
	so, err := q.sendOptions(room, opts)
	if err != nil {
		return 0, err
	}
	done, err := q.startSend(ctx, room, &so, oob, 1)
	if done != nil {
		defer func() { done(oneID(id), err) }()
	}
	if err != nil {
		return 0, err
	}
	payload, err := q.encode(data, so)
	if err != nil {
		return 0, err
	}
	if oob {
		res, err := q.oob.Send(ctx, room, so.producer, payload)
		if err != nil {
			return 0, err
		}
		q.stats.OutOfBand.Add(1)
		return res.Seq, nil
	}
	res, err := q.enqueue(ctx, room, so, payload)
	if err != nil {
		return 0, err
	}
	return res.Seq, nil
}

func oneID(id uint64) []uint64 {
	if id == 0 {
		return nil
	}
	return []uint64{id}
}

// enqueue runs the send script for checked payloads, counts them and hands
// what it released to this process's subscribers.
func (q *Queue) enqueue(ctx context.Context, room string, so sendOptions, payloads ...[]byte) (res barrier.Enqueued, err error) {
	a := barrier.SendArgs{Room: room, Priority: so.priority, Producer: so.producer, AckTimeout: so.ackDeadline, Payloads: payloads}
	if q.shardAcks != nil {
		res, err = q.shardAcks.send(ctx, a) // with the concurrent calls of its shard
	} else {
		ls := &laneSend{args: a}
		err = q.sendAlone(ctx, ls)
		res = ls.res
	}
	if err != nil {
		return res, refusedSend(room, len(payloads), err)
	}
	q.stats.Sent.Add(uint64(len(payloads)))
	q.stats.Dropped.Add(uint64(res.Dropped))
	q.stats.Released.Add(uint64(res.Released))
	return res, nil
}

// sendAlone runs the send s in a call of its own and hands what it
// released to the local subscribers.
func (q *Queue) sendAlone(ctx context.Context, s *laneSend) error {
	a := s.args
	res, err := q.barrier.Enqueue(ctx, a.Room, a.Priority, a.Producer, a.AckTimeout, a.Payloads...)
	if err != nil {
		return err
	}
	s.res = res
	q.router.direct(a.Room, res.Appended)
	return nil
}

// MaxBatch is the most messages one SendBatch call takes: a batch is one
// script run, during which Redis serves nobody else.
const MaxBatch = 1000

// SendBatch enqueues every element of data for every member of room in one
// atomic step, as the same number of Sends in a row would, and returns
// their IDs, which are consecutive. Every message gets the same options.
// It costs Redis about what one Send does, so a producer with several
// messages at hand sends many times more per second this way. An empty
// batch or one of more than MaxBatch messages is an ErrInvalidBatch; a
// payload that fails Send's checks fails the whole batch, and nothing is
// sent.
func (q *Queue) SendBatch(ctx context.Context, room string, data []any, opts ...SendOption) (ids []uint64, err error) {
	if err := q.check(ctx); err != nil {
		return nil, err
	}
	if len(data) == 0 || len(data) > MaxBatch {
		return nil, fmt.Errorf("%w: %d messages, want 1..%d", ErrInvalidBatch, len(data), MaxBatch)
	}
	so, err := q.sendOptions(room, opts)
	if err != nil {
		return nil, fmt.Errorf("message 0: %w", err)
	}
	done, err := q.startSend(ctx, room, &so, false, len(data))
	if done != nil {
		defer func() { done(ids, err) }()
	}
	if err != nil {
		return nil, err
	}
	if err := checkHeaders(so.headers); err != nil {
		return nil, fmt.Errorf("message 0: %w", err)
	}
	payloads := make([][]byte, len(data))
	for i := range data {
		if payloads[i], err = encodePayload(data[i], q.opts.MaxPayloadBytes, so.headers); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
	}
	res, err := q.enqueue(ctx, room, so, payloads...)
	if err != nil {
		return nil, err
	}
	ids = make([]uint64, len(data))
	for i := range ids {
		ids[i] = res.Seq + uint64(i)
	}
	return ids, nil
}

// SendOutOfBand appends data to room's delivery stream at once: every
// subscriber receives it whatever the barrier is doing, and nobody acks it.
func (q *Queue) SendOutOfBand(ctx context.Context, room string, data any, opts ...SendOption) (id uint64, err error) {
	return q.sendOne(ctx, room, data, opts, true)
}

// sendOptions checks the room and applies the options of a send.
func (q *Queue) sendOptions(room string, opts []SendOption) (sendOptions, error) {
	so := sendOptions{priority: DefaultPriority}
	if err := keys.ValidateRoom(room); err != nil {
		return so, err
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&so); err != nil {
			return so, err
		}
	}
	return so, nil
}

// encode checks the headers as a whole (a tracer's included) and encodes
// one message.
func (q *Queue) encode(data any, so sendOptions) ([]byte, error) {
	if err := checkHeaders(so.headers); err != nil {
		return nil, err
	}
	return encodePayload(data, q.opts.MaxPayloadBytes, so.headers)
}
