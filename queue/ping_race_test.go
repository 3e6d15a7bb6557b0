package queue_test

import (
	"context"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// sremHook runs once, just before the first SREM its client sends.
type sremHook struct {
	once sync.Once
	fn   func()
}

func (h *sremHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *sremHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *sremHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "srem" {
			h.once.Do(h.fn)
		}
		return next(ctx, cmd)
	}
}

// TestPingRacesResubscribe: a Ping that found the client gone from a room
// must not forget the room when the client subscribes to it again before
// the Ping drops it from the client's room set; otherwise nobody beats for
// the new membership and the client is evicted from a room it is in.
func TestPingRacesResubscribe(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		const room = "ping-race"
		other := setup(t, b, fast(queue.Options{})).q
		id := subscribe(t, ctx, other, room)
		// Evicted: nobody beats for it.
		waitEvent(t, ctx, other, room, isClientEvent(streams.Evict, id))

		hooked := b.NewClient(t)
		hooked.AddHook(&sremHook{fn: func() {
			// Between the Ping's heartbeat (not a member) and its SREM.
			require.NoError(t, other.Subscribe(ctx, id, room))
		}})
		pinger := setupOn(t, hooked, b.Prefix, fast(queue.Options{}))
		require.NoError(t, pinger.Ping(ctx, id), "the client is a member again when the Ping ends")
		require.NoError(t, pinger.Ping(ctx, id), "the room was dropped from the client's room set")
		st := roomState(t, ctx, other, room)
		require.Len(t, st.Members, 1)
		require.Equal(t, id, st.Members[0].ClientID)
	})
}
