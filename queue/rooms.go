package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// RoomsPage is one page of Queue.Rooms.
type RoomsPage struct {
	// Rooms in the order of Metrics.TopRooms: live rooms by backlog,
	// largest first, then idle rooms; ties in reverse name order.
	Rooms []RoomBacklog
	// Next is the cursor of the following page, "" after the last one.
	Next string
}

// Rooms lists the deployment's rooms a page at a time, in the order of
// Metrics.TopRooms, from the per-shard room indexes: each page costs one
// pipeline of one ZREVRANGE per shard, however deep it is and however
// many rooms there are (no key scan). cursor is "" for the first page,
// then the Next of the previous one; limit is 1..MaxTopRooms.
//
// The cursor records how far each shard's index was read, not a room, so
// paging is stable while the rooms stand still; while backlogs move, a
// room whose rank changes between two pages may be shown twice or not at
// all, as with any live listing. A cursor from another deployment (other
// NumShards) or an altered one is refused with ErrInvalidOption.
func (q *Queue) Rooms(ctx context.Context, cursor string, limit int) (RoomsPage, error) {
	if err := q.check(ctx); err != nil {
		return RoomsPage{}, err
	}
	if limit < 1 || limit > MaxTopRooms {
		return RoomsPage{}, fmt.Errorf("%w: Rooms limit=%d, want 1..%d", sferr.ErrInvalidOption, limit, MaxTopRooms)
	}
	n := q.layout.NumShards()
	offsets, err := parseRoomsCursor(cursor, n)
	if err != nil {
		return RoomsPage{}, err
	}
	cmds := make([]*redis.ZSliceCmd, n)
	pipe := q.rdb.Pipeline()
	for s := range n {
		// One more than a page, to know whether another page follows.
		cmds[s] = pipe.ZRevRangeWithScores(ctx, q.layout.ShardRooms(s), offsets[s], offsets[s]+int64(limit))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return RoomsPage{}, fmt.Errorf("syncfanout: rooms: %w", err)
	}
	type scored struct {
		room  string
		score float64
		shard int
	}
	var all []scored
	for s := range n {
		for _, z := range cmds[s].Val() {
			room, _ := z.Member.(string)
			all = append(all, scored{room, z.Score, s})
		}
	}
	// Each shard's slice is sorted as the merged list is, so the first
	// limit entries of the merge take a prefix of every shard's slice:
	// advancing each shard's offset by what it gave is exact.
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(b.room, a.room)
	})
	more := len(all) > limit
	all = all[:min(len(all), limit)]
	var page RoomsPage
	for _, r := range all {
		page.Rooms = append(page.Rooms, roomBacklog(r.room, r.score))
		offsets[r.shard]++
	}
	if more {
		page.Next = formatRoomsCursor(offsets)
	}
	return page, nil
}

// A rooms cursor is the read offset of every shard's index, joined by
// dots: short enough for a URL with the default 16 shards.
func formatRoomsCursor(offsets []int64) string {
	parts := make([]string, len(offsets))
	for i, o := range offsets {
		parts[i] = strconv.FormatInt(o, 10)
	}
	return strings.Join(parts, ".")
}

func parseRoomsCursor(cursor string, shards int) ([]int64, error) {
	offsets := make([]int64, shards)
	if cursor == "" {
		return offsets, nil
	}
	parts := strings.Split(cursor, ".")
	if len(parts) != shards {
		return nil, fmt.Errorf("%w: Rooms cursor %q has %d offsets, want one per shard (%d)", sferr.ErrInvalidOption, cursor, len(parts), shards)
	}
	for i, p := range parts {
		o, err := strconv.ParseInt(p, 10, 64)
		// The bound keeps offset+limit from overflowing; no index is near it.
		if err != nil || o < 0 || o > 1<<50 {
			return nil, fmt.Errorf("%w: Rooms cursor %q: bad offset %q", sferr.ErrInvalidOption, cursor, p)
		}
		offsets[i] = o
	}
	return offsets, nil
}
