package barrier_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/internal/sferr"
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
		layout, err := keys.New(b.Prefix, 16)
		require.NoError(t, err)
		br := barrier.New(b.Client, layout, lua.RoomConfig{}, time.Minute)
		const room = "batch-statuses"
		a, c, d, obs, stranger := "a", "c", "d", "obs", "stranger"
		inc := map[string]string{} // the members' incarnations
		for _, m := range []string{a, c, d} {
			j, err := br.Join(ctx, room, m, false)
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
		_, err = br.Join(ctx, room, obs, true)
		require.NoError(t, err)
		enq, err := br.Enqueue(ctx, room, 5, "", 0, []byte("rone"), []byte("rtwo")) // "r": a raw payload (internal/payload)
		require.NoError(t, err)
		first, second := enq.Seq, enq.Seq+1
		st, err := br.State(ctx, room)
		require.NoError(t, err)
		require.Equal(t, first, st.InFlight.Seq)
		epoch := st.Epoch

		batch := func(seq uint64, ep string, clients ...string) []error {
			t.Helper()
			res, err := br.AckBatch(ctx, room, seq, ep, clients, incs(clients))
			require.NoError(t, err)
			require.Len(t, res.Errs, len(clients))
			return res.Errs
		}
		missing := func() []string {
			t.Helper()
			st, err := br.State(ctx, room)
			require.NoError(t, err)
			return st.Missing
		}
		sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

		// Mixed: a member (twice), a stranger, an observer.
		errs := batch(first, epoch, a, a, stranger, obs)
		require.NoError(t, errs[0])
		require.NoError(t, errs[1], "a repeated client in a batch is an accepted ack")
		require.ErrorIs(t, errs[2], sferr.ErrNotMember)
		require.ErrorIs(t, errs[3], sferr.ErrObserver)
		require.Equal(t, sorted(c, d), missing())
		st, err = br.State(ctx, room)
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
		require.ErrorIs(t, batch(second, epoch, c)[0], sferr.ErrStaleAck, "a message not in flight")
		require.ErrorIs(t, batch(second+10, epoch, c)[0], sferr.ErrInvalidToken, "a seq never issued")
		for _, e := range batch(first, "1-0", c, d) {
			require.ErrorIs(t, e, sferr.ErrRoomReset)
		}
		require.Equal(t, sorted(c, d), missing())

		// A token from another membership of c, beside a good one of d.
		res, err := br.AckBatch(ctx, room, first, epoch, []string{c, d}, []string{"1-0", inc[d]})
		require.NoError(t, err)
		require.ErrorIs(t, res.Errs[0], sferr.ErrStaleAck)
		require.NoError(t, res.Errs[1])
		require.Equal(t, []string{c}, missing())
		_, err = br.AckBatch(ctx, room, first, epoch, []string{c}, nil)
		require.ErrorIs(t, err, sferr.ErrInvalidBatch, "clients and incarnations differ in number")

		// A repeated ack keeps its first time; the batch is still short of c.
		time.Sleep(5 * time.Millisecond)
		for _, e := range batch(first, epoch, a) {
			require.NoError(t, e)
		}
		require.Equal(t, []string{c}, missing())
		st, err = br.State(ctx, room)
		require.NoError(t, err)
		for _, m := range st.Members {
			if m.ClientID == a {
				require.Equal(t, ackedAt, m.AckedAt, "a repeated ack rewrote the time of the first")
			}
		}

		// The last missing ack, with a refused client beside it, completes
		// the message and releases the next one, which nobody acked yet.
		res, err = br.AckBatch(ctx, room, first, epoch, []string{stranger, c}, incs([]string{stranger, c}))
		require.NoError(t, err)
		require.ErrorIs(t, res.Errs[0], sferr.ErrNotMember)
		require.NoError(t, res.Errs[1])
		require.True(t, res.Completed)
		require.Equal(t, 1, res.Released)
		require.Equal(t, second, res.ReleasedSeq)
		st, err = br.State(ctx, room)
		require.NoError(t, err)
		require.Equal(t, second, st.InFlight.Seq)
		require.Equal(t, sorted(a, c, d), st.Missing)

		// All three at once complete it in one call.
		res, err = br.AckBatch(ctx, room, second, epoch, []string{d, c, a}, incs([]string{d, c, a}))
		require.NoError(t, err)
		require.True(t, res.Completed)
		st, err = br.State(ctx, room)
		require.NoError(t, err)
		require.Nil(t, st.InFlight)
		require.Zero(t, st.Pending)
	})
}
