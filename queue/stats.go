package queue

import (
	"errors"
	"sync/atomic"

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
	// Evictions of local subscribers seen in the streams, by reason.
	EvictedTimeout    atomic.Uint64
	EvictedAckTimeout atomic.Uint64
	// Malformed stream entries skipped.
	Invalid atomic.Uint64
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
