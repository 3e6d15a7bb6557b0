package queue_test

// Ack tokens are fenced by membership: a token belongs to the membership
// (the incarnation) of its client at delivery time, and a client that left
// or was evicted and then joined again with the same client ID cannot ack
// with the tokens of its earlier membership. Project rule in
// docs/semantics.md.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// fencedAck requires that every way of presenting the token of an earlier
// membership (Message.Ack, Queue.Ack, and Worker.Ack when w is set) returns
// ErrStaleAck and leaves the barrier as it was.
func fencedAck(t *testing.T, ctx context.Context, q *queue.Queue, w *queue.Worker, room string, old *queue.Message, client string) {
	t.Helper()
	before := view(t, ctx, q, room)
	stale := q.Stats().AckStale
	acked := q.Stats().Acked
	require.ErrorIs(t, old.Ack(ctx), queue.ErrStaleAck, "Message.Ack with the token of an earlier membership")
	require.ErrorIs(t, q.Ack(ctx, client, old.AckToken), queue.ErrStaleAck, "Queue.Ack with the token of an earlier membership")
	n := uint64(2)
	if w != nil {
		require.ErrorIs(t, w.Ack(ctx, client, old.AckToken), queue.ErrStaleAck, "Worker.Ack with the token of an earlier membership")
		n++
	}
	require.Equal(t, before, view(t, ctx, q, room), "a fenced ack changed the barrier")
	require.Equal(t, acked, q.Stats().Acked, "a fenced ack was counted as accepted")
	require.GreaterOrEqual(t, q.Stats().AckStale-stale, n-1, "fenced acks are counted as stale")
}

// TestFencedRejoin_Evicted: X holds message k, is evicted while k is still
// in flight (Y has not acked it either), and joins again with the same
// client ID. The token X got for k before the eviction is refused with
// ErrStaleAck and changes nothing; the room goes on with X's new
// membership, whose fresh token for the next message acks.
func TestFencedRejoin_Evicted(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		opts := fast(queue.Options{})
		q := setup(t, b, opts).q
		// X's process loses its network, so nothing beats for X.
		sw := newNetSwitch()
		qX := setupOn(t, switchedClient(t, b, sw), b.Prefix, opts)
		t.Cleanup(sw.Heal) // runs before qX.Close
		const room = "fence-evict"
		y := join(t, ctx, q, room)
		x := join(t, ctx, qX, room)
		xid := x.ClientID()
		k := send(t, ctx, q, room, "k")
		k1 := send(t, ctx, q, room, "k+1")
		old := next(t, ctx, x)
		require.Equal(t, k, old.ID)
		myk := next(t, ctx, y) // not acked yet: k stays in flight

		sw.Cut()
		waitEvent(t, ctx, q, room, isClientEvent(streams.Evict, xid))
		sw.Heal()
		require.ErrorIs(t, nextErr(t, ctx, x), queue.ErrEvicted)
		require.Equal(t, k, view(t, ctx, q, room).InFlight, "k must still be in flight (Y has not acked it)")

		// X comes back with the same client ID, in another process.
		x2 := join(t, ctx, q, room, queue.WithClientID(xid))
		st := view(t, ctx, q, room)
		require.Equal(t, []string{y.ClientID()}, st.Missing, "X joined again mid-flight: only Y owes k")
		fencedAck(t, ctx, q, nil, room, old, xid)

		// The room goes on: Y's ack releases k+1 to both, and X's fresh token acks.
		require.NoError(t, myk.Ack(ctx))
		fresh := next(t, ctx, x2)
		require.Equal(t, k1, fresh.ID)
		require.NotEqual(t, old.AckToken, fresh.AckToken)
		require.NoError(t, fresh.Ack(ctx), "the new membership's token")
		require.Equal(t, []string{y.ClientID()}, view(t, ctx, q, room).Missing)
		require.ErrorIs(t, q.Ack(ctx, xid, old.AckToken), queue.ErrStaleAck, "the old token, now also for an older message")
		require.NoError(t, next(t, ctx, y).Ack(ctx))
		require.Zero(t, view(t, ctx, q, room).InFlight)
	})
}

// TestFencedRejoin_Left: the same as TestFencedRejoin_Evicted with a leave
// (Subscription.Close) instead of an eviction, in one process.
func TestFencedRejoin_Left(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "fence-leave"
		y := join(t, ctx, q, room)
		x := join(t, ctx, q, room)
		xid := x.ClientID()
		k := send(t, ctx, q, room, "k")
		k1 := send(t, ctx, q, room, "k+1")
		old := next(t, ctx, x)
		require.Equal(t, k, old.ID)
		myk := next(t, ctx, y)
		require.NoError(t, x.Close(ctx))
		require.Equal(t, k, view(t, ctx, q, room).InFlight)

		x2 := join(t, ctx, q, room, queue.WithClientID(xid))
		fencedAck(t, ctx, q, nil, room, old, xid)

		require.NoError(t, myk.Ack(ctx))
		fresh := next(t, ctx, x2)
		require.Equal(t, k1, fresh.ID)
		require.NoError(t, q.Ack(ctx, xid, fresh.AckToken), "the new membership's token")
		require.Equal(t, []string{y.ClientID()}, view(t, ctx, q, room).Missing)

		// Through the producer-side API too: Unsubscribe, Subscribe again.
		myk1 := next(t, ctx, y)
		require.NoError(t, q.Unsubscribe(ctx, xid, room))
		require.NoError(t, q.Subscribe(ctx, xid, room))
		require.ErrorIs(t, fresh.Ack(ctx), queue.ErrStaleAck, "a token of the membership before Unsubscribe")
		require.Equal(t, []string{y.ClientID()}, view(t, ctx, q, room).Missing)
		require.NoError(t, myk1.Ack(ctx))
	})
}

// TestFencedRejoin_LiveResubscribe: subscribing again while still a member
// is the same membership: the tokens issued before stay valid, and the
// owed in-flight message handed to the new subscription carries the same
// token.
func TestFencedRejoin_LiveResubscribe(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "fence-live"
		y := join(t, ctx, q, room)
		x := join(t, ctx, q, room)
		xid := x.ClientID()
		k := send(t, ctx, q, room, "k")
		k1 := send(t, ctx, q, room, "k+1")
		m := next(t, ctx, x)
		require.Equal(t, k, m.ID)
		require.NoError(t, q.Subscribe(ctx, xid, room), "subscribing a live member again")

		// A restarted gateway subscribes the same client again.
		q2 := setup(t, b, queue.Options{}).q
		x2 := join(t, ctx, q2, room, queue.WithClientID(xid))
		owed := next(t, ctx, x2)
		require.Equal(t, k, owed.ID)
		require.Equal(t, m.AckToken, owed.AckToken, "the owed message is redelivered with the same token")
		require.NoError(t, m.Ack(ctx), "a token from before the re-subscribe")
		require.NoError(t, owed.Ack(ctx), "a repeated ack")
		require.Equal(t, []string{y.ClientID()}, view(t, ctx, q, room).Missing)
		require.NoError(t, next(t, ctx, y).Ack(ctx))
		require.Equal(t, k1, next(t, ctx, x2).ID)
	})
}

// TestFencedRejoin_Worker: the gateway form. A client hosted by a worker
// that nobody pings is evicted while it holds message k; the gateway
// subscribes it again; its old token is refused by Worker.Ack, Message.Ack
// and Queue.Ack (ack_batch.lua and ack.lua), and the next message's token
// acks. The same with a follow-all worker, which learns the new membership
// from the join entry of the stream.
func TestFencedRejoin_Worker(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		for _, followAll := range []bool{false, true} {
			name := "hosted"
			if followAll {
				name = "follow-all"
			}
			t.Run(name, func(t *testing.T) { fencedWorker(t, b, followAll) })
		}
	})
}

func fencedWorker(t *testing.T, b *redistest.Backend, followAll bool) {
	ctx := testContext(t)
	q := setup(t, b, fast(queue.Options{})).q
	room := "fence-worker"
	if followAll {
		room = "fence-follow-all"
	}
	xid, err := q.CreateClientID(ctx)
	require.NoError(t, err)
	in := make(chan *queue.Message, 16)
	timeouts := make(chan string, 4)
	w, err := q.NewWorker(queue.WorkerOptions{
		FollowAll:         followAll,
		DiscoveryInterval: 50 * time.Millisecond,
		HandleMessage: func(_ context.Context, c string, m *queue.Message) error {
			if c == xid { // a follow-all worker delivers for Y too
				in <- m
			}
			return nil
		},
		HandleClientTimeout: func(_ context.Context, c, _ string) error {
			if c == xid {
				timeouts <- c
			}
			return nil
		},
	})
	require.NoError(t, err)
	defer w.Close()
	wait, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	recv := func() *queue.Message {
		t.Helper()
		select {
		case m := <-in:
			return m
		case <-wait.Done():
			t.Fatal("no delivery for X")
			return nil
		}
	}
	subscribeX := func() {
		t.Helper()
		if followAll {
			require.NoError(t, q.Subscribe(ctx, xid, room))
		} else {
			require.NoError(t, w.Subscribe(ctx, xid, room))
		}
	}

	y := join(t, ctx, q, room) // the Queue beats for Y
	if followAll {
		// The worker follows the room before X joins: it learns of X
		// from its join entry.
		require.NoError(t, wkWaitFor(wait, "the worker to find the room", func() (bool, error) {
			return w.Stats().Rooms == 1, nil
		}))
	}
	subscribeX() // nobody beats for X
	k := send(t, ctx, q, room, "k")
	k1 := send(t, ctx, q, room, "k+1")
	old := recv()
	require.Equal(t, k, old.ID)
	myk := next(t, ctx, y)
	select {
	case <-timeouts:
	case <-wait.Done():
		t.Fatal("X was not evicted")
	}
	require.Equal(t, k, view(t, ctx, q, room).InFlight)

	subscribeX()
	// From now on the end client pings through the gateway.
	pingCtx, stopPing := context.WithCancel(ctx)
	var pings sync.WaitGroup
	pings.Go(func() {
		tk := time.NewTicker(shortTimeout / 5)
		defer tk.Stop()
		for {
			_ = q.Ping(pingCtx, xid)
			select {
			case <-pingCtx.Done():
				return
			case <-tk.C:
			}
		}
	})
	defer pings.Wait()
	defer stopPing()
	fencedAck(t, ctx, q, w, room, old, xid)

	require.NoError(t, myk.Ack(ctx))
	fresh := recv()
	require.Equal(t, k1, fresh.ID)
	require.NoError(t, w.Ack(ctx, xid, fresh.AckToken), "the new membership's token")
	require.Equal(t, []string{y.ClientID()}, view(t, ctx, q, room).Missing)
}

// TestFencedRejoin_WorkerMissedLeave: a hosted client is removed by
// another process and the gateway subscribes it again before or after
// the worker read the leave, as it happens. Either way the worker goes on
// delivering to it, with tokens of its new membership.
func TestFencedRejoin_WorkerMissedLeave(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "fence-missed-leave"
		in := make(chan *queue.Message, 16)
		timeouts := make(chan string, 4)
		w, err := q.NewWorker(queue.WorkerOptions{
			AutoHeartbeat: true,
			HandleMessage: func(_ context.Context, _ string, m *queue.Message) error {
				in <- m
				return nil
			},
			HandleClientTimeout: func(_ context.Context, c, _ string) error {
				timeouts <- c
				return nil
			},
		})
		require.NoError(t, err)
		defer w.Close()
		y := join(t, ctx, q, room)
		xid, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, w.Subscribe(ctx, xid, room))
		var prev *queue.Message
		for i := range 6 {
			require.NoError(t, q.Unsubscribe(ctx, xid, room), "round %d", i)
			require.NoError(t, w.Subscribe(ctx, xid, room), "round %d", i)
			id := send(t, ctx, q, room, i)
			wait, cancel := context.WithTimeout(ctx, waitLimit)
			var m *queue.Message
			select {
			case m = <-in:
			case <-wait.Done():
				t.Fatalf("round %d: no delivery for X after it subscribed again", i)
			}
			cancel()
			require.Equal(t, id, m.ID, "round %d", i)
			if prev != nil {
				require.ErrorIs(t, w.Ack(ctx, xid, prev.AckToken), queue.ErrStaleAck, "round %d: the previous membership's token", i)
			}
			require.NoError(t, w.Ack(ctx, xid, m.AckToken), "round %d", i)
			require.Equal(t, []string{y.ClientID()}, view(t, ctx, q, room).Missing, "round %d", i)
			require.NoError(t, next(t, ctx, y).Ack(ctx), "round %d", i)
			prev = m
		}
		require.Empty(t, timeouts, "a leave is no eviction")
	})
}

// TestFencedRejoin_WorkerMissedEviction: the join that subscribes a hosted
// client again is the call that evicts it (nothing else ran on the room
// since its deadline passed), so the worker learns of the eviction only
// after the new membership began. The eviction is reported once, and the
// client goes on under its new membership.
func TestFencedRejoin_WorkerMissedEviction(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		// No housekeeping and nobody beating: only a script on the room
		// can evict the client.
		q := setup(t, b, queue.Options{ClientTimeout: shortTimeout, DisableHousekeeping: true}).q
		const room = "fence-missed-evict"
		in := make(chan *queue.Message, 16)
		timeouts := make(chan string, 4)
		w, err := q.NewWorker(queue.WorkerOptions{
			HandleMessage: func(_ context.Context, _ string, m *queue.Message) error {
				in <- m
				return nil
			},
			HandleClientTimeout: func(_ context.Context, c, _ string) error {
				timeouts <- c
				return nil
			},
		})
		require.NoError(t, err)
		defer w.Close()
		wait, cancel := context.WithTimeout(ctx, waitLimit)
		defer cancel()
		recv := func() *queue.Message {
			t.Helper()
			select {
			case m := <-in:
				return m
			case <-wait.Done():
				t.Fatal("no delivery")
				return nil
			}
		}
		xid, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, w.Subscribe(ctx, xid, room))
		send(t, ctx, q, room, "k")
		old := recv()
		deadline := roomState(t, ctx, q, room).Members[0].Deadline
		require.NoError(t, wkWaitFor(wait, "X's deadline to pass", func() (bool, error) {
			return serverTime(t, ctx, b.Client).After(deadline.Add(10 * time.Millisecond)), nil
		}))

		require.NoError(t, w.Subscribe(ctx, xid, room)) // evicts X, then joins it again
		evs := history(t, ctx, q, room)
		require.Equal(t, 1, len(ofType(evs, streams.Evict)), "the join evicted X")
		select {
		case c := <-timeouts:
			require.Equal(t, xid, c)
		case <-wait.Done():
			t.Fatal("the eviction was not reported")
		}
		k1 := send(t, ctx, q, room, "k+1")
		fresh := recv()
		require.Equal(t, k1, fresh.ID)
		require.ErrorIs(t, w.Ack(ctx, xid, old.AckToken), queue.ErrStaleAck)
		require.NoError(t, w.Ack(ctx, xid, fresh.AckToken), "the new membership's token")
		require.Zero(t, view(t, ctx, q, room).InFlight)
		require.Empty(t, timeouts, "the eviction was reported more than once")
	})
}
