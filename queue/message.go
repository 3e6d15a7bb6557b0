package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/syncfanout/syncfanout/internal/payload"
	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/streams"
)

// Stored payloads start with one byte saying how to read the rest
// (internal/payload, shared with every reader).
const (
	kindRaw     = payload.KindRaw
	kindMsgpack = payload.KindMsgpack
)

// encodePayload turns a Send argument into the stored form: []byte passes
// through untouched, anything else is msgpack. Headers, when there are
// any, go first (internal/payload); without them the stored form is what
// it was before headers existed.
func encodePayload(data any, limit int, headers map[string]string) ([]byte, error) {
	var out []byte
	hlen := payload.HeadersLen(headers)
	switch v := data.(type) {
	case nil:
		return nil, fmt.Errorf("%w: nil payload", sferr.ErrEncode)
	case []byte:
		if v == nil {
			return nil, fmt.Errorf("%w: nil payload", sferr.ErrEncode)
		}
		out = make([]byte, 0, hlen+len(v)+1)
		out = payload.AppendHeaders(out, headers)
		out = append(append(out, kindRaw), v...)
	default:
		var buf bytes.Buffer
		if hlen > 0 {
			buf.Write(payload.AppendHeaders(make([]byte, 0, hlen), headers))
		}
		buf.WriteByte(kindMsgpack)
		enc := msgpack.NewEncoder(&buf)
		if err := enc.Encode(data); err != nil {
			return nil, fmt.Errorf("%w: %T: %v", sferr.ErrEncode, data, err)
		}
		out = buf.Bytes()
	}
	if n := len(out) - hlen - 1; n > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", sferr.ErrPayloadTooLarge, n, limit)
	}
	return out, nil
}

func checkPayload(p []byte) error { return payload.Check(p) }

// undecodable marks, among the events this package hands to its
// subscriptions and workers, a stream entry of the message type that
// streams.Decode refused but whose message ID it read. The scripts never
// release such an entry, but anything with write access to Redis can make
// it the message a room waits on; a member's subscription or worker then
// acks it on the member's behalf, without delivering it: no handler could
// read it, and skipping it would leave the room waiting for ever.
const undecodable streams.Type = "undecodable"

// refusedEvent stands for an entry streams.Decode refused: undecodable with
// its message ID when the error carries one, else an event of no type,
// which only moves positions past the entry.
func refusedEvent(room, id string, err error) streams.Event {
	ev := streams.Event{ID: id, Room: room}
	var de *streams.DecodeError
	if errors.As(err, &de) && de.MessageID > 0 {
		ev.Type, ev.MessageID = undecodable, de.MessageID
	}
	return ev
}

// logUndecodableAck reports the outcome of acking an undecodable message
// for a member: a stale ack means the room was not waiting for it.
func logUndecodableAck(log *slog.Logger, room, client string, m *Message, err error) {
	switch {
	case err == nil:
		log.Warn("syncfanout: acked an undecodable message for its member", "room", room, "client", client, "message", m.ID, "stream_id", m.StreamID)
	case errors.Is(err, sferr.ErrStaleAck):
	default:
		log.Warn("syncfanout: acking an undecodable message", "room", room, "client", client, "message", m.ID, "err", err)
	}
}

// Message is a delivered message.
type Message struct {
	ID         uint64 // unique within the room, increasing in send order
	Room       string
	Producer   string
	Priority   int  // meaningless for out-of-band messages
	OutOfBand  bool // delivered at once, never acked
	EnqueuedAt time.Time
	ReleasedAt time.Time // server time the barrier let it through (the send time for OOB)
	ReceivedAt time.Time // local time this process read it
	StreamID   string    // entry ID in the room's delivery stream
	// AckToken identifies this delivery to Ack; empty for out-of-band
	// messages and for observers.
	AckToken string
	// Headers are the message's headers (see Header); nil when it was sent
	// without any.
	Headers map[string]string

	payload []byte // kind byte + body
	// acker acks the message; issued is the token it was delivered with,
	// as sent and as made, so Ack skips decoding a token it issued.
	acker  acker
	issued issuedToken
	// ctx and trace are set when Options.Tracer recorded the delivery.
	ctx   context.Context
	trace *traceDelivery
	// endOnAck: the delivery ends with the ack (a Subscription's message).
	endOnAck bool
}

// Context returns the context of the message's delivery: the one the
// tracer (Options.Tracer) made for it, carrying its span, so that work
// done for the message can be traced under the delivery. Without a tracer
// it is context.Background(). A Worker's handler gets the same context as
// its ctx argument.
func (m *Message) Context() context.Context {
	if m.ctx == nil {
		return context.Background()
	}
	return m.ctx
}

func newMessage(ev streams.Event) (*Message, error) {
	if err := checkPayload(ev.Payload); err != nil {
		return nil, &streams.DecodeError{Room: ev.Room, ID: ev.ID, Why: err.Error()}
	}
	return &Message{
		ID: ev.MessageID, Room: ev.Room, Producer: ev.Producer, Priority: ev.Priority,
		OutOfBand: ev.Type == streams.OutOfBand, EnqueuedAt: ev.Enqueued, ReleasedAt: ev.At,
		ReceivedAt: time.Now(), StreamID: ev.ID, Headers: ev.Headers, payload: ev.Payload,
	}, nil
}

// Raw reports whether the payload was sent as []byte.
func (m *Message) Raw() bool { return m.payload[0] == kindRaw }

// Data returns the payload body: the bytes sent for a []byte payload,
// otherwise the msgpack encoding. Do not modify it.
func (m *Message) Data() []byte { return m.payload[1:] }

// Decode unmarshals the payload into v. A []byte payload decodes into a
// *[]byte or *string as is; anything else is msgpack.
func (m *Message) Decode(v any) error {
	if m.Raw() {
		switch p := v.(type) {
		case *[]byte:
			*p = append([]byte(nil), m.Data()...)
			return nil
		case *string:
			*p = string(m.Data())
			return nil
		}
		return fmt.Errorf("%w: a []byte payload decodes into *[]byte or *string, not %T", sferr.ErrDecode, v)
	}
	if err := msgpack.Unmarshal(m.Data(), v); err != nil {
		return fmt.Errorf("%w: %v", sferr.ErrDecode, err)
	}
	return nil
}

// QueueWait is how long the message waited for the barrier, by the server clock.
func (m *Message) QueueWait() time.Duration { return m.ReleasedAt.Sub(m.EnqueuedAt) }

// Latency is the time from enqueue (server clock) to receipt (local
// clock): the original library's latency. Clock skew between this host and
// Redis shows up in it.
func (m *Message) Latency() time.Duration { return m.ReceivedAt.Sub(m.EnqueuedAt) }

// Ack acknowledges the message for the subscriber that received it. It
// is a no-op for out-of-band messages and observers.
//
// With Options.Tracer, a Subscription's message ends its delivery here,
// out-of-band messages included (see Delivery).
func (m *Message) Ack(ctx context.Context) error {
	var err error
	if m.AckToken != "" && m.acker != nil {
		if m.AckToken == m.issued.s {
			err = m.acker.ackIssued(ctx, m.issued.t)
		} else {
			err = m.acker.Ack(ctx, m.issued.t.client, m.AckToken)
		}
		m.trace.ack(err)
	}
	if m.endOnAck {
		m.trace.end(nil)
	}
	return err
}
