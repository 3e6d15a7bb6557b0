package queue

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestForEachBounded: every item is handed to f exactly once, never more
// than n calls run at once, and it returns only after the last call.
func TestForEachBounded(t *testing.T) {
	for _, tc := range []struct{ items, n int }{{0, 4}, {1, 4}, {3, 4}, {100, 4}, {100, 1}} {
		items := make([]int, tc.items)
		for i := range items {
			items[i] = i
		}
		var mu sync.Mutex
		seen := map[int]int{}
		var running, peak atomic.Int32
		forEachBounded(items, tc.n, func(i int) {
			now := running.Add(1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
			running.Add(-1)
		})
		require.Len(t, seen, tc.items, "%+v", tc)
		for i, n := range seen {
			require.Equal(t, 1, n, "item %d of %+v", i, tc)
		}
		require.LessOrEqual(t, int(peak.Load()), tc.n, "%+v", tc)
		require.Zero(t, running.Load(), "returned before a call ended (%+v)", tc)
	}
}
