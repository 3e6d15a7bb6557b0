package queue

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestAckBatchStatuses drives ack_batch.lua directly: each client of a
// batch gets the status a lone ack would, refused ones change nothing,
// a repeated ack keeps the time of the first, a token from another
// membership of its client is refused, and the batch that brings the last
// missing acks completes the message (without writing them) and releases
// the next.
func TestAckBatchStatuses(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		q, err := New(ctx, b.Client, Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
		require.NoError(t, err)
		defer q.Close()
		const room = "batch-statuses"
		id := func() string {
			c, err := q.CreateClientID(ctx)
			require.NoError(t, err)
			return c
		}
		a, c, d, obs, stranger := id(), id(), id(), id(), id()
		inc := map[string]string{} // the members' incarnations
		for _, m := range []string{a, c, d} {
			j, err := q.subscribe(ctx, m, room, false)
			require.NoError(t, err)
			require.NotEmpty(t, j.Incarnation)
			inc[m] = j.Incarnation
		}
		incs := func(clients []string) []string {
			out := make([]string, len(clients))
			for i, c := range clients {
				out[i] = inc[c]
			}
			return out
		}
		require.NoError(t, q.SubscribeObserver(ctx, obs, room))
		first, err := q.Send(ctx, room, []byte("one"))
		require.NoError(t, err)
		second, err := q.Send(ctx, room, []byte("two"))
		require.NoError(t, err)
		st, err := q.RoomState(ctx, room)
		require.NoError(t, err)
		require.Equal(t, first, st.InFlight.Seq)
		epoch := st.Epoch

		batch := func(seq uint64, ep string, clients ...string) []error {
			t.Helper()
			res, err := q.barrier.AckBatch(ctx, room, seq, ep, clients, incs(clients))
			require.NoError(t, err)
			require.Len(t, res.Errs, len(clients))
			return res.Errs
		}
		missing := func() []string {
			t.Helper()
			st, err := q.RoomState(ctx, room)
			require.NoError(t, err)
			return st.Missing
		}
		sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

		// Mixed: a member (twice), a stranger, an observer.
		errs := batch(first, epoch, a, a, stranger, obs)
		require.NoError(t, errs[0])
		require.NoError(t, errs[1], "a repeated client in a batch is an accepted ack")
		require.ErrorIs(t, errs[2], ErrNotMember)
		require.ErrorIs(t, errs[3], ErrObserver)
		require.Equal(t, sorted(c, d), missing())
		st, err = q.RoomState(ctx, room)
		require.NoError(t, err)
		var ackedAt time.Time
		for _, m := range st.Members {
			if m.ClientID == a {
				ackedAt = m.AckedAt
			}
		}
		require.False(t, ackedAt.IsZero())

		// Whole-batch refusals change nothing.
		for _, e := range batch(second, epoch, c, stranger) {
			require.Error(t, e)
		}
		require.ErrorIs(t, batch(second, epoch, c)[0], ErrStaleAck, "a message not in flight")
		require.ErrorIs(t, batch(second+10, epoch, c)[0], ErrInvalidToken, "a seq never issued")
		for _, e := range batch(first, "1-0", c, d) {
			require.ErrorIs(t, e, ErrRoomReset)
		}
		require.Equal(t, sorted(c, d), missing())

		// A token from another membership of c, beside a good one of d.
		res, err := q.barrier.AckBatch(ctx, room, first, epoch, []string{c, d}, []string{"1-0", inc[d]})
		require.NoError(t, err)
		require.ErrorIs(t, res.Errs[0], ErrStaleAck)
		require.NoError(t, res.Errs[1])
		require.Equal(t, []string{c}, missing())
		_, err = q.barrier.AckBatch(ctx, room, first, epoch, []string{c}, nil)
		require.ErrorIs(t, err, ErrInvalidBatch, "clients and incarnations differ in number")

		// A repeated ack keeps its first time; the batch is still short of c.
		time.Sleep(5 * time.Millisecond)
		for _, e := range batch(first, epoch, a) {
			require.NoError(t, e)
		}
		require.Equal(t, []string{c}, missing())
		st, err = q.RoomState(ctx, room)
		require.NoError(t, err)
		for _, m := range st.Members {
			if m.ClientID == a {
				require.Equal(t, ackedAt, m.AckedAt, "a repeated ack rewrote the time of the first")
			}
		}

		// The last missing ack, with a refused client beside it, completes
		// the message and releases the next one, which nobody acked yet.
		res, err = q.barrier.AckBatch(ctx, room, first, epoch, []string{stranger, c}, incs([]string{stranger, c}))
		require.NoError(t, err)
		require.ErrorIs(t, res.Errs[0], ErrNotMember)
		require.NoError(t, res.Errs[1])
		require.True(t, res.Completed)
		require.Equal(t, 1, res.Released)
		require.Equal(t, second, res.ReleasedSeq)
		st, err = q.RoomState(ctx, room)
		require.NoError(t, err)
		require.Equal(t, second, st.InFlight.Seq)
		require.Equal(t, sorted(a, c, d), st.Missing)

		// All three at once complete it in one call.
		res, err = q.barrier.AckBatch(ctx, room, second, epoch, []string{d, c, a}, incs([]string{d, c, a}))
		require.NoError(t, err)
		require.True(t, res.Completed)
		st, err = q.RoomState(ctx, room)
		require.NoError(t, err)
		require.Nil(t, st.InFlight)
		require.Zero(t, st.Pending)
	})
}
