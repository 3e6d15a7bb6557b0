package queue

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

func TestRetryBackoff(t *testing.T) {
	t.Parallel()
	var b retryBackoff
	prev := time.Duration(0)
	for range 20 {
		d := b.next(time.Second)
		require.LessOrEqual(t, d, time.Second*6/5)
		require.GreaterOrEqual(t, d, retryMin*4/5)
		prev = d
	}
	require.GreaterOrEqual(t, prev, time.Second*4/5, "it grows to the limit")
	b.reset()
	require.Less(t, b.next(time.Second), 2*retryMin)
}

func TestWarnLimiter(t *testing.T) {
	t.Parallel()
	h := &countHandler{}
	log := slog.New(h)
	var l warnLimiter
	for range 100 {
		l.warn(log, "x", "err", "boom")
	}
	require.Equal(t, 1, h.n, "one line per logEvery")
	l.mu.Lock()
	l.last = l.last.Add(-logEvery)
	l.mu.Unlock()
	l.warn(log, "x", "err", "boom")
	require.Equal(t, 2, h.n)
	require.EqualValues(t, 99, h.attrs["suppressed"], "the next line counts what was left out")
}
