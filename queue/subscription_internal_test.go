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

// TestSubscriptionEndCountedFirst: a subscription ended by another
// goroutine (the heartbeat that found its client gone, or a kick) is
// counted in Stats before its error is visible, so that a caller whose
// Next just returned the error finds the eviction counted. It was counted
// after the end, router and ack bookkeeping included: a test reading
// Stats right after Next could see one too few.
func TestSubscriptionEndCountedFirst(t *testing.T) {
	t.Parallel()
	ctx, q := internalQueue(t)

	for i, end := range []func(*Subscription){
		func(s *Subscription) { s.fail(&EvictedError{ClientID: s.clientID, Rooms: []string{s.room}}) },
		func(s *Subscription) { s.endKicked(&KickedError{ClientID: s.clientID, Room: s.room, Actor: "test"}) },
	} {
		s, err := q.Join(ctx, "room")
		require.NoError(t, err)
		before := q.stats.EvictedTimeout.Load() + q.stats.Kicked.Load()
		// Holding the router's lock stops the end in its bookkeeping,
		// after the error is set: what a waiting Next may see then is
		// what this reads.
		q.router.mu.Lock()
		done := make(chan struct{})
		go func() { defer close(done); end(s) }()
		var counted uint64
		require.Eventually(t, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			counted = q.stats.EvictedTimeout.Load() + q.stats.Kicked.Load()
			return s.err != nil
		}, 10*time.Second, time.Millisecond)
		q.router.mu.Unlock()
		<-done
		require.Equal(t, before+1, counted, "end %d: the error was visible before the end was counted", i)
		_, err = s.Next(ctx)
		var ev *EvictedError
		var kk *KickedError
		require.True(t, errors.As(err, &ev) || errors.As(err, &kk), "%v", err)
		_ = s.Close(ctx)
	}
}

// TestSubscriptionEvictionCountedOnce: a subscription's eviction is counted
// once, by whichever ends it first: its heartbeat finding the client gone,
// or Next handing out the evict event it had already taken off the buffer
// when the heartbeat ended it.
func TestSubscriptionEvictionCountedOnce(t *testing.T) {
	t.Parallel()
	ctx, q := internalQueue(t)

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

// internalQueue is a Queue on the shared standalone server, for the tests
// that reach into a subscription's internals, with a context that ends
// with the test.
func internalQueue(t *testing.T) (context.Context, *Queue) {
	t.Helper()
	b := redistest.Standalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	q, err := New(ctx, b.Client, Options{Prefix: b.Prefix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return ctx, q
}
