package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// MaxTopRooms bounds the topRooms argument of Metrics.
const MaxTopRooms = 1000

// Metrics is a deployment-wide snapshot read from the per-shard indexes
// the scripts keep exact (the original library's GetMetrics).
type Metrics struct {
	// KnownRooms counts the live rooms: those with members, observers, a
	// backlog or a message in flight. Idle rooms are not among them.
	KnownRooms int64
	// IdleRooms counts the rooms without any of these that Redis still
	// holds for their history, until Options.IdleRoomTTL deletes them.
	IdleRooms int64
	// ExpiredRooms counts the idle rooms deleted so far, by every Queue of
	// the deployment (kept in Redis, with the other totals).
	ExpiredRooms int64
	// TopRooms lists the rooms with the largest backlog, largest first,
	// then idle rooms, those expiring first first: exactly
	// min(topRooms, KnownRooms+IdleRooms) entries. Ties come in reverse
	// name order, the order Redis keeps them in, so the list is
	// deterministic.
	TopRooms []RoomBacklog
	// Backlog is the number of pending messages over all rooms (messages in
	// flight are not pending).
	Backlog int64
	// Members and Observers count memberships over all rooms: a client in
	// two rooms counts twice.
	Members   int64
	Observers int64
	// Malformed counts the pending entries that the release step set aside
	// instead of releasing them (each is a "malformed" event in its room's
	// stream): something other than Send writes into the queues.
	Malformed int64
	// Dropped counts the pending messages the rooms' Policy.Overflow
	// dropped (each a "drop" event in its room's stream), and Skipped the
	// stragglers that Policy.Straggler Skip released a message without
	// (each a "skip" event); deployment totals, kept in Redis.
	Dropped int64
	Skipped int64
}

// RoomBacklog is one entry of Metrics.TopRooms.
type RoomBacklog struct {
	Room    string
	Backlog int64
	// Idle: the room has no members, observers, backlog or message in
	// flight; it is kept for its history until Expires (zero: forever).
	Idle    bool
	Expires time.Time
}

// String prints a live room as {room backlog}, as fmt did before idle
// rooms were listed, and an idle one as {room idle[ until time]}.
func (r RoomBacklog) String() string {
	switch {
	case !r.Idle:
		return "{" + r.Room + " " + strconv.FormatInt(r.Backlog, 10) + "}"
	case r.Expires.IsZero():
		return "{" + r.Room + " idle}"
	}
	return "{" + r.Room + " idle until " + r.Expires.UTC().Format(time.RFC3339) + "}"
}

// roomBacklog reads an entry of a shard's room index: a live room's score
// is its backlog; an idle room's is minus its expiry in ms, or -1 when it
// is kept forever (internal/lua/room.lua).
func roomBacklog(room string, score float64) RoomBacklog {
	if score >= 0 {
		return RoomBacklog{Room: room, Backlog: int64(score)}
	}
	r := RoomBacklog{Room: room, Idle: true}
	if score < -1 {
		r.Expires = time.UnixMilli(int64(-score))
	}
	return r
}

// Metrics reads the deployment's room count, its topRooms (0..MaxTopRooms)
// rooms with the largest backlog and the backlog and membership totals.
// Its cost is one pipeline of four commands per shard, whatever the
// number of rooms: it never scans keys, so scraping it often is safe.
func (q *Queue) Metrics(ctx context.Context, topRooms int) (Metrics, error) {
	if err := q.check(ctx); err != nil {
		return Metrics{}, err
	}
	if topRooms < 0 || topRooms > MaxTopRooms {
		return Metrics{}, fmt.Errorf("%w: Metrics topRooms=%d, want 0..%d", sferr.ErrInvalidOption, topRooms, MaxTopRooms)
	}
	n := q.layout.NumShards()
	cards := make([]*redis.IntCmd, n)
	idle := make([]*redis.IntCmd, n)
	tops := make([]*redis.ZSliceCmd, n)
	totals := make([]*redis.SliceCmd, n)
	pipe := q.rdb.Pipeline()
	for s := range n {
		rooms := q.layout.ShardRooms(s)
		// Live rooms score their backlog (>= 0), idle ones below 0.
		cards[s] = pipe.ZCount(ctx, rooms, "0", "+inf")
		idle[s] = pipe.ZCount(ctx, rooms, "-inf", "(0")
		if topRooms > 0 {
			// Each shard's first topRooms are enough: no room beyond them can
			// be among the global first topRooms.
			tops[s] = pipe.ZRevRangeWithScores(ctx, rooms, 0, int64(topRooms-1))
		}
		totals[s] = pipe.HMGet(ctx, q.layout.ShardStats(s), "backlog", "members", "observers", "malformed", "expired", "dropped", "skipped")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return Metrics{}, fmt.Errorf("syncfanout: metrics: %w", err)
	}
	var m Metrics
	type scored struct {
		room  string
		score float64
	}
	var all []scored
	for s := range n {
		m.KnownRooms += cards[s].Val()
		m.IdleRooms += idle[s].Val()
		if tops[s] != nil {
			for _, z := range tops[s].Val() {
				room, _ := z.Member.(string)
				all = append(all, scored{room, z.Score})
			}
		}
		vals := totals[s].Val()
		for i, dst := range []*int64{&m.Backlog, &m.Members, &m.Observers, &m.Malformed, &m.ExpiredRooms, &m.Dropped, &m.Skipped} {
			if i < len(vals) {
				*dst += statField(vals[i])
			}
		}
	}
	// By index score, as each shard's list: live rooms by backlog, then
	// idle ones.
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(b.room, a.room)
	})
	if len(all) > topRooms {
		all = all[:topRooms]
	}
	for _, r := range all {
		m.TopRooms = append(m.TopRooms, roomBacklog(r.room, r.score))
	}
	return m, nil
}

// statField reads one field of a shard's stats HASH. A missing field is
// zero (HINCRBY starts there); a malformed one, which only a manual edit
// can produce, also reads as zero rather than failing the whole snapshot.
func statField(v any) int64 {
	s, ok := v.(string)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return n
}
