package redissyncfanoutqueue_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	rsfq "github.com/syncfanout/syncfanout/compat/redissyncfanoutqueue"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestHandleRoomClientTimeout: a member that stops pinging is evicted
// (without the original's need for a particular process's housekeeping),
// the worker's HandleRoomClientTimeout is told, its next Ping says so, and a
// member that unsubscribed is not reported as timed out.
func TestHandleRoomClientTimeout(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		const room = "GO-ROOM-TEST"
		c := newAPI(t, ctx, apiOptions(t, b, time.Second)) // the shortest timeout allowed

		type timeout struct{ client, room string }
		timeouts := make(chan timeout, 10)
		wo := workerOptions(t, b)
		wo.HandleMessage = func(context.Context, *string, *rsfq.Message) error { return nil }
		wo.HandleRoomClientTimeout = func(ctx context.Context, clientId *string, roomId *string) error {
			timeouts <- timeout{*clientId, *roomId}
			return nil
		}
		worker, err := rsfq.NewWorkerClient(ctx, wo)
		require.NoError(t, err)
		defer func() { require.NoError(t, worker.Close()) }()

		silent, err := c.CreateClientID(ctx)
		require.NoError(t, err)
		leaver, err := c.CreateClientID(ctx)
		require.NoError(t, err)
		keeper, err := c.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Subscribe(ctx, silent, room))
		require.NoError(t, c.Subscribe(ctx, leaver, room))
		// A pinged member keeps the room in the index: a follow-all
		// queue.Worker that drops an emptied room before reading its last
		// events misses the eviction that emptied it (a queue issue, left
		// to that package).
		require.NoError(t, c.Subscribe(ctx, keeper, room))
		pinger(t, c, keeper)
		// Hold a message in flight, so the worker follows the room.
		require.NoError(t, c.Send(ctx, "p", room, "held", 1))
		require.NoError(t, c.Unsubscribe(ctx, leaver, room))

		select {
		case got := <-timeouts:
			require.Equal(t, timeout{silent, room}, got, "only the silent member timed out")
		case <-ctx.Done():
			t.Fatal("HandleRoomClientTimeout was not called")
		}
		err = c.Ping(ctx, silent)
		require.ErrorIs(t, err, queue.ErrEvicted)
		var ev *queue.EvictedError
		require.True(t, errors.As(err, &ev))
		st, err := c.GetRoomState(ctx, room)
		require.NoError(t, err)
		require.Equal(t, []string{keeper}, slices.Collect(maps.Keys(st.KnownClients)))
	})
}
