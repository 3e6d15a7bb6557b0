package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/streams"
)

// TestSubscriptionEvictionCountedOnce: a subscription's eviction is counted
// once, by whichever ends it first: its heartbeat finding the client gone,
// or Next handing out the evict event it had already taken off the buffer
// when the heartbeat ended it.
func TestSubscriptionEvictionCountedOnce(t *testing.T) {
	t.Parallel()
	b := redistest.Standalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := New(ctx, b.Client, Options{Prefix: b.Prefix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })

	s, err := q.Join(ctx, "room")
	require.NoError(t, err)
	evictions := func() uint64 {
		return q.stats.EvictedTimeout.Load() + q.stats.EvictedAckTimeout.Load() + q.stats.EvictedMaxLag.Load()
	}
	before := evictions()
	s.fail(&EvictedError{ClientID: s.clientID, Rooms: []string{s.room}})
	_, err = s.deliver(ctx, streams.Event{Type: streams.Evict, Room: s.room, ClientID: s.clientID, Reason: EvictReasonAckTimeout})
	var ev *EvictedError
	require.True(t, errors.As(err, &ev), "%v", err)
	require.Equal(t, before+1, evictions(), "one eviction, counted twice")
	_ = s.Close(ctx)
}
