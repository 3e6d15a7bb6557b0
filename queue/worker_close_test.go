package queue_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// lockedBuffer is a log destination shared by a Worker's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestWorkerCloseCutsHandlersQuietly: a handler that fails because its
// worker closes under it (its context ended, its ack refused with
// ErrClosed, or its client already gone from the room with Close's leave:
// ErrNotMember) is counted but not warned about; a handler error Close
// did not cause still is. The quick start of README.md, which returns its
// ack's error, failed TestDocPrograms with that warning on stderr when its
// ack raced the deferred Close.
func TestWorkerCloseCutsHandlersQuietly(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		var logs lockedBuffer
		q := setupOn(t, b.Client, b.Prefix, queue.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		const room = "close-quiet"
		// Holds every message in flight until the test acks it.
		sub := join(t, ctx, q, room)
		left, refused := createClient(t, ctx, q), createClient(t, ctx, q)

		errNotByClose := errors.New("a handler failure of its own")
		cut := make(chan string, 2)
		got := make(chan error, 2)
		var w *queue.Worker
		w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: func(hctx context.Context, c string, m *queue.Message) error {
			if m.ID == 1 {
				if err := w.Ack(hctx, c, m.AckToken); err != nil {
					return err
				}
				return errNotByClose
			}
			cut <- c
			<-hctx.Done() // Close
			var err error
			switch c {
			case left:
				// Acked once Close's leave is through, as an ack that was
				// in flight then is answered.
				err = wkWaitFor(ctx, "Close's leave", func() (bool, error) {
					st, err := q.RoomState(ctx, room)
					return !slices.ContainsFunc(st.Members, func(mb queue.Member) bool { return mb.ClientID == c }), err
				})
				if err == nil {
					err = q.Ack(ctx, c, m.AckToken)
				}
			case refused:
				err = w.Ack(context.Background(), c, m.AckToken)
			}
			got <- err
			return err
		}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		require.NoError(t, w.Subscribe(ctx, left, room))
		require.NoError(t, w.Subscribe(ctx, refused, room))

		send(t, ctx, q, room, "one")
		send(t, ctx, q, room, "two")
		m := next(t, ctx, sub)
		require.Equal(t, uint64(1), m.ID)
		require.NoError(t, m.Ack(ctx))
		for range 2 {
			select {
			case <-cut:
			case <-ctx.Done():
				t.Fatal("message 2 was not handed to the worker's clients")
			}
		}
		require.NoError(t, w.Close())
		errs := []error{<-got, <-got}
		require.True(t, slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, queue.ErrNotMember) }), "%v", errs)
		require.True(t, slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, queue.ErrClosed) }), "%v", errs)

		require.Equal(t, uint64(4), w.Stats().HandlerErrors, "every failure is counted")
		out := logs.String()
		require.Equal(t, 2, strings.Count(out, "HandleMessage failed"), "%s", out)
		require.Equal(t, 2, strings.Count(out, errNotByClose.Error()), "%s", out)
	})
}

func createClient(t *testing.T, ctx context.Context, q *queue.Queue) string {
	t.Helper()
	id, err := q.CreateClientID(ctx)
	require.NoError(t, err)
	return id
}
