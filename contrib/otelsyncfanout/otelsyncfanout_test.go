package otelsyncfanout_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncfanout/syncfanout/contrib/otelsyncfanout"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

const waitLimit = 20 * time.Second

// bundle is one test's tracer (recording in memory) and its Queues, each
// on its own Redis client as separate processes would be.
type bundle struct {
	rec    *tracetest.SpanRecorder
	tracer *otelsyncfanout.Tracer
	tp     *sdktrace.TracerProvider
	b      *redistest.Backend
}

func setup(t *testing.T, b *redistest.Backend) *bundle {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &bundle{rec: rec, tp: tp, tracer: otelsyncfanout.NewTracer(otelsyncfanout.WithTracerProvider(tp)), b: b}
}

func (bd *bundle) queue(t *testing.T, ctx context.Context) *queue.Queue {
	q, err := queue.New(ctx, bd.b.NewClient(t), queue.Options{Prefix: bd.b.Prefix, Tracer: bd.tracer})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// ended waits until the recorder holds n ended spans matching keep.
func (bd *bundle) ended(t *testing.T, n int, keep func(sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	var got []sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		got = got[:0]
		for _, s := range bd.rec.Ended() {
			if keep(s) {
				got = append(got, s)
			}
		}
		return len(got) >= n
	}, waitLimit, 10*time.Millisecond)
	require.Len(t, got, n)
	return got
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func events(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, e := range s.Events() {
		out = append(out, e.Name)
	}
	return out
}

func kind(k trace.SpanKind) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool { return s.SpanKind() == k }
}

// consumersOf checks the consumer spans of one message: in the producer's
// trace, its children, linked to it, with the messaging attributes.
func consumersOf(t *testing.T, producer sdktrace.ReadOnlySpan, spans []sdktrace.ReadOnlySpan, room string, id uint64) {
	t.Helper()
	for _, s := range spans {
		require.Equal(t, producer.SpanContext().TraceID(), s.SpanContext().TraceID(), "one trace")
		require.Equal(t, producer.SpanContext().SpanID(), s.Parent().SpanID(), "child of the producer span")
		require.True(t, s.Parent().IsRemote(), "the parent came through the headers")
		require.Len(t, s.Links(), 1)
		require.Equal(t, producer.SpanContext().SpanID(), s.Links()[0].SpanContext.SpanID())
		a := attrs(s)
		require.Equal(t, "syncfanout", a["messaging.system"].AsString())
		require.Equal(t, room, a["messaging.destination.name"].AsString())
		require.Equal(t, strconv.FormatUint(id, 10), a["messaging.message.id"].AsString())
	}
}

// TestOneSendThreeSubscribers (issue 18, item 2): one Send to a room whose
// three members live in three Queues (two Subscriptions and a Worker)
// yields one producer span, child of the caller's span, and three consumer
// spans in its trace, each its child and linked to it, with the messaging
// attributes; an ack shows as an event of the delivery's span, and so
// does the barrier wait. An out-of-band message gets the same, without a
// barrier wait.
func TestOneSendThreeSubscribers(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bd := setup(t, b)
		const room = "traced"
		producer := bd.queue(t, ctx)
		s1, err := bd.queue(t, ctx).Join(ctx, room)
		require.NoError(t, err)
		s2, err := bd.queue(t, ctx).Join(ctx, room)
		require.NoError(t, err)
		type handledMsg struct {
			m       *queue.Message
			handler trace.SpanContext // from the handler's ctx
		}
		handled := make(chan handledMsg, 4)
		w, err := bd.queue(t, ctx).NewWorker(queue.WorkerOptions{HandleMessage: func(ctx context.Context, _ string, m *queue.Message) error {
			err := m.Ack(ctx)
			handled <- handledMsg{m, trace.SpanContextFromContext(ctx)}
			return err
		}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		require.NoError(t, w.Subscribe(ctx, "traced-worker", room))

		rootCtx, root := bd.tp.Tracer("test").Start(ctx, "request")
		id, err := producer.Send(rootCtx, room, "hello", queue.Producer("svc-a"), queue.Priority(3))
		require.NoError(t, err)
		oob, err := producer.SendOutOfBand(rootCtx, room, "notice", queue.Producer("svc-a"))
		require.NoError(t, err)
		root.End()

		got := map[uint64]int{}
		for _, s := range []*queue.Subscription{s1, s2} {
			for range 2 {
				m, err := s.Next(ctx)
				require.NoError(t, err)
				require.Contains(t, m.Headers, "traceparent")
				require.True(t, trace.SpanContextFromContext(m.Context()).IsValid())
				got[m.ID]++
				require.NoError(t, m.Ack(ctx))
			}
		}
		for range 2 {
			h := <-handled
			require.True(t, h.handler.IsValid(), "the handler's ctx carries its span")
			require.Equal(t, h.handler, trace.SpanContextFromContext(h.m.Context()))
			got[h.m.ID]++
		}
		require.Equal(t, map[uint64]int{id: 3, oob: 3}, got)

		producers := bd.ended(t, 2, kind(trace.SpanKindProducer))
		byID := map[string]sdktrace.ReadOnlySpan{}
		for _, p := range producers {
			require.Equal(t, root.SpanContext().TraceID(), p.SpanContext().TraceID())
			require.Equal(t, root.SpanContext().SpanID(), p.Parent().SpanID(), "child of the caller's span")
			require.Equal(t, "send "+room, p.Name())
			a := attrs(p)
			require.Equal(t, "syncfanout", a["messaging.system"].AsString())
			require.Equal(t, room, a["messaging.destination.name"].AsString())
			require.Equal(t, "send", a["messaging.operation.type"].AsString())
			require.Equal(t, "svc-a", a["messaging.client.id"].AsString(), "the producer")
			byID[a["messaging.message.id"].AsString()] = p
		}
		require.Contains(t, byID, strconv.FormatUint(id, 10))
		require.Contains(t, byID, strconv.FormatUint(oob, 10))
		require.EqualValues(t, 3, attrs(byID[strconv.FormatUint(id, 10)])["syncfanout.priority"].AsInt64())

		consumers := bd.ended(t, 6, kind(trace.SpanKindConsumer))
		perMsg := map[string][]sdktrace.ReadOnlySpan{}
		for _, c := range consumers {
			perMsg[attrs(c)["messaging.message.id"].AsString()] = append(perMsg[attrs(c)["messaging.message.id"].AsString()], c)
		}
		for _, msg := range []uint64{id, oob} {
			spans := perMsg[strconv.FormatUint(msg, 10)]
			require.Len(t, spans, 3, "message %d: one consumer span per member", msg)
			consumersOf(t, byID[strconv.FormatUint(msg, 10)], spans, room, msg)
			clients := map[string]bool{}
			ops := map[string]int{}
			for _, s := range spans {
				a := attrs(s)
				clients[a["messaging.client.id"].AsString()] = true
				ops[s.Name()]++
				if msg == id {
					require.Equal(t, []string{otelsyncfanout.EventBarrierWait, otelsyncfanout.EventAck}, events(s))
					require.False(t, a["syncfanout.out_of_band"].AsBool())
				} else {
					require.Empty(t, events(s), "out-of-band: no barrier, no ack")
					require.True(t, a["syncfanout.out_of_band"].AsBool())
				}
			}
			require.Len(t, clients, 3, "three distinct members")
			require.Equal(t, map[string]int{"receive " + room: 2, "process " + room: 1}, ops)
		}
	})
}

// TestReplayedMessagesAreTraced (issue 18, item 2): Queue.ReplayInto on a
// traced Queue gives each message event of the history a "process" span
// in the trace of the send that produced it, marked as a replay, ended
// when the handler returns; a message sent without tracing gets a span of
// its own trace.
func TestReplayedMessagesAreTraced(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bd := setup(t, b)
		const room = "replayed"
		q := bd.queue(t, ctx)
		id, err := q.Send(ctx, room, "one")
		require.NoError(t, err)
		oob, err := q.SendOutOfBand(ctx, room, "two")
		require.NoError(t, err)
		plain, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix})
		require.NoError(t, err)
		defer plain.Close()
		untraced, err := plain.Send(ctx, room, "three")
		require.NoError(t, err)
		producers := bd.ended(t, 2, kind(trace.SpanKindProducer))

		var seen []uint64
		require.NoError(t, q.ReplayInto(ctx, room, streams.Range{}, func(ev streams.Event) error {
			seen = append(seen, ev.MessageID)
			return nil
		}, streams.ReplayOptions{}))
		require.Equal(t, []uint64{id, oob, untraced}, seen)
		replays := bd.ended(t, 3, kind(trace.SpanKindConsumer))
		for i, msg := range []uint64{id, oob} {
			s := replays[i]
			consumersOf(t, producers[i], []sdktrace.ReadOnlySpan{s}, room, msg)
			require.Equal(t, "process "+room, s.Name())
			require.True(t, attrs(s)["syncfanout.replay"].AsBool())
		}
		require.Empty(t, replays[2].Links(), "no trace context in the headers")
		require.False(t, replays[2].Parent().IsValid())
	})
}
