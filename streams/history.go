package streams

import (
	"context"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Range selects part of a room's history. IDs win over times when both are
// set; zero values mean the start or the end of the stream.
type Range struct {
	FromID  string    // inclusive
	ToID    string    // inclusive
	Since   time.Time // inclusive, by server time
	Until   time.Time // inclusive, by server time
	PerPage int64     // entries per XRANGE (default 512)
}

func (rg Range) bounds() (string, string) {
	start, end := "-", "+"
	switch {
	case rg.FromID != "":
		start = rg.FromID
	case !rg.Since.IsZero():
		start = strconv.FormatInt(rg.Since.UnixMilli(), 10)
	}
	switch {
	case rg.ToID != "":
		end = rg.ToID
	case !rg.Until.IsZero():
		end = strconv.FormatInt(rg.Until.UnixMilli(), 10)
	}
	return start, end
}

// History reads a room's stream in order, one XRANGE page at a time.
// Malformed entries are yielded as *DecodeError and reading goes on; a
// Redis error ends the iteration after it is yielded.
func History(ctx context.Context, rdb redis.UniversalClient, streamKey, room string, rg Range) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		per := rg.PerPage
		if per <= 0 {
			per = 512
		}
		start, end := rg.bounds()
		for {
			msgs, err := rdb.XRangeN(ctx, streamKey, start, end, per).Result()
			if err != nil {
				yield(Event{}, fmt.Errorf("syncfanout: history of room %q: %w", room, err))
				return
			}
			for _, m := range msgs {
				ev, err := Decode(room, m)
				if err != nil {
					ev = Event{ID: m.ID, Room: room}
				}
				if !yield(ev, err) {
					return
				}
			}
			if int64(len(msgs)) < per {
				return
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
}
