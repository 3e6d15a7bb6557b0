package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
