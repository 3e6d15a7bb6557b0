package queue

import (
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Stats is a snapshot of the in-process counters of one Queue (package
// metrics exports them to Prometheus): plain values, copied by
// Queue.Stats, that nothing updates afterwards. Released counts the
// releases triggered by this Queue's own calls.
type Stats struct {
	Sent      uint64
	Released  uint64
	OutOfBand uint64
	Delivered uint64 // messages handed to local subscribers
	Acked     uint64
	// Acks refused, by reason.
	AckStale     uint64
	AckInvalid   uint64 // malformed, altered, foreign or pre-reset tokens
	AckNotMember uint64 // non-members and observers
	// Evictions of local subscribers seen in the streams, by reason;
	// EvictedLeave counts those removed by someone else's Unsubscribe.
	EvictedTimeout    uint64
	EvictedAckTimeout uint64
	EvictedLeave      uint64
	// EvictedMaxLag counts those evicted for falling more than their
	// room's Policy.MaxLag messages behind.
	EvictedMaxLag uint64
	// Malformed stream entries skipped.
	Invalid uint64
	// Dropped counts the pending messages that this Queue's sends dropped
	// by their room's Policy.Overflow (DropOldest, DropLowestPriority).
	Dropped uint64
	// ExpiredRooms counts the idle rooms this Queue's housekeeping deleted
	// (Options.IdleRoomTTL).
	ExpiredRooms uint64
	// Local subscriptions ended with ErrRoomReset: Redis lost the room's
	// state (restart without persistence, failover that lost writes).
	Reset uint64
	// ConfigRestored counts the housekeeping rounds that found the
	// deployment's stored NumShards gone and stored this Queue's again.
	ConfigRestored uint64
	// ShardConflict is true while housekeeping finds the deployment split:
	// another NumShards stored, or Queues with another NumShards running
	// on the same prefix (see ErrShardMismatch).
	ShardConflict bool

	// Operators' transitions this Queue's Admin handles made, by action.
	AdminPause, AdminResume, AdminPurge, AdminRelease, AdminKick, AdminDelete uint64
	// Kicked counts local subscribers (subscriptions and worker clients)
	// that an operator removed: kicked, or with their room deleted.
	Kicked uint64

	// ReleaseLatency: from the step that released a queued message (the
	// last ack of the previous one, a leave, an eviction, or its own send
	// when the barrier was open) to its delivery to a local subscriber; the
	// server's clock against this host's.
	ReleaseLatency HistogramSnapshot
	// BarrierWait: from a message's release to its last ack (server
	// clock), observed by the Queue that sent that ack.
	BarrierWait HistogramSnapshot
	// EndToEnd: from enqueue (server clock) to delivery to a local
	// subscriber (this host's clock), out-of-band messages included.
	EndToEnd HistogramSnapshot
}

// counters are the live counters behind Stats, updated without locks on
// the hot paths; field for field as Stats.
type counters struct {
	Sent, Released, OutOfBand, Delivered, Acked     atomic.Uint64
	AckStale, AckInvalid, AckNotMember              atomic.Uint64
	EvictedTimeout, EvictedAckTimeout, EvictedLeave atomic.Uint64
	Invalid, ExpiredRooms, Reset, ConfigRestored    atomic.Uint64
	Dropped                                         atomic.Uint64
	ShardConflict                                   atomic.Bool
	EvictedMaxLag                                   atomic.Uint64

	AdminPause, AdminResume, AdminPurge, AdminRelease, AdminKick, AdminDelete atomic.Uint64
	Kicked                                                                    atomic.Uint64

	ReleaseLatency, BarrierWait, EndToEnd histogram
}

// snapshot copies the counters one by one, so counters updated meanwhile
// may be from slightly different instants.
func (s *counters) snapshot() Stats {
	return Stats{
		Sent: s.Sent.Load(), Released: s.Released.Load(), OutOfBand: s.OutOfBand.Load(),
		Delivered: s.Delivered.Load(), Acked: s.Acked.Load(),
		AckStale: s.AckStale.Load(), AckInvalid: s.AckInvalid.Load(), AckNotMember: s.AckNotMember.Load(),
		EvictedTimeout: s.EvictedTimeout.Load(), EvictedAckTimeout: s.EvictedAckTimeout.Load(),
		EvictedLeave: s.EvictedLeave.Load(), EvictedMaxLag: s.EvictedMaxLag.Load(),
		Invalid: s.Invalid.Load(), ExpiredRooms: s.ExpiredRooms.Load(), Reset: s.Reset.Load(),
		ConfigRestored: s.ConfigRestored.Load(), ShardConflict: s.ShardConflict.Load(),
		Dropped:        s.Dropped.Load(),
		ReleaseLatency: s.ReleaseLatency.snapshot(), BarrierWait: s.BarrierWait.snapshot(),
		EndToEnd:   s.EndToEnd.snapshot(),
		AdminPause: s.AdminPause.Load(), AdminResume: s.AdminResume.Load(), AdminPurge: s.AdminPurge.Load(),
		AdminRelease: s.AdminRelease.Load(), AdminKick: s.AdminKick.Load(), AdminDelete: s.AdminDelete.Load(),
		Kicked: s.Kicked.Load(),
	}
}

// evicted counts the eviction of a local subscriber under the reason of
// its evict event ("" when none was read: the heartbeat timeout is then
// the likely one).
func (s *counters) evicted(reason string) {
	switch reason {
	case EvictReasonAckTimeout:
		s.EvictedAckTimeout.Add(1)
	case EvictReasonMaxLag:
		s.EvictedMaxLag.Add(1)
	default:
		s.EvictedTimeout.Add(1)
	}
}

// ackRejected counts a refused ack under its reason.
func (s *counters) ackRejected(err error) {
	switch {
	case errors.Is(err, sferr.ErrStaleAck):
		s.AckStale.Add(1)
	case errors.Is(err, sferr.ErrNotMember), errors.Is(err, sferr.ErrObserver):
		s.AckNotMember.Add(1)
	case errors.Is(err, sferr.ErrInvalidToken), errors.Is(err, sferr.ErrRoomReset):
		s.AckInvalid.Add(1)
	}
}

// latencyBounds are the upper bounds of every histogram's buckets. Server
// times have millisecond resolution, so the first bucket also holds zero.
var latencyBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
}

// histogram counts durations in fixed buckets without locks, so the hot
// paths pay two atomic adds and package queue needs no metrics library.
type histogram struct {
	counts [len(latencyBounds) + 1]atomic.Uint64 // the last one: above every bound
	sum    atomic.Int64                          // nanoseconds
}

// observe records one duration; negative ones (clock skew between this
// host and Redis) count as zero.
func (h *histogram) observe(d time.Duration) {
	d = max(d, 0)
	i, _ := slices.BinarySearch(latencyBounds[:], d)
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// HistogramSnapshot is a point-in-time copy of a latency histogram.
type HistogramSnapshot struct {
	Bounds     []time.Duration // bucket upper bounds, increasing
	Cumulative []uint64        // observations <= Bounds[i]
	Count      uint64          // all observations
	Sum        time.Duration
}

// snapshot copies the histogram. Buckets are read one by one while others
// may add to them, so the copy may lag by the observations in progress,
// but its counts are always cumulative and consistent with Count.
func (h *histogram) snapshot() HistogramSnapshot {
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
func (s *counters) observeDelivery(m *Message) {
	s.EndToEnd.observe(m.ReceivedAt.Sub(m.EnqueuedAt))
	if !m.OutOfBand {
		s.ReleaseLatency.observe(m.ReceivedAt.Sub(m.ReleasedAt))
	}
}

// observeAck records how long the barrier held the acked message when
// this ack was the last one missing.
func (s *counters) observeAck(res barrier.Acked) {
	if res.Completed && !res.InFlightAt.IsZero() {
		s.BarrierWait.observe(res.At.Sub(res.InFlightAt))
	}
}
