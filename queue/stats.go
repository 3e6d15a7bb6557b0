package queue

import (
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Stats are the in-process counters of one Queue (package metrics exports
// them to Prometheus). Released counts the releases triggered by this
// Queue's own calls.
type Stats struct {
	Sent      atomic.Uint64
	Released  atomic.Uint64
	OutOfBand atomic.Uint64
	Delivered atomic.Uint64 // messages handed to local subscribers
	Acked     atomic.Uint64
	// Acks refused, by reason.
	AckStale     atomic.Uint64
	AckInvalid   atomic.Uint64 // malformed, altered, foreign or pre-reset tokens
	AckNotMember atomic.Uint64 // non-members and observers
	// Evictions of local subscribers seen in the streams, by reason;
	// EvictedLeave counts those removed by someone else's Unsubscribe.
	EvictedTimeout    atomic.Uint64
	EvictedAckTimeout atomic.Uint64
	EvictedLeave      atomic.Uint64
	// Malformed stream entries skipped.
	Invalid atomic.Uint64
	// ExpiredRooms counts the idle rooms this Queue's housekeeping deleted
	// (Options.IdleRoomTTL).
	ExpiredRooms atomic.Uint64
	// Local subscriptions ended with ErrRoomReset: Redis lost the room's
	// state (restart without persistence, failover that lost writes).
	Reset atomic.Uint64
	// ConfigRestored counts the housekeeping rounds that found the
	// deployment's stored NumShards gone and stored this Queue's again.
	ConfigRestored atomic.Uint64
	// ShardConflict is true while housekeeping finds the deployment split:
	// another NumShards stored, or Queues with another NumShards running
	// on the same prefix (see ErrShardMismatch).
	ShardConflict atomic.Bool

	// ReleaseLatency: from the step that released a queued message (the
	// last ack of the previous one, a leave, an eviction, or its own send
	// when the barrier was open) to its delivery to a local subscriber; the
	// server's clock against this host's.
	ReleaseLatency Histogram
	// BarrierWait: from a message's release to its last ack (server
	// clock), observed by the Queue that sent that ack.
	BarrierWait Histogram
	// EndToEnd: from enqueue (server clock) to delivery to a local
	// subscriber (this host's clock), out-of-band messages included.
	EndToEnd Histogram
}

// AckRejected counts a refused ack under its reason.
func (s *Stats) AckRejected(err error) {
	switch {
	case errors.Is(err, sferr.ErrStaleAck):
		s.AckStale.Add(1)
	case errors.Is(err, sferr.ErrNotMember), errors.Is(err, sferr.ErrObserver):
		s.AckNotMember.Add(1)
	case errors.Is(err, sferr.ErrInvalidToken), errors.Is(err, sferr.ErrRoomReset):
		s.AckInvalid.Add(1)
	}
}

// latencyBounds are the upper bounds of every Histogram's buckets. Server
// times have millisecond resolution, so the first bucket also holds zero.
var latencyBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
}

// Histogram counts durations in fixed buckets without locks, so the hot
// paths pay two atomic adds and package queue needs no metrics library.
type Histogram struct {
	counts [len(latencyBounds) + 1]atomic.Uint64 // the last one: above every bound
	sum    atomic.Int64                          // nanoseconds
}

// Observe records one duration; negative ones (clock skew between this
// host and Redis) count as zero.
func (h *Histogram) Observe(d time.Duration) {
	d = max(d, 0)
	i, _ := slices.BinarySearch(latencyBounds[:], d)
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// HistogramSnapshot is a point-in-time copy of a Histogram.
type HistogramSnapshot struct {
	Bounds     []time.Duration // bucket upper bounds, increasing
	Cumulative []uint64        // observations <= Bounds[i]
	Count      uint64          // all observations
	Sum        time.Duration
}

// Snapshot copies the histogram. Buckets are read one by one while others
// may add to them, so the copy may lag by the observations in progress,
// but its counts are always cumulative and consistent with Count.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{
		Bounds:     append([]time.Duration(nil), latencyBounds[:]...),
		Cumulative: make([]uint64, len(latencyBounds)),
	}
	var n uint64
	for i := range latencyBounds {
		n += h.counts[i].Load()
		s.Cumulative[i] = n
	}
	s.Count = n + h.counts[len(latencyBounds)].Load()
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// observeDelivery records the latencies of a message handed to a local
// subscriber.
func (s *Stats) observeDelivery(m *Message) {
	s.EndToEnd.Observe(m.ReceivedAt.Sub(m.EnqueuedAt))
	if !m.OutOfBand {
		s.ReleaseLatency.Observe(m.ReceivedAt.Sub(m.ReleasedAt))
	}
}

// observeAck records how long the barrier held the acked message when
// this ack was the last one missing.
func (s *Stats) observeAck(res barrier.Acked) {
	if res.Completed && !res.InFlightAt.IsZero() {
		s.BarrierWait.Observe(res.At.Sub(res.InFlightAt))
	}
}
