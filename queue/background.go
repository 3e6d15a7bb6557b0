package queue

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// How background work (heartbeats, housekeeping, discovery, the readers'
// checks, the leaves of Close) behaves under load and failure: a bounded
// number of calls at once, a jittered backoff before a retry, warnings
// rate-limited per loop, and a bound on the leaves Close makes.

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

// retryBackoff is the pause before a background loop retries after a
// failed round: from retryMin doubling to limit, with ±20% jitter so that
// the processes of a deployment do not retry in step.
type retryBackoff struct {
	n int
}

const retryMin = 100 * time.Millisecond

func (b *retryBackoff) next(limit time.Duration) time.Duration {
	d := retryMin << min(b.n, 16)
	b.n++
	d = min(d, limit)
	return d - d/5 + time.Duration(rand.Int64N(int64(d*2/5)+1))
}

func (b *retryBackoff) reset() { b.n = 0 }

// logEvery is how often a background loop logs the same kind of failure;
// the rest are counted and reported with the next line.
const logEvery = 5 * time.Second

// warnLimiter rate-limits one background loop's warnings: while Redis is
// away, a loop would otherwise log on every retry (the subscribers of a
// killed master wrote thousands of lines a minute).
type warnLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// warn logs msg unless this limiter logged less than logEvery ago, in
// which case it only counts it.
func (l *warnLimiter) warn(log *slog.Logger, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
