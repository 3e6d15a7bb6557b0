package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// InFlightSince returns, for each of the given rooms that has a message in
// flight, when that message was released (Redis clock). Rooms without one
// are left out. It costs one HGET per room, in one pipeline, so callers
// bound the rooms: package metrics passes the TopRooms of Metrics, the
// rooms a stuck barrier makes grow, to tell how long each has waited.
// At most MaxTopRooms rooms.
func (q *Queue) InFlightSince(ctx context.Context, rooms []string) (map[string]time.Time, error) {
	if err := q.check(ctx); err != nil {
		return nil, err
	}
	if len(rooms) > MaxTopRooms {
		return nil, fmt.Errorf("%w: InFlightSince with %d rooms, want at most %d", sferr.ErrInvalidOption, len(rooms), MaxTopRooms)
	}
	for _, room := range rooms {
		if err := keys.ValidateRoom(room); err != nil {
			return nil, err
		}
	}
	out := make(map[string]time.Time)
	if len(rooms) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(rooms))
	pipe := q.rdb.Pipeline()
	for i, room := range rooms {
		cmds[i] = pipe.HGet(ctx, q.layout.Meta(room), "rt")
	}
	_, _ = pipe.Exec(ctx) // each command's error is read below
	for i, room := range rooms {
		// rt is written with the in-flight message and deleted with it:
		// redis.Nil says the room has none.
		if err := cmds[i].Err(); err != nil {
			if errors.Is(err, redis.Nil) {
				continue
			}
			return nil, fmt.Errorf("syncfanout: in-flight release times: %w", err)
		}
		ms, err := strconv.ParseInt(cmds[i].Val(), 10, 64)
		if err != nil || ms <= 0 {
			continue
		}
		out[room] = time.UnixMilli(ms)
	}
	return out, nil
}
