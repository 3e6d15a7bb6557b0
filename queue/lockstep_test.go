package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestLockStepSmoke is the shortest end-to-end path: two in-process
// members, three messages, each released only after both acked.
func TestLockStepSmoke(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix})
		require.NoError(t, err)
		defer q.Close()
		a, err := q.Join(ctx, "room")
		require.NoError(t, err)
		c, err := q.Join(ctx, "room")
		require.NoError(t, err)
		for i := range 3 {
			_, err := q.Send(ctx, "room", i)
			require.NoError(t, err)
		}
		for i := range 3 {
			ma, err := a.Next(ctx)
			require.NoError(t, err)
			var got int
			require.NoError(t, ma.Decode(&got))
			require.Equal(t, i, got)
			require.NoError(t, ma.Ack(ctx))
			st, err := q.RoomState(ctx, "room")
			require.NoError(t, err)
			require.Equal(t, []string{c.ClientID()}, st.Missing, "message %d must wait for the second member", i)
			mc, err := c.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, ma.ID, mc.ID)
			require.NoError(t, mc.Ack(ctx))
		}
	})
}

// TestGarbageInPendingListIsDropped: an entry pushed into a priority list
// by something other than Send must neither fail the scripts halfway (Redis
// keeps a failed script's earlier writes) nor block the room. Peek lists
// such entries where they are, flagged (see TestPoisonPendingEntrySetAside).
func TestGarbageInPendingListIsDropped(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix})
		require.NoError(t, err)
		defer q.Close()
		sub, err := q.Join(ctx, "room")
		require.NoError(t, err)
		first, err := q.Send(ctx, "room", "first")
		require.NoError(t, err)
		layout, err := keys.New(b.Prefix, 16)
		require.NoError(t, err)
		list := layout.Queue("room", 0) // priority 0: popped before anything else
		for _, junk := range []string{"junk", "1:2:999:x", "", "::::"} {
			require.NoError(t, b.Client.RPush(ctx, list, junk).Err())
		}
		second, err := q.Send(ctx, "room", "second")
		require.NoError(t, err)
		peeked, err := q.Peek(ctx, "room", 0, 10)
		require.NoError(t, err)
		require.Len(t, peeked, 5, "Peek lists the entries it cannot read, flagged")
		for _, p := range peeked[:4] {
			require.ErrorIs(t, p.Err, queue.ErrDecode)
		}
		require.NoError(t, peeked[4].Err)
		require.Equal(t, second, peeked[4].ID)

		for _, want := range []uint64{first, second} {
			m, err := sub.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, want, m.ID)
			require.NoError(t, m.Ack(ctx))
		}
		st, err := q.RoomState(ctx, "room")
		require.NoError(t, err)
		require.Zero(t, st.Pending)
		require.Zero(t, b.Client.LLen(ctx, list).Val())

		// The counters stayed right: later sends are released as usual.
		third, err := q.Send(ctx, "room", "third")
		require.NoError(t, err)
		fourth, err := q.Send(ctx, "room", "fourth")
		require.NoError(t, err)
		st, err = q.RoomState(ctx, "room")
		require.NoError(t, err)
		require.Equal(t, 1, st.Pending)
		for _, want := range []uint64{third, fourth} {
			m, err := sub.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, want, m.ID)
			require.NoError(t, m.Ack(ctx))
		}
	})
}
