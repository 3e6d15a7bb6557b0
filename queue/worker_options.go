package queue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// WorkerOptions configure a Worker. HandleMessage is required; every other
// field has a documented zero-value default.
type WorkerOptions struct {
	// HandleMessage is called for every message released in a room, once
	// per client the worker delivers for. Calls for one (client, room) are
	// sequential and in stream order; calls for different clients run
	// concurrently. Queued messages carry an AckToken (empty for
	// out-of-band messages and observers): the client acks with
	// Worker.Ack, Message.Ack or Queue.Ack. An error or a panic is counted
	// and logged and changes nothing else. ctx ends when the worker closes.
	HandleMessage func(ctx context.Context, clientID string, msg *Message) error
	// HandleClientTimeout, when set, is called exactly once when a client
	// the worker delivers for is evicted from a room (heartbeat or ack
	// timeout), after the messages delivered to it before the eviction.
	// The room's evict event is the source, so it is called whichever
	// process evicted the client. It is also called, once, when Redis lost
	// the client's membership (a restart without data: the room's epoch
	// changed, see ErrRoomReset); the client must subscribe again.
	HandleClientTimeout func(ctx context.Context, clientID, room string) error
	// HandleClientKicked, when set, is called exactly once when an
	// operator removes a client the worker delivers for from a room: kicked
	// (Admin.Kick) or with the room (Admin.DeleteRoom; kicked.RoomDeleted
	// is then set), after the messages delivered to it before. It is
	// distinct from HandleClientTimeout, which is not called then; when
	// HandleClientKicked is nil, such a removal goes to HandleClientTimeout
	// instead, so that a gateway written before it still learns that its
	// client is gone.
	HandleClientKicked func(ctx context.Context, clientID string, kicked *KickedError) error
	// Logger receives handler failures and background errors (default: the
	// Queue's).
	Logger *slog.Logger
	// AutoHeartbeat makes the worker beat for the clients it hosts (every
	// Options.HeartbeatInterval, one call per room). Off by default: the
	// end client keeps itself alive through Queue.Ping (the gateway relays
	// its pings), so a client whose connection died stops beating and is
	// evicted.
	AutoHeartbeat bool
	// FollowAll makes the worker deliver for every member of every room of
	// its shards, whoever subscribed them (the original library's worker).
	// Subscribe and Unsubscribe are then refused.
	FollowAll bool
	// FollowAllIndex and FollowAllCount split the shards between
	// FollowAllCount follow-all workers: this one takes the shards s with
	// s % FollowAllCount == FollowAllIndex, so each delivery happens once.
	// Default 0 of 1: every shard.
	FollowAllIndex, FollowAllCount int
	// DiscoveryInterval is how often a follow-all worker reads the room
	// index of its shards to find rooms that gained members (default 1s,
	// 10ms..1m). Out-of-band messages sent to a room before the worker
	// found it are not delivered; the in-flight message is.
	DiscoveryInterval time.Duration
	// LatencyWindow is the number of recent messages Metrics computes
	// latencies over (default 1000, 1..1000000).
	LatencyWindow int
	// AckCoalesce is how long an ack waits for the acks of the worker's
	// other clients that were handed the same message, so that they go in
	// one script call (default 2ms, at most 100ms; negative: never wait,
	// an ack goes out as soon as no call for its room is out). A room
	// releases its next message only after its slowest member acked, so
	// waiting for the worker's own slower clients does not delay the
	// release; the wait ends early when the last of them acks. Acks sent
	// with Queue.Ack instead of the worker are not waited for. With
	// Options.AckTimeout set, the wait is at most a tenth of it, so a held
	// ack does not land after the deadline it was sent in time for.
	AckCoalesce time.Duration
}

func (o WorkerOptions) withDefaults(q *Queue) WorkerOptions {
	if o.Logger == nil {
		o.Logger = q.opts.Logger
	}
	if o.FollowAllCount == 0 {
		o.FollowAllCount = 1
	}
	if o.DiscoveryInterval == 0 {
		o.DiscoveryInterval = time.Second
	}
	if o.LatencyWindow == 0 {
		o.LatencyWindow = 1000
	}
	if o.AckCoalesce == 0 {
		o.AckCoalesce = defaultAckCoalesce
	}
	return o
}

func (o WorkerOptions) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: Worker"+format, append([]any{sferr.ErrInvalidOption}, args...)...)
	}
	switch {
	case o.HandleMessage == nil:
		return bad("Options.HandleMessage is required")
	case o.FollowAllCount < 1 || o.FollowAllIndex < 0 || o.FollowAllIndex >= o.FollowAllCount:
		return bad("Options.FollowAllIndex=%d of FollowAllCount=%d, want 0 <= index < count", o.FollowAllIndex, o.FollowAllCount)
	case !o.FollowAll && (o.FollowAllIndex != 0 || o.FollowAllCount != 1):
		return bad("Options.FollowAllIndex/FollowAllCount need FollowAll")
	case o.DiscoveryInterval < 10*time.Millisecond || o.DiscoveryInterval > time.Minute:
		return bad("Options.DiscoveryInterval=%v, want 10ms..1m", o.DiscoveryInterval)
	case o.LatencyWindow < 1 || o.LatencyWindow > 1_000_000:
		return bad("Options.LatencyWindow=%d, want 1..1000000", o.LatencyWindow)
	case o.AckCoalesce > maxAckCoalesce:
		return bad("Options.AckCoalesce=%v, want at most %v (negative: off)", o.AckCoalesce, maxAckCoalesce)
	}
	return nil
}

const (
	defaultAckCoalesce = 2 * time.Millisecond
	maxAckCoalesce     = 100 * time.Millisecond
)
