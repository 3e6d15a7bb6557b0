// Package otelsyncfanout traces syncfanout messages with OpenTelemetry:
// the producer's span context travels in the message headers from Send
// to every subscriber, and each delivery gets a consumer span in the same
// trace. It lives in its own Go module, so that programs that do not trace
// do not build OpenTelemetry.
//
//	q, err := queue.New(ctx, rdb, queue.Options{Tracer: otelsyncfanout.NewTracer()})
//
// Spans follow the OpenTelemetry semantic conventions for messaging:
//
//   - "send ROOM", kind producer, for each Send, SendBatch and
//     SendOutOfBand call, a child of the span in the caller's context.
//     Its context is injected into the headers of the messages it sends
//     (W3C traceparent, tracestate and baggage by default).
//   - "process ROOM", kind consumer, for each message a Worker hands to
//     HandleMessage (the handler's ctx carries it) and each message event
//     Queue.ReplayInto hands to its handler; "receive ROOM", kind consumer,
//     for each message a Subscription returns (Message.Context carries it).
//     Its parent is the producer's span read from the headers, and it
//     links to it; without trace headers it is a child of the delivering
//     call's context.
//
// Attributes: messaging.system "syncfanout", messaging.destination.name
// (the room), messaging.operation.name and .type, messaging.message.id
// (a single message; a batch has messaging.batch.message_count instead),
// messaging.client.id (the member or observer delivered to), and
// syncfanout.priority, syncfanout.out_of_band, syncfanout.replay,
// syncfanout.stream_id. A consumer span holds the event
// "syncfanout.barrier_wait" (how long the message waited for the barrier,
// syncfanout.barrier_wait_ms) and, when Message.Ack is called before the
// span ends, "syncfanout.ack" (with the error if the ack failed).
// A Worker's span ends when the handler returns; a Subscription's when the
// message is acked, the next message is taken, or the subscription ends;
// a replayed message's when the handler returns.
package otelsyncfanout

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncfanout/syncfanout/queue"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/syncfanout/syncfanout/contrib/otelsyncfanout"

// System is the messaging.system attribute of every span.
const System = "syncfanout"

// Attribute keys of the library's own attributes.
const (
	PriorityKey      = attribute.Key("syncfanout.priority")
	OutOfBandKey     = attribute.Key("syncfanout.out_of_band")
	ReplayKey        = attribute.Key("syncfanout.replay")
	StreamIDKey      = attribute.Key("syncfanout.stream_id")
	BarrierWaitMsKey = attribute.Key("syncfanout.barrier_wait_ms")
)

// Span event names.
const (
	EventBarrierWait = "syncfanout.barrier_wait"
	EventAck         = "syncfanout.ack"
)

// Option configures NewTracer.
type Option func(*Tracer)

// WithTracerProvider sets the provider of the tracer (default
// otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(t *Tracer) { t.provider = tp }
}

// WithPropagator sets how span contexts are written into and read from
// message headers (default: W3C trace context and baggage, whatever the
// global propagator is, so that traces connect without further setup).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(t *Tracer) { t.prop = p }
}

// Tracer implements queue.Tracer with OpenTelemetry.
type Tracer struct {
	provider trace.TracerProvider
	prop     propagation.TextMapPropagator
	tracer   trace.Tracer
}

var _ queue.Tracer = (*Tracer)(nil)

// NewTracer returns a tracer for queue.Options.Tracer.
func NewTracer(opts ...Option) *Tracer {
	t := &Tracer{}
	for _, o := range opts {
		o(t)
	}
	if t.provider == nil {
		t.provider = otel.GetTracerProvider()
	}
	if t.prop == nil {
		t.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	t.tracer = t.provider.Tracer(ScopeName)
	return t
}

// StartSend starts the producer span and returns its context as headers.
func (t *Tracer) StartSend(ctx context.Context, s queue.SendInfo) (map[string]string, func([]uint64, error)) {
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(System),
		semconv.MessagingDestinationName(s.Room),
		semconv.MessagingOperationName("send"),
		semconv.MessagingOperationTypeSend,
		OutOfBandKey.Bool(s.OutOfBand),
	}
	if !s.OutOfBand {
		attrs = append(attrs, PriorityKey.Int(s.Priority))
	}
	if s.Count > 1 {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(s.Count))
	}
	if s.Producer != "" {
		attrs = append(attrs, semconv.MessagingClientID(s.Producer))
	}
	ctx, span := t.tracer.Start(ctx, "send "+s.Room, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	headers := propagation.MapCarrier{}
	t.prop.Inject(ctx, headers)
	return headers, func(ids []uint64, err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else if len(ids) == 1 {
			span.SetAttributes(semconv.MessagingMessageID(strconv.FormatUint(ids[0], 10)))
		}
		span.End()
	}
}

// StartDelivery starts the consumer span of one delivery.
func (t *Tracer) StartDelivery(ctx context.Context, d queue.DeliveryInfo, m *queue.Message) (context.Context, queue.Delivery) {
	op, opType := "process", semconv.MessagingOperationTypeProcess
	if !d.Worker && !d.Replay {
		op, opType = "receive", semconv.MessagingOperationTypeReceive
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(System),
		semconv.MessagingDestinationName(m.Room),
		semconv.MessagingOperationName(op),
		opType,
		semconv.MessagingMessageID(strconv.FormatUint(m.ID, 10)),
		OutOfBandKey.Bool(m.OutOfBand),
		StreamIDKey.String(m.StreamID),
	}
	if !m.OutOfBand {
		attrs = append(attrs, PriorityKey.Int(m.Priority))
	}
	if d.ClientID != "" {
		attrs = append(attrs, semconv.MessagingClientID(d.ClientID))
	}
	if d.Replay {
		attrs = append(attrs, ReplayKey.Bool(true))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	parent := ctx
	if len(m.Headers) > 0 {
		parent = t.prop.Extract(ctx, propagation.MapCarrier(m.Headers))
		if sc := trace.SpanContextFromContext(parent); sc.IsValid() && sc.IsRemote() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	ctx, span := t.tracer.Start(parent, op+" "+m.Room, opts...)
	if !m.OutOfBand && !d.Replay {
		span.AddEvent(EventBarrierWait, trace.WithAttributes(BarrierWaitMsKey.Int64(m.QueueWait().Milliseconds())))
	}
	return ctx, &delivery{span: span}
}

type delivery struct {
	span trace.Span
}

func (d *delivery) Acked(err error) {
	if err != nil {
		d.span.AddEvent(EventAck, trace.WithAttributes(attribute.String("error", err.Error())))
		d.span.SetStatus(codes.Error, "ack: "+err.Error())
		return
	}
	d.span.AddEvent(EventAck)
}

func (d *delivery) End(err error) {
	if err != nil {
		d.span.RecordError(err)
		d.span.SetStatus(codes.Error, err.Error())
	}
	d.span.End()
}

// ContextFromHeaders returns ctx with the span context carried by a
// message's headers (a streams.Event's or a Message's), for work done
// outside the deliveries the tracer sees, such as events read with
// Queue.History or Tail. It uses the W3C trace context and baggage
// formats; pass the propagator given to WithPropagator otherwise.
func ContextFromHeaders(ctx context.Context, headers map[string]string, p ...propagation.TextMapPropagator) context.Context {
	var prop propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	if len(p) > 0 {
		prop = p[0]
	}
	return prop.Extract(ctx, propagation.MapCarrier(headers))
}
