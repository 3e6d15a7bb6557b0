// Package redissyncfanoutqueue is a drop-in replacement for
// github.com/zavitax/redis-sync-fanout-queue-go, built on package queue.
//
// A program written for the original migrates by changing its import
// lines only, keeping the alias it used:
//
//	import (
//		"github.com/redis/go-redis/v9" // was github.com/go-redis/redis/v8
//
//		redisSyncFanoutQueue "github.com/syncfanout/syncfanout/compat/redissyncfanoutqueue"
//		// was "github.com/zavitax/redis-sync-fanout-queue-go"
//	)
//
// The names, signatures, callback shapes and option fields are the
// original's: NewApiClient with ApiOptions{RedisOptions, ClientTimeout,
// RedisKeyPrefix} returning a RedisQueueApiClient (CreateClientID, Send,
// SendOutOfBand, Subscribe, Unsubscribe, Ping, AckMessage, Peek,
// GetMetrics, GetRoomState, Close), and NewWorkerClient with
// WorkerOptions{RedisOptions, RedisKeyPrefix, HandleMessage,
// HandleRoomClientTimeout} returning a RedisQueueWorkerClient (GetMetrics,
// Close). Message keeps Data *interface{}, AckToken *string, Room and
// MessageContext{Timestamp, Producer, Latency}.
//
// Underneath, an API client is a queue.Queue and a worker is a follow-all
// queue.Worker on a queue.Queue of its own, so these programs share rooms
// with programs written against package queue: members of either kind hold
// the same barrier, and messages sent from either side reach both (see
// Queue and WorkerQueue to reach the queue.Queue under a client). Data
// written by the original library is not read: migrate with the queues
// drained.
//
// # Where this package differs from the original
//
// Where the original's behaviour was a defect, syncfanout's wins:
//
//   - Client IDs are unique across processes and Redis restarts (the
//     original's CreateClientID repeated IDs).
//   - Ack tokens are bound to one room, one message, one client and the
//     room's epoch. AckMessage returns queue.ErrStaleAck for a message no
//     longer in flight and queue.ErrInvalidToken for a token that was
//     forged, altered, issued to another client, or nil; the original's
//     token named only the producer and room, so anyone could ack for
//     anyone and a late ack counted for the next message. Each member
//     receives its own token.
//   - Equal priorities are released in send order, and two identical
//     payloads are two messages (the original ordered ties by payload text
//     and merged identical payloads sent in the same millisecond).
//   - Redis errors and malformed data come back as errors and are counted;
//     nothing panics, and a panic in HandleMessage is recovered and counted
//     instead of killing the worker.
//   - Ping returns queue.ErrUnknownClient for a client in no room and a
//     *queue.EvictedError naming the rooms it was evicted from, so the caller
//     can subscribe again; the original returned nil. Eviction does not
//     depend on any particular process running: every client and worker
//     does housekeeping.
//   - Messages sent to a room without members, and the backlog of a room
//     whose last member left, go to the room's delivery stream instead of
//     being dropped (queue.Options.HoldWhenEmpty keeps them pending).
//   - GetMetrics returns at most TopRoomsLimit rooms (the original returned
//     one more).
//
// Other differences:
//
//   - Priorities: both release the lowest number first, but queue has ten
//     levels, 0 to 9. A priority below 0 is sent as 0 and one above 9 as 9,
//     and messages that share a level go out in send order.
//   - Data: a payload is carried in the shape encoding/json gives it, as the
//     original's JSON did: a receiver here gets string, float64, bool,
//     []interface{}, map[string]interface{}, whoever sent it (a msgpack value
//     sent by a queue program is brought to these shapes; a []byte that is
//     not JSON arrives as []byte). A queue program decodes messages sent
//     from here with Message.Decode, into the same shapes. A nil payload (or
//     one that encodes to JSON null) is refused with queue.ErrEncode, and a
//     payload is limited to queue.Options.MaxPayloadBytes (1 MiB by
//     default; raise it through ApiOptions.Queue).
//   - RedisKeyPrefix: braces are dropped ("{app}::test" becomes
//     "app::test"); queue places its own hash tags per shard.
//   - Bad input (an invalid room name or client ID, a bad option) returns an
//     error wrapping the queue sentinel and changes nothing.
//   - HandleRoomClientTimeout is called when a member is evicted, not when
//     it unsubscribes; it may be nil.
//   - In a room shared with programs on package queue, the worker would
//     deliver (and the README's handler ack) for their members too: set
//     WorkerOptions.Serves to the members this side serves.
//   - Several worker processes each deliver every message, unless they split
//     the rooms with WorkerOptions.Worker.FollowAllIndex and FollowAllCount
//     (the original's workers competed for each message). A worker finds a
//     room that gained members within WorkerOptions.Worker.DiscoveryInterval
//     (1s by default) and delivers its in-flight message then; out-of-band
//     messages sent before that are not delivered to it.
//   - KnownRoomsCount counts rooms with members, a backlog or a message in
//     flight; TopRooms lists only rooms with a backlog, largest first.
//   - GetRoomState keys its maps by client ID (the original used
//     "clientId::room") and reports times from the Redis server clock.
//   - Peek results have no AckToken: a pending message has not been
//     delivered to anyone. Peek takes a limit of 0 to 10000.
//   - Close is idempotent and closes the Redis client only when it was
//     opened from RedisOptions (not one passed in ApiOptions.RedisClient).
package redissyncfanoutqueue
