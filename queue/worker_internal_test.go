package queue

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestLatencyRing: Metrics' latencies cover exactly the last n samples, so
// an old spike leaves the window after n messages.
func TestLatencyRing(t *testing.T) {
	t.Parallel()
	l := newLatencyRing(3)
	lo, hi, avg, n := l.stats()
	require.Zero(t, lo+hi+avg)
	require.Zero(t, n)
	ms := time.Millisecond
	for _, d := range []time.Duration{5 * ms, ms, 9 * ms} {
		l.add(d)
	}
	lo, hi, avg, n = l.stats()
	require.Equal(t, []time.Duration{ms, 9 * ms, 5 * ms}, []time.Duration{lo, hi, avg})
	require.Equal(t, 3, n)
	l.add(2 * ms) // 5ms leaves the window
	lo, hi, avg, n = l.stats()
	require.Equal(t, []time.Duration{ms, 9 * ms, 4 * ms}, []time.Duration{lo, hi, avg})
	require.Equal(t, 3, n)
	l.add(10 * ms)
	l.add(12 * ms) // the window is now 2, 10, 12
	lo, hi, avg, n = l.stats()
	require.Equal(t, []time.Duration{2 * ms, 12 * ms, 8 * ms}, []time.Duration{lo, hi, avg})
	require.Equal(t, 3, n)
	for range 3 {
		l.add(-ms) // clock skew: kept as measured
	}
	lo, hi, avg, _ = l.stats()
	require.Equal(t, []time.Duration{-ms, -ms, -ms}, []time.Duration{lo, hi, avg})
}

// TestFollowAllEmptiedRoomLastEntries: a follow-all worker whose discovery
// sees a room leave the index before the reader handed over the entry that
// emptied it (here a kick of its last member) still delivers that entry
// before it stops following the room: HandleClientKicked is called. It was
// lost (the flake of compat's TestHandleRoomClientTimeout, with an
// eviction).
func TestFollowAllEmptiedRoomLastEntries(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q, err := New(ctx, b.NewClient(t), Options{Prefix: b.Prefix})
		require.NoError(t, err)
		defer func() { _ = q.Close() }()
		const room = "emptied"
		client, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, q.Subscribe(ctx, client, room))

		kicked := make(chan string, 1)
		w, err := q.NewWorker(WorkerOptions{
			FollowAll:         true,
			DiscoveryInterval: time.Minute, // this test runs discovery itself
			HandleMessage:     func(context.Context, string, *Message) error { return nil },
			HandleClientKicked: func(_ context.Context, id string, _ *KickedError) error {
				kicked <- id
				return nil
			},
		})
		require.NoError(t, err)
		defer func() { require.NoError(t, w.Close()) }()
		w.discover(ctx) // the loop's first round may be the one that follows it
		w.mu.Lock()
		r := w.rooms[room]
		w.mu.Unlock()
		require.NotNil(t, r, "discovery follows the room")
		select {
		case <-r.ready:
		case <-ctx.Done():
			t.Fatal("the room was not followed")
		}
		require.NoError(t, r.err)

		// The reader (and this process's script replies) hand the room
		// nothing more: the state of a reader that has not read the kick
		// yet when discovery runs.
		q.router.remove(room, r)
		require.NoError(t, q.Admin("ops").Kick(ctx, room, client, "last member"))
		w.discover(ctx)
		w.mu.Lock()
		require.Nil(t, w.rooms[room], "the emptied room left the index: no longer followed")
		w.mu.Unlock()
		select {
		case id := <-kicked:
			require.Equal(t, client, id)
		case <-ctx.Done():
			t.Fatal("HandleClientKicked was not called")
		}
	})
}

// TestHeartbeatReportsSuccess: the Queue's heartbeat round reports success
// in the sense heartbeatLoop reads it (true: wait an interval; false: retry
// after a backoff). It reported the opposite, so the Queue beat every
// backoff step while Redis answered, and waited a whole interval after a
// failed round, which is when a failover needs the prompt retry.
func TestHeartbeatReportsSuccess(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q, err := New(ctx, b.NewClient(t), Options{Prefix: b.Prefix, DisableHousekeeping: true})
		require.NoError(t, err)
		defer func() { _ = q.Close() }()
		s, err := q.Join(ctx, "beats")
		require.NoError(t, err)
		defer func() { _ = s.Close(ctx) }()
		require.True(t, q.router.heartbeat(ctx), "a round Redis answered")
		done, stop := context.WithCancel(ctx)
		stop()
		require.False(t, q.router.heartbeat(done), "a round whose calls failed")
	})
}

// TestWorkerIssuedTokens: Worker.Ack takes a token it issued without
// decoding it again, but only from the client it was issued to (another
// client sending it back is refused as the full check refuses it), and the
// worker remembers one token per hosted client and room: the newest
// replaces the previous, and a client that leaves, or the worker's Close,
// drops it.
func TestWorkerIssuedTokens(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q, err := New(ctx, b.NewClient(t), Options{Prefix: b.Prefix, AckSecret: []byte("issued-tokens-secret")})
		require.NoError(t, err)
		defer func() { _ = q.Close() }()
		const room = "issued"
		got := map[string]chan *Message{}
		var ids []string
		for range 2 {
			id, err := q.CreateClientID(ctx)
			require.NoError(t, err)
			ids = append(ids, id)
			got[id] = make(chan *Message, 4)
		}
		w, err := q.NewWorker(WorkerOptions{HandleMessage: func(_ context.Context, id string, m *Message) error {
			got[id] <- m
			return nil
		}})
		require.NoError(t, err)
		closed := false
		defer func() {
			if !closed {
				_ = w.Close()
			}
		}()
		for _, id := range ids {
			require.NoError(t, w.Subscribe(ctx, id, room))
		}
		a, bb := ids[0], ids[1]
		recv := func(id string) *Message {
			select {
			case m := <-got[id]:
				return m
			case <-ctx.Done():
				t.Fatalf("no delivery to %s", id)
				return nil
			}
		}

		_, err = q.Send(ctx, room, []byte("one"))
		require.NoError(t, err)
		a1, b1 := recv(a), recv(bb)
		require.Equal(t, 2, w.issued.count())
		require.ErrorIs(t, w.Ack(ctx, bb, a1.AckToken), ErrInvalidToken, "a token issued to another client")
		require.ErrorIs(t, w.Ack(ctx, a, a1.AckToken+"x"), ErrInvalidToken)
		require.NoError(t, w.Ack(ctx, a, a1.AckToken))
		require.NoError(t, w.Ack(ctx, bb, b1.AckToken))

		_, err = q.Send(ctx, room, []byte("two"))
		require.NoError(t, err)
		a2 := recv(a)
		recv(bb)
		require.Equal(t, 2, w.issued.count())
		_, ok := w.issued.lookup(a, a1.AckToken)
		require.False(t, ok, "the newest token replaces the previous")
		_, ok = w.issued.lookup(a, a2.AckToken)
		require.True(t, ok)

		require.NoError(t, w.Unsubscribe(ctx, a, room))
		require.Equal(t, 1, w.issued.count(), "a client that left")
		require.NoError(t, w.Close())
		closed = true
		require.Zero(t, w.issued.count(), "Close")
		require.ErrorIs(t, w.Ack(ctx, bb, b1.AckToken), ErrClosed)
	})
}
