package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// CreateClientID returns a new client ID, unique across every process that
// shares the Redis deployment and across restarts: a Redis counter plus 64
// random bits, so even a counter reset by a Redis restart cannot repeat one.
func (q *Queue) CreateClientID(ctx context.Context) (string, error) {
	if err := q.check(ctx); err != nil {
		return "", err
	}
	n, err := q.rdb.Incr(ctx, q.layout.ClientSeq()).Result()
	if err != nil {
		return "", fmt.Errorf("syncfanout: creating a client ID: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("syncfanout: creating a client ID: %w", err)
	}
	return strconv.FormatInt(n, 36) + "-" + hex.EncodeToString(r[:]), nil
}

// Subscribe makes clientID a voting member of room: from now on it
// receives every message released there, and the room waits for its ack.
// Subscribing twice is harmless. The client stays a member while something
// calls Ping(clientID) at least every ClientTimeout. Once it left or was
// evicted, subscribing again starts a new membership: the ack tokens
// delivered to the previous one return ErrStaleAck.
func (q *Queue) Subscribe(ctx context.Context, clientID, room string) error {
	_, err := q.subscribe(ctx, clientID, room, false)
	return err
}

// SubscribeObserver adds clientID to room as an observer: it receives
// everything, never holds the barrier and never acks.
func (q *Queue) SubscribeObserver(ctx context.Context, clientID, room string) error {
	_, err := q.subscribe(ctx, clientID, room, true)
	return err
}

func (q *Queue) subscribe(ctx context.Context, clientID, room string, observer bool) (barrier.Joined, error) {
	if err := q.check(ctx); err != nil {
		return barrier.Joined{}, err
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return barrier.Joined{}, err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return barrier.Joined{}, err
	}
	j, err := q.barrier.Join(ctx, room, clientID, observer)
	if err != nil {
		return j, err
	}
	// The client's own set of rooms lives in the client's shard, so Ping
	// finds them without scanning; a crash between the two calls leaves a
	// member that nobody pings, which eviction then removes.
	ckey := q.layout.Client(clientID)
	if err := q.rdb.SAdd(ctx, ckey, room).Err(); err != nil {
		return j, fmt.Errorf("syncfanout: recording room %q for client %q: %w", room, clientID, err)
	}
	if ttl := q.clientSetTTL(); ttl > 0 {
		if err := q.rdb.PExpire(ctx, ckey, ttl).Err(); err != nil {
			return j, fmt.Errorf("syncfanout: recording room %q for client %q: %w", room, clientID, err)
		}
	}
	return j, nil
}

// clientSetTTL is how long a client's room set outlives the client's last
// Subscribe or Ping (0: forever). Its memberships end ClientTimeout after
// its last heartbeat, and the rooms it leaves idle go IdleRoomTTL after
// that: the set, which only Ping reads, goes with them, so a client that
// died leaves nothing behind.
func (q *Queue) clientSetTTL() time.Duration {
	if q.opts.IdleRoomTTL <= 0 {
		return 0
	}
	return q.opts.IdleRoomTTL + q.opts.ClientTimeout
}

// Unsubscribe removes clientID from room. If the room was waiting only for
// this client's ack, the next message is released in the same step.
func (q *Queue) Unsubscribe(ctx context.Context, clientID, room string) error {
	if err := q.check(ctx); err != nil {
		return err
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return err
	}
	return q.leave(ctx, clientID, room)
}

// leave removes clientID from room, then room from the client's room set
// (which Ping reads). A client that was no longer a member gets
// ErrNotMember, once its room set is clean too.
func (q *Queue) leave(ctx context.Context, clientID, room string) error {
	_, lerr := q.barrier.Leave(ctx, room, clientID)
	if lerr != nil && !errors.Is(lerr, sferr.ErrNotMember) {
		return lerr
	}
	if err := q.rdb.SRem(ctx, q.layout.Client(clientID), room).Err(); err != nil {
		return fmt.Errorf("syncfanout: forgetting room %q for client %q: %w", room, clientID, err)
	}
	return lerr
}

// Ping is the heartbeat of clientID in every room it joined, from any
// process. Its cost depends on the client's own rooms only. It returns
// ErrUnknownClient when the client is in no room, and an *EvictedError
// (errors.Is ErrEvicted) naming the rooms it was evicted from, so the
// caller can subscribe again.
func (q *Queue) Ping(ctx context.Context, clientID string) error {
	if err := q.check(ctx); err != nil {
		return err
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return err
	}
	ckey := q.layout.Client(clientID)
	// The set's expiry moves with each Ping, in the same round trip.
	pipe := q.rdb.Pipeline()
	members := pipe.SMembers(ctx, ckey)
	if ttl := q.clientSetTTL(); ttl > 0 {
		pipe.PExpire(ctx, ckey, ttl)
	}
	_, _ = pipe.Exec(ctx) // the error is the first command's, read below
	rooms, err := members.Result()
	if err != nil {
		return fmt.Errorf("syncfanout: ping %q: %w", clientID, err)
	}
	if len(rooms) == 0 {
		return fmt.Errorf("%w: %q", sferr.ErrUnknownClient, clientID)
	}
	gone, err := q.beat(ctx, clientID, rooms)
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		return nil
	}
	goneRooms := make([]any, len(gone))
	for i, r := range gone {
		goneRooms[i] = r
	}
	if err := q.rdb.SRem(ctx, ckey, goneRooms...).Err(); err != nil {
		return fmt.Errorf("syncfanout: ping %q: %w", clientID, err)
	}
	// A Subscribe of the client to one of these rooms may have run since
	// its heartbeat (it joins, then adds the room to the set): beat again,
	// after the SREM, and put back the rooms it is in, or nobody would beat
	// for that membership.
	evicted, err := q.beat(ctx, clientID, gone)
	if err != nil {
		return err
	}
	for _, room := range gone {
		if slices.Contains(evicted, room) {
			continue
		}
		if err := q.rdb.SAdd(ctx, ckey, room).Err(); err != nil {
			return fmt.Errorf("syncfanout: ping %q: %w", clientID, err)
		}
		if ttl := q.clientSetTTL(); ttl > 0 {
			// The SREM above may have emptied, and so deleted, the set.
			if err := q.rdb.PExpire(ctx, ckey, ttl).Err(); err != nil {
				return fmt.Errorf("syncfanout: ping %q: %w", clientID, err)
			}
		}
	}
	if len(evicted) == 0 {
		return nil
	}
	return &EvictedError{ClientID: clientID, Rooms: evicted}
}

// beat extends the client's deadline in each room and returns the rooms it
// is no longer in.
func (q *Queue) beat(ctx context.Context, clientID string, rooms []string) (gone []string, err error) {
	for _, room := range rooms {
		alive, err := q.barrier.Heartbeat(ctx, room, []string{clientID})
		if err != nil {
			return nil, err
		}
		if !alive[0] {
			gone = append(gone, room)
		}
	}
	return gone, nil
}
