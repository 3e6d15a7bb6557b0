package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/metrics"
	"github.com/syncfanout/syncfanout/queue"
)

// TestWorkerCollector: a scrape shows the worker's deliveries, acks, rooms
// and clients as Worker.Stats counts them, and passes the linter.
func TestWorkerCollector(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
		in := make(chan *queue.Message, 8)
		w, err := q.NewWorker(queue.WorkerOptions{
			AutoHeartbeat: true,
			HandleMessage: func(ctx context.Context, clientID string, m *queue.Message) error {
				in <- m
				return nil
			},
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		reg := prometheus.NewRegistry()
		c := metrics.NewWorkerCollector(w, metrics.Options{ConstLabels: prometheus.Labels{"gateway": "a"}})
		require.NoError(t, reg.Register(c))
		require.Zero(t, value(t, reg, "syncfanout_worker_messages_delivered_total", "gateway", "a"))
		n, err := testutil.GatherAndCount(reg, "syncfanout_worker_latency_seconds")
		require.NoError(t, err)
		require.Zero(t, n, "no latency before the first message")

		require.NoError(t, w.Subscribe(ctx, "alice", "lobby"))
		for i := range 2 {
			_, err := q.Send(ctx, "lobby", i)
			require.NoError(t, err)
		}
		for range 2 {
			select {
			case m := <-in:
				require.NoError(t, w.Ack(ctx, "alice", m.AckToken))
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}

		st := w.Stats()
		require.EqualValues(t, 2, st.Delivered)
		require.EqualValues(t, st.Delivered, value(t, reg, "syncfanout_worker_messages_delivered_total"))
		require.EqualValues(t, st.Received, value(t, reg, "syncfanout_worker_messages_received_total"))
		require.EqualValues(t, 2, value(t, reg, "syncfanout_worker_acks_total"))
		require.EqualValues(t, st.AckCalls, value(t, reg, "syncfanout_worker_ack_calls_total"))
		require.Zero(t, value(t, reg, "syncfanout_worker_acks_refused_total"))
		require.EqualValues(t, 1, value(t, reg, "syncfanout_worker_rooms"))
		require.EqualValues(t, 1, value(t, reg, "syncfanout_worker_clients"))
		for _, stat := range []string{metrics.StatMin, metrics.StatAvg, metrics.StatMax} {
			value(t, reg, "syncfanout_worker_latency_seconds", "stat", stat)
		}
		problems, err := testutil.CollectAndLint(c)
		require.NoError(t, err)
		require.Empty(t, problems)
	})
}
