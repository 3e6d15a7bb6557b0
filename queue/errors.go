package queue

import (
	"fmt"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Sentinel errors; test with errors.Is. Every error the package returns
// for bad input wraps one of these, and such a call changes nothing in Redis.
var (
	// ErrClosed: the Queue (or the Subscription) was closed.
	ErrClosed = sferr.ErrClosed
	// ErrInvalidOption: an Options field or a per-call option is out of range.
	ErrInvalidOption = sferr.ErrInvalidOption
	// ErrInvalidRoom: empty, longer than 256 bytes, not UTF-8, or containing
	// braces or control characters.
	ErrInvalidRoom = sferr.ErrInvalidRoom
	// ErrInvalidClientID: a client ID that breaks the same rules as rooms.
	ErrInvalidClientID = sferr.ErrInvalidClientID
	// ErrInvalidProducer: a producer ID that breaks the same rules (it may be empty).
	ErrInvalidProducer = sferr.ErrInvalidProducer
	// ErrInvalidPriority: a priority outside MinPriority..MaxPriority.
	ErrInvalidPriority = sferr.ErrInvalidPriority
	// ErrPayloadTooLarge: the encoded payload exceeds Options.MaxPayloadBytes.
	ErrPayloadTooLarge = sferr.ErrPayloadTooLarge
	// ErrEncode: the payload is nil or msgpack cannot encode it.
	ErrEncode = sferr.ErrEncode
	// ErrDecode: a stored entry or payload is malformed.
	ErrDecode = sferr.ErrDecode
	// ErrNotMember: the client is not a member of the room (never joined,
	// left, or was evicted).
	ErrNotMember = sferr.ErrNotMember
	// ErrObserver: an observer tried to ack.
	ErrObserver = sferr.ErrObserver
	// ErrUnknownClient: Ping for a client that is in no room.
	ErrUnknownClient = sferr.ErrUnknownClient
	// ErrEvicted: the client was evicted (see EvictedError for the rooms).
	ErrEvicted = sferr.ErrEvicted
	// ErrStaleAck: the acked message is not the in-flight one; nothing changed.
	ErrStaleAck = sferr.ErrStaleAck
	// ErrInvalidToken: the ack token is malformed, altered, forged, or was
	// issued to another client.
	ErrInvalidToken = sferr.ErrInvalidToken
	// ErrRoomReset: the token predates a reset of the room's state in Redis
	// (for example a restart without persistence).
	ErrRoomReset = sferr.ErrRoomReset
	// ErrShardMismatch: Options.NumShards differs from the value the
	// deployment stored on first use, or from the count of Queues still
	// running on a deployment that a Queue with another count split after
	// Redis lost the stored value (see Stats.ShardConflict).
	ErrShardMismatch = sferr.ErrShardMismatch
	// ErrNotReplicated: with Options.WaitReplicas, the change was applied
	// by the master but fewer replicas than asked acknowledged it within
	// WaitTimeout: a failover may still lose it. Retrying a Send may
	// enqueue the message twice; retrying an ack or a join is harmless.
	ErrNotReplicated = sferr.ErrNotReplicated
	// ErrInvalidBatch: a SendBatch of no message or of more than MaxBatch.
	ErrInvalidBatch = sferr.ErrInvalidBatch
	// ErrInvalidHeader: a message header breaks the rules of Header (bad
	// key or value, too many headers, or a header block over
	// MaxHeaderBytes).
	ErrInvalidHeader = sferr.ErrInvalidHeader
	// ErrInvalidPolicy: a Policy field out of range, or Quorum and
	// QuorumFraction both set (SetPolicy, Options.DefaultPolicy).
	ErrInvalidPolicy = sferr.ErrInvalidPolicy
	// ErrRoomFull: a send refused by the room's MaxPending with Overflow
	// Reject (see RoomFullError for the limit); nothing was written.
	ErrRoomFull = sferr.ErrRoomFull
	// ErrMaxLag: the client was evicted for falling more than its room's
	// Policy.MaxLag messages behind; an *EvictedError with Reason
	// EvictReasonMaxLag matches it as well as ErrEvicted.
	ErrMaxLag = sferr.ErrMaxLag
)

// Eviction reasons, as recorded in the room's evict event (Event.Reason)
// and in EvictedError.Reason.
const (
	EvictReasonTimeout    = "timeout"     // no heartbeat within Options.ClientTimeout
	EvictReasonAckTimeout = "ack-timeout" // no ack of the oldest in-flight message within Options.AckTimeout
	EvictReasonMaxLag     = "max-lag"     // more than Policy.MaxLag messages behind
)

// EvictedError lists the rooms a client was evicted from; it matches
// ErrEvicted with errors.Is.
type EvictedError struct {
	ClientID string
	Rooms    []string
	// Reason is the evict event's reason (EvictReason...) when one room's
	// event was read; "" when it is not known (a Ping that found the
	// client gone, say).
	Reason string
}

func (e *EvictedError) Error() string {
	return fmt.Sprintf("syncfanout: client %q was evicted from %d room(s): %q", e.ClientID, len(e.Rooms), e.Rooms)
}

// Is reports whether target is ErrEvicted, or ErrMaxLag for an eviction
// for lag.
func (e *EvictedError) Is(target error) bool {
	return target == ErrEvicted || (target == ErrMaxLag && e.Reason == EvictReasonMaxLag)
}
