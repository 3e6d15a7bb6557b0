package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// recordingTracer is a queue.Tracer that writes down what it is told.
type recordingTracer struct {
	mu     sync.Mutex
	extra  map[string]string
	sends  []string // "room count ids err"
	events []string // "client/id: start|ack <err>|end <err>"
	ended  chan string
}

func newRecordingTracer(extra map[string]string) *recordingTracer {
	return &recordingTracer{extra: extra, ended: make(chan string, 100)}
}

func (r *recordingTracer) log(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recordingTracer) StartSend(_ context.Context, s queue.SendInfo) (map[string]string, func([]uint64, error)) {
	return r.extra, func(ids []uint64, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.sends = append(r.sends, fmt.Sprintf("%s oob=%v n=%d %v %v", s.Room, s.OutOfBand, s.Count, ids, err != nil))
	}
}

type tracerKey struct{}

func (r *recordingTracer) StartDelivery(ctx context.Context, d queue.DeliveryInfo, m *queue.Message) (context.Context, queue.Delivery) {
	who := d.ClientID
	if d.Replay {
		who = "replay"
	}
	name := fmt.Sprintf("%s/%d", who, m.ID)
	r.log("%s: start", name)
	return context.WithValue(ctx, tracerKey{}, name), &recordedDelivery{r: r, name: name}
}

type recordedDelivery struct {
	r    *recordingTracer
	name string
}

func (d *recordedDelivery) Acked(err error) { d.r.log("%s: ack %v", d.name, err) }
func (d *recordedDelivery) End(err error) {
	d.r.log("%s: end %v", d.name, err)
	d.r.ended <- d.name
}

func (r *recordingTracer) eventsOf(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if len(e) > len(name)+2 && e[:len(name)+2] == name+": " {
			out = append(out, e[len(name)+2:])
		}
	}
	return out
}

// TestTracerHook (issue 18, item 2): Options.Tracer is told of every send
// once, with the IDs sent, and its headers reach the messages beside the
// caller's; each delivery is started once with a context the handler or
// Message.Context carries, acked at most once and ended exactly once: a
// Worker's when its handler returns (or panics), a Subscription's at Ack
// (out-of-band included), at the next Next or at Close, a replayed one
// when the handler returns. A tracer header that breaks the rules fails
// the send before anything is written.
func TestTracerHook(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		tr := newRecordingTracer(map[string]string{"trace": "t1"})
		q := setup(t, b, queue.Options{Tracer: tr}).q
		const room = "tracer-hook"
		sub := join(t, ctx, q, room)
		handlerCtx := make(chan any, 4)
		w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: func(ctx context.Context, _ string, m *queue.Message) error {
			handlerCtx <- ctx.Value(tracerKey{})
			err := m.Ack(ctx)
			if m.ID == 3 {
				panic("handler bug")
			}
			return err
		}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		require.NoError(t, w.Subscribe(ctx, "hook-worker", room))

		one := send(t, ctx, q, room, "one", queue.Header("own", "x"))
		two := sendOOB(t, ctx, q, room, "two")
		m1 := next(t, ctx, sub)
		require.Equal(t, one, m1.ID)
		require.Equal(t, map[string]string{"own": "x", "trace": "t1"}, m1.Headers)
		require.Equal(t, sub.ClientID()+"/1", m1.Context().Value(tracerKey{}))
		m2 := next(t, ctx, sub) // the OOB message overtakes nothing: 1 is in flight
		require.Equal(t, two, m2.ID)
		require.NoError(t, m2.Ack(ctx), "Ack of an out-of-band message ends its delivery")
		require.NoError(t, m1.Ack(ctx))
		_ = m1.Ack(ctx) // stale if the worker acked first
		ids, err := q.SendBatch(ctx, room, []any{"three", "four"})
		require.NoError(t, err)
		m3 := next(t, ctx, sub)
		require.NoError(t, m3.Ack(ctx))
		m4 := next(t, ctx, sub)
		require.NoError(t, sub.Close(ctx), "Close ends the delivery of an unacked message")
		require.Equal(t, ids[1], m4.ID)

		// The worker handled 1, 2, 3 (acked, then panicked) and 4.
		for range 4 {
			require.NotNil(t, <-handlerCtx, "the handler's ctx comes from the tracer")
		}
		c := sub.ClientID()
		require.Equal(t, []string{"start", "end <nil>"}, tr.eventsOf(fmt.Sprintf("%s/%d", c, two)))
		// Taking the OOB message ended the delivery of 1: its later ack is
		// not reported.
		require.Equal(t, []string{"start", "end <nil>"}, tr.eventsOf(fmt.Sprintf("%s/%d", c, one)))
		require.Equal(t, []string{"start", "ack <nil>", "end <nil>"}, tr.eventsOf(fmt.Sprintf("%s/%d", c, ids[0])))
		require.Equal(t, []string{"start", "end <nil>"}, tr.eventsOf(fmt.Sprintf("%s/%d", c, ids[1])))
		waitEnded := func(name string) {
			t.Helper()
			for {
				select {
				case n := <-tr.ended:
					if n == name {
						return
					}
				case <-ctx.Done():
					t.Fatalf("%s never ended", name)
				}
			}
		}
		waitEnded(fmt.Sprintf("hook-worker/%d", ids[1]))
		require.Equal(t, []string{"start", "ack <nil>", "end <nil>"}, tr.eventsOf(fmt.Sprintf("hook-worker/%d", one)))
		require.Equal(t, []string{"start", "ack <nil>", "end syncfanout: HandleMessage panicked"}, tr.eventsOf(fmt.Sprintf("hook-worker/%d", ids[0])))

		// Replays: one delivery per message event, ended with the handler's
		// error.
		require.Error(t, q.ReplayInto(ctx, room, streams.Range{}, func(ev streams.Event) error {
			if ev.MessageID == ids[1] {
				return fmt.Errorf("stop")
			}
			return nil
		}, streams.ReplayOptions{}))
		require.Equal(t, []string{"start", "end <nil>"}, tr.eventsOf(fmt.Sprintf("replay/%d", one)))
		require.Equal(t, []string{"start", "end stop"}, tr.eventsOf(fmt.Sprintf("replay/%d", ids[1])))

		tr.mu.Lock()
		require.Equal(t, []string{
			fmt.Sprintf("%s oob=false n=1 [%d] false", room, one),
			fmt.Sprintf("%s oob=true n=1 [%d] false", room, two),
			fmt.Sprintf("%s oob=false n=2 %v false", room, ids),
		}, tr.sends)
		tr.mu.Unlock()

		// A tracer header that breaks the rules: the send fails, reported.
		bad := newRecordingTracer(map[string]string{"bad key": "v"})
		qb := setup(t, b, queue.Options{Tracer: bad}).q
		snap := snapshotter(t, ctx, b)
		before := snap()
		_, err = qb.Send(ctx, "tracer-bad", "x")
		require.ErrorIs(t, err, queue.ErrInvalidHeader)
		require.Equal(t, before, snap())
		require.Equal(t, []string{"tracer-bad oob=false n=1 [] true"}, bad.sends)
	})
}
