package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestRoomStateOfUnusedRoom: rooms exist implicitly, so a room that holds
// nothing has an empty state and no error (the CLI shows it the same way).
// SendOutOfBand validates Priority and otherwise ignores it.
func TestRoomStateOfUnusedRoom(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		st, err := q.RoomState(ctx, "never-used")
		require.NoError(t, err)
		require.Equal(t, "never-used", st.Room)
		require.Zero(t, st.LastSeq)
		require.Zero(t, st.Pending)
		require.Nil(t, st.InFlight)
		require.Empty(t, st.Members)
		require.Zero(t, st.StreamLen)

		_, err = q.SendOutOfBand(ctx, "oob", "x", queue.Priority(42))
		require.ErrorIs(t, err, queue.ErrInvalidPriority)
		_, err = q.SendOutOfBand(ctx, "oob", "x", queue.Priority(0))
		require.NoError(t, err)
	})
}

// TestNextReportsRedisDown: with Redis down, Next returns a *ReadError
// wrapping the Redis error long before the caller's deadline, instead of
// the deadline's error; the subscription stays open and delivers again
// once Redis is back. On private servers (with AOF, so the room survives
// the restart): a standalone one, and the cluster master of the room.
func TestNextReportsRedisDown(t *testing.T) {
	t.Parallel()
	t.Run(redistest.NameStandalone, func(t *testing.T) {
		t.Parallel()
		srv := redistest.NewServer(t, redistest.ServerOptions{AOF: true})
		testNextReportsRedisDown(t, srv.Client(t), func(string) *redistest.Server { return srv })
	})
	t.Run(redistest.NameCluster, func(t *testing.T) {
		t.Parallel()
		c := redistest.NewCluster(t, redistest.ClusterOptions{Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
		testNextReportsRedisDown(t, c.Client(t), func(streamKey string) *redistest.Server {
			srv, err := c.MasterForSlot(testContext(t), keys.Slot(streamKey))
			require.NoError(t, err)
			return srv
		})
	})
}

func testNextReportsRedisDown(t *testing.T, rdb redis.UniversalClient, serverOf func(streamKey string) *redistest.Server) {
	q := setupOn(t, rdb, "nextdown", queue.Options{})
	ctx := testContext(t)
	sub := join(t, ctx, q, "r")
	send(t, ctx, q, "r", "before")
	m := next(t, ctx, sub)
	require.Equal(t, "before", text(t, m))
	require.NoError(t, m.Ack(ctx))
	key, err := q.StreamKey("r")
	require.NoError(t, err)
	srv := serverOf(key)

	require.NoError(t, srv.Stop())
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	began := time.Now()
	_, err = sub.Next(wait)
	var re *queue.ReadError
	require.ErrorAs(t, err, &re, "got %v after %v", err, time.Since(began))
	require.Equal(t, "r", re.Room)
	require.NotErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, wait.Err(), "the error came with the deadline")

	require.NoError(t, srv.Restart())
	// Read errors may still come while the reader reconnects; the message
	// sent after the restart arrives.
	for {
		_, err := q.Send(ctx, "r", "after")
		if err == nil {
			break
		}
		require.NoError(t, ctx.Err(), "Send after the restart: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	for {
		m, err := sub.Next(ctx)
		if errors.As(err, &re) {
			continue
		}
		require.NoError(t, err)
		require.Equal(t, "after", text(t, m))
		break
	}
}
