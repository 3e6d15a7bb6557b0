// Package sferr holds every sentinel error of syncfanout and the single
// place where the status codes returned by the Lua scripts become errors.
// The public package queue re-exports each sentinel, so errors.Is works
// with either name.
package sferr

import (
	"errors"
	"fmt"
)

var (
	ErrClosed          = errors.New("syncfanout: queue closed")
	ErrInvalidOption   = errors.New("syncfanout: invalid option")
	ErrInvalidRoom     = errors.New("syncfanout: invalid room name")
	ErrInvalidClientID = errors.New("syncfanout: invalid client ID")
	ErrInvalidProducer = errors.New("syncfanout: invalid producer ID")
	ErrInvalidPriority = errors.New("syncfanout: invalid priority")
	ErrPayloadTooLarge = errors.New("syncfanout: payload too large")
	ErrEncode          = errors.New("syncfanout: payload cannot be encoded")
	ErrDecode          = errors.New("syncfanout: malformed entry")
	ErrNotMember       = errors.New("syncfanout: client is not a member of the room")
	ErrObserver        = errors.New("syncfanout: observers do not ack")
	ErrUnknownClient   = errors.New("syncfanout: unknown client (not subscribed anywhere)")
	ErrEvicted         = errors.New("syncfanout: client was evicted")
	ErrStaleAck        = errors.New("syncfanout: stale ack (message is not in flight)")
	ErrInvalidToken    = errors.New("syncfanout: invalid ack token")
	ErrRoomReset       = errors.New("syncfanout: room state was reset (epoch changed)")
	ErrShardMismatch   = errors.New("syncfanout: NumShards differs from the value stored in Redis")
	ErrAlreadyMember   = errors.New("syncfanout: client is already a member of the room")
	ErrNotReplicated   = errors.New("syncfanout: write not acknowledged by enough replicas")
	ErrInvalidBatch    = errors.New("syncfanout: invalid batch")
	ErrInvalidPolicy   = errors.New("syncfanout: invalid room policy")
	ErrRoomFull        = errors.New("syncfanout: room is full (MaxPending reached)")
	// ErrMaxLag: evicted for falling more than its room's Policy.MaxLag
	// messages behind (matched by queue.EvictedError).
	ErrMaxLag        = errors.New("syncfanout: client fell more than the room's MaxLag messages behind")
	ErrInvalidHeader = errors.New("syncfanout: invalid message header")
)

// Errors of the operators' transitions (queue.Admin).
var (
	ErrInvalidActor  = errors.New("syncfanout: invalid admin actor")
	ErrInvalidReason = errors.New("syncfanout: invalid admin reason")
	ErrUnknownRoom   = errors.New("syncfanout: unknown room (it holds nothing)")
	ErrAlreadyPaused = errors.New("syncfanout: room is already paused")
	ErrNotPaused     = errors.New("syncfanout: room is not paused")
	ErrNoInFlight    = errors.New("syncfanout: no message in flight")
	ErrKicked        = errors.New("syncfanout: client was kicked from the room by an operator")
	ErrRoomDeleted   = errors.New("syncfanout: room was deleted by an operator")
)

// Status codes returned by the Lua scripts as the first element of their
// reply. The same list is in the header of every script.
const (
	StatusOK        = "OK"
	StatusNotMember = "NOT_MEMBER"
	StatusObserver  = "OBSERVER"
	StatusStale     = "STALE"
	StatusForged    = "FORGED"
	StatusEpoch     = "EPOCH"
	StatusAlready   = "ALREADY"
	StatusRejoined  = "REJOINED"
	// Send refusals of a room's policy (send.lua); their replies carry the
	// limit, so the caller builds the error itself (queue.RoomFullError).
	StatusRoomFull = "ROOM_FULL"
	StatusTooLarge = "TOO_LARGE"
	// The operators' transitions (admin_*.lua).
	StatusNoRoom     = "NO_ROOM"
	StatusPaused     = "PAUSED"
	StatusNotPaused  = "NOT_PAUSED"
	StatusNoInFlight = "NO_INFLIGHT"
)

// errRejoined is the stale ack of a token issued under an earlier
// membership of its client: it left or was evicted, and joined again.
var errRejoined = fmt.Errorf("%w: token from an earlier membership of the client (it left or was evicted, then joined again)", ErrStaleAck)

// FromStatus maps a script status code to its sentinel error (nil for OK).
// An unknown code is a programming error between Go and Lua, reported as
// such rather than panicking.
func FromStatus(code string) error {
	switch code {
	case StatusOK:
		return nil
	case StatusNotMember:
		return ErrNotMember
	case StatusObserver:
		return ErrObserver
	case StatusStale:
		return ErrStaleAck
	case StatusRejoined:
		return errRejoined
	case StatusForged:
		return ErrInvalidToken
	case StatusEpoch:
		return ErrRoomReset
	case StatusAlready:
		return ErrAlreadyMember
	case StatusRoomFull:
		return ErrRoomFull
	case StatusTooLarge:
		return ErrPayloadTooLarge
	case StatusNoRoom:
		return ErrUnknownRoom
	case StatusPaused:
		return ErrAlreadyPaused
	case StatusNotPaused:
		return ErrNotPaused
	case StatusNoInFlight:
		return ErrNoInFlight
	default:
		return fmt.Errorf("syncfanout: unexpected script status %q", code)
	}
}
