package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// MaxTopRooms bounds the topRooms argument of Metrics.
const MaxTopRooms = 1000

// Metrics is a deployment-wide snapshot read from the per-shard indexes
// the scripts keep exact (the original library's GetMetrics).
type Metrics struct {
	// KnownRooms counts the rooms with members, observers, a backlog or a
	// message in flight.
	KnownRooms int64
	// TopRooms lists the rooms with the largest backlog, largest first:
	// exactly min(topRooms, KnownRooms) entries. Ties come in reverse name
	// order, the order Redis keeps them in, so the list is deterministic.
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
}

// RoomBacklog is one entry of Metrics.TopRooms.
type RoomBacklog struct {
	Room    string
	Backlog int64
}

// Metrics reads the deployment's room count, its topRooms (0..MaxTopRooms)
// rooms with the largest backlog and the backlog and membership totals.
// Its cost is one pipeline of three commands per shard, whatever the
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
	tops := make([]*redis.ZSliceCmd, n)
	totals := make([]*redis.SliceCmd, n)
	pipe := q.rdb.Pipeline()
	for s := range n {
		rooms := q.layout.ShardRooms(s)
		cards[s] = pipe.ZCard(ctx, rooms)
		if topRooms > 0 {
			// Each shard's first topRooms are enough: no room beyond them can
			// be among the global first topRooms.
			tops[s] = pipe.ZRevRangeWithScores(ctx, rooms, 0, int64(topRooms-1))
		}
		totals[s] = pipe.HMGet(ctx, q.layout.ShardStats(s), "backlog", "members", "observers", "malformed")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return Metrics{}, fmt.Errorf("syncfanout: metrics: %w", err)
	}
	var m Metrics
	var all []RoomBacklog
	for s := range n {
		m.KnownRooms += cards[s].Val()
		if tops[s] != nil {
			for _, z := range tops[s].Val() {
				room, _ := z.Member.(string)
				all = append(all, RoomBacklog{Room: room, Backlog: int64(z.Score)})
			}
		}
		vals := totals[s].Val()
		for i, dst := range []*int64{&m.Backlog, &m.Members, &m.Observers, &m.Malformed} {
			if i < len(vals) {
				*dst += statField(vals[i])
			}
		}
	}
	slices.SortFunc(all, func(a, b RoomBacklog) int {
		if c := cmp.Compare(b.Backlog, a.Backlog); c != 0 {
			return c
		}
		return cmp.Compare(b.Room, a.Room)
	})
	if len(all) > topRooms {
		all = all[:topRooms]
	}
	m.TopRooms = all
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
