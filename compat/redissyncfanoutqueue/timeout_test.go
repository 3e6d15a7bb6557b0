package redissyncfanoutqueue_test

import (
	"context"
	"errors"
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
		// Not the shortest timeout allowed (1s): the pinger's 200ms ticks
		// must keep both members alive through a loaded machine's stalls
		// until the worker knows them.
		c := newAPI(t, ctx, apiOptions(t, b, 2*time.Second))

		type timeout struct{ client, room string }
		timeouts := make(chan timeout, 10)
		delivered := make(chan string, 10)
		wo := workerOptions(t, b)
		wo.HandleMessage = func(_ context.Context, clientId *string, _ *rsfq.Message) error {
			select {
			case delivered <- *clientId:
			default: // redeliveries, not needed
			}
			return nil
		}
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
		require.NoError(t, c.Subscribe(ctx, silent, room))
		require.NoError(t, c.Subscribe(ctx, leaver, room))
		// Both are kept alive until the worker delivered them a message:
		// it follows the room and knows them as members, however long the
		// machine takes to get there. Only then does silent stop pinging.
		stop := pinger(t, c, silent, leaver)
		require.NoError(t, c.Send(ctx, "p", room, "held", 1))
		got := map[string]bool{}
		for len(got) < 2 {
			select {
			case id := <-delivered:
				got[id] = true
			case <-ctx.Done():
				t.Fatal("the worker did not deliver the message to both members")
			}
		}
		require.NoError(t, c.Unsubscribe(ctx, leaver, room))
		// The eviction empties the room: the worker reports it although
		// the room leaves its shard's index in the same step.
		stop()

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
		require.Empty(t, st.KnownClients)
	})
}
