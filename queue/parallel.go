package queue

import (
	"sync"
	"time"
)

// maxParallelCalls bounds the Redis calls one round of background work
// (heartbeats, the leaves of Close) has out at once: one after the other, a
// process with many rooms could take longer than ClientTimeout to get round
// them, all at once it would open a connection per room.
const maxParallelCalls = 16

// forEachBounded calls f for every item, at most n at a time, and returns
// once every call has returned.
func forEachBounded[T any](items []T, n int, f func(T)) {
	work := make(chan T)
	var wg sync.WaitGroup
	for range min(len(items), n) {
		wg.Go(func() {
			for it := range work {
				f(it)
			}
		})
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
}

// leaveOnCloseTimeout bounds the leaves Queue.Close and Worker.Close make
// for their clients (Close has no context). A leave only saves the room's
// other members the wait for an eviction, ClientTimeout (15s by default),
// so giving up on it well before that costs at most what not leaving costs.
// 5s rather than the 2s Queue.Close had: the Queue's subscriptions leave one
// after the other within this one budget, and a Redis failover (a new
// master elected, the client reconnecting) takes a few seconds; a leave
// that cannot finish within 5s is no better than the eviction.
const leaveOnCloseTimeout = 5 * time.Second
