package queue

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// Tracer follows messages from Send to each delivery, so that a tracing
// library can propagate its context through the message headers and
// record a span per send and per delivery. Set it in Options.Tracer;
// contrib/otelsyncfanout (its own Go module) implements it for
// OpenTelemetry, and other tracers can do the same. Its methods are
// called on the goroutines of the calls they observe, concurrently, and
// should be quick: they sit on the send and delivery paths.
type Tracer interface {
	// StartSend is called by Send, SendBatch and SendOutOfBand once their
	// arguments are checked, before anything is written. The headers it
	// returns are added to every message of the call (over the caller's
	// headers of the same key), and count against the header limits. done
	// is called once the call returns, with the message IDs (nil on
	// failure) and the error.
	StartSend(ctx context.Context, s SendInfo) (headers map[string]string, done func(ids []uint64, err error))
	// StartDelivery is called when a message is handed to the application:
	// before a Worker calls HandleMessage (which receives the returned
	// context), when Subscription.Next or Messages returns it (the
	// returned context is Message.Context), and for each message event
	// Queue.ReplayInto hands its handler. ctx is the context of the
	// delivering call (the Worker's own for HandleMessage). The message's
	// fields, Headers included, are set; the Delivery returned is told of
	// its ack and its end.
	StartDelivery(ctx context.Context, d DeliveryInfo, m *Message) (context.Context, Delivery)
}

// SendInfo describes a send for Tracer.StartSend.
type SendInfo struct {
	Room      string
	Producer  string
	Priority  int  // meaningless when OutOfBand
	OutOfBand bool // SendOutOfBand
	Count     int  // messages in the call: 1, or the SendBatch length
	// Headers are the caller's headers for the messages (read only).
	Headers map[string]string
}

// DeliveryInfo describes a delivery for Tracer.StartDelivery.
type DeliveryInfo struct {
	// ClientID is the member or observer the message is delivered to;
	// empty for a replay.
	ClientID string
	// Worker: delivered to a Worker's HandleMessage (else to a
	// Subscription, or replayed).
	Worker bool
	// Replay: handed to a Queue.ReplayInto handler, read from the room's
	// history; nobody acks it.
	Replay bool
}

// Delivery is the tracer's record of one delivery. The Queue calls Acked
// at most once, when Message.Ack of a queued message returns, and End
// exactly once: when HandleMessage returns (with its error); for a
// Subscription's message when Message.Ack is called (out-of-band messages
// and observers' too, though nothing is acked), the next message is taken
// or the subscription ends (with nil); when a ReplayInto handler returns.
// An ack made after End (a Worker's handler that keeps the token for
// later, or Queue.Ack with the token) is not reported.
type Delivery interface {
	Acked(err error)
	End(err error)
}

// traceDelivery guards a Delivery so that the Queue's several paths report
// each thing at most once.
type traceDelivery struct {
	d     Delivery
	mu    sync.Mutex
	acked bool
	ended bool
}

func (t *traceDelivery) ack(err error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	report := !t.acked && !t.ended
	t.acked = true
	t.mu.Unlock()
	if report {
		t.d.Acked(err)
	}
}

func (t *traceDelivery) end(err error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	report := !t.ended
	t.ended = true
	t.mu.Unlock()
	if report {
		t.d.End(err)
	}
}

// startSend asks the tracer for the headers of a send; so.headers is
// replaced by a merged copy, so the caller's map is never changed.
// A header the tracer returns that breaks the rules fails the send (with
// ErrInvalidHeader, reported to done too).
func (q *Queue) startSend(ctx context.Context, room string, so *sendOptions, oob bool, count int) (func([]uint64, error), error) {
	tr := q.opts.Tracer
	if tr == nil {
		return nil, nil
	}
	extra, done := tr.StartSend(ctx, SendInfo{
		Room: room, Producer: so.producer, Priority: so.priority, OutOfBand: oob, Count: count, Headers: so.headers,
	})
	if done == nil {
		done = func([]uint64, error) {}
	}
	if len(extra) > 0 {
		merged := make(map[string]string, len(so.headers)+len(extra))
		maps.Copy(merged, so.headers)
		for k, v := range extra {
			if err := checkHeader(k, v); err != nil {
				return done, fmt.Errorf("from the tracer: %w", err)
			}
			merged[k] = v
		}
		so.headers = merged
	}
	return done, nil
}

// startDelivery lets the tracer record the delivery of m; ctx is returned
// unchanged without a tracer.
func (q *Queue) startDelivery(ctx context.Context, d DeliveryInfo, m *Message) context.Context {
	tr := q.opts.Tracer
	if tr == nil {
		return ctx
	}
	ctx, del := tr.StartDelivery(ctx, d, m)
	if del != nil {
		m.trace = &traceDelivery{d: del}
	}
	m.ctx = ctx
	return ctx
}
