package queue

import (
	"context"
	"iter"
	"time"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/streams"
)

// StreamKey returns the Redis key of room's delivery stream, for the
// streams package's functions or for tools that read it directly.
func (q *Queue) StreamKey(room string) (string, error) {
	if err := keys.ValidateRoom(room); err != nil {
		return "", err
	}
	return q.layout.Stream(room), nil
}

// History reads room's delivery stream in order within rg (see
// streams.History): messages, out-of-band messages, joins, leaves and
// evictions, as kept by the retention options. MessageFromEvent turns a
// message event into a *Message whose payload can be decoded.
func (q *Queue) History(ctx context.Context, room string, rg streams.Range) iter.Seq2[streams.Event, error] {
	return func(yield func(streams.Event, error) bool) {
		key, err := q.streamKey(ctx, room)
		if err != nil {
			yield(streams.Event{}, err)
			return
		}
		for ev, err := range streams.History(ctx, q.rdb, key, room, rg) {
			if !yield(ev, err) {
				return
			}
		}
	}
}

// ReplayInto calls handler with room's events within rg, in order, paced
// as opts say (see streams.ReplayInto).
// With Options.Tracer, the tracer records each message and out-of-band
// event handed to handler as a delivery (DeliveryInfo.Replay) that ends
// when handler returns.
func (q *Queue) ReplayInto(ctx context.Context, room string, rg streams.Range, handler func(streams.Event) error, opts streams.ReplayOptions) error {
	key, err := q.streamKey(ctx, room)
	if err != nil {
		return err
	}
	if q.opts.Tracer != nil && handler != nil {
		inner := handler
		handler = func(ev streams.Event) error {
			if ev.Type != streams.Message && ev.Type != streams.OutOfBand {
				return inner(ev)
			}
			m, err := MessageFromEvent(ev)
			if err != nil {
				return inner(ev)
			}
			q.startDelivery(ctx, DeliveryInfo{Replay: true}, m)
			err = inner(ev)
			m.trace.end(err)
			return err
		}
	}
	return streams.ReplayInto(ctx, q.rdb, key, room, rg, handler, opts)
}

// Tail yields room's events as they are appended, after fromID ("" or "$":
// from now on), until ctx ends (see streams.Tail). It reads on the caller's
// client, holding one of its connections while it waits.
func (q *Queue) Tail(ctx context.Context, room, fromID string) iter.Seq2[streams.Event, error] {
	return func(yield func(streams.Event, error) bool) {
		key, err := q.streamKey(ctx, room)
		if err != nil {
			yield(streams.Event{}, err)
			return
		}
		for ev, err := range streams.Tail(ctx, q.rdb, key, room, fromID) {
			if !yield(ev, err) {
				return
			}
		}
	}
}

func (q *Queue) streamKey(ctx context.Context, room string) (string, error) {
	if err := q.check(ctx); err != nil {
		return "", err
	}
	return q.StreamKey(room)
}

// MessageFromEvent turns a message or out-of-band event read from the
// history into a *Message, so its payload can be read with Data, Raw and
// Decode. It has no ack token and no ReceivedAt: history is not a
// delivery. Other event types and malformed payloads return an error
// matching ErrDecode.
func MessageFromEvent(ev streams.Event) (*Message, error) {
	if ev.Type != streams.Message && ev.Type != streams.OutOfBand {
		return nil, &streams.DecodeError{Room: ev.Room, ID: ev.ID, Why: "a " + string(ev.Type) + " event carries no message"}
	}
	m, err := newMessage(ev)
	if err != nil {
		return nil, err
	}
	m.ReceivedAt = time.Time{}
	return m, nil
}
