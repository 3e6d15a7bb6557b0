package queue

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLatencyRing: Metrics' latencies cover exactly the last n samples, so
// an old spike leaves the window after n messages.
func TestLatencyRing(t *testing.T) {
	t.Parallel()
	l := newLatencyRing(3)
	lo, hi, avg, n := l.stats()
	require.Zero(t, lo+hi+avg)
	require.Zero(t, n)
	ms := time.Millisecond
	for _, d := range []time.Duration{5 * ms, ms, 9 * ms} {
		l.add(d)
	}
	lo, hi, avg, n = l.stats()
	require.Equal(t, []time.Duration{ms, 9 * ms, 5 * ms}, []time.Duration{lo, hi, avg})
	require.Equal(t, 3, n)
	l.add(2 * ms) // 5ms leaves the window
	lo, hi, avg, n = l.stats()
	require.Equal(t, []time.Duration{ms, 9 * ms, 4 * ms}, []time.Duration{lo, hi, avg})
	require.Equal(t, 3, n)
	l.add(10 * ms)
	l.add(12 * ms) // the window is now 2, 10, 12
	lo, hi, avg, n = l.stats()
	require.Equal(t, []time.Duration{2 * ms, 12 * ms, 8 * ms}, []time.Duration{lo, hi, avg})
	require.Equal(t, 3, n)
	for range 3 {
		l.add(-ms) // clock skew: kept as measured
	}
	lo, hi, avg, _ = l.stats()
	require.Equal(t, []time.Duration{-ms, -ms, -ms}, []time.Duration{lo, hi, avg})
}
