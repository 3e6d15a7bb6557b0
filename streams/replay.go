package streams

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// ReplayOptions configure ReplayInto.
type ReplayOptions struct {
	// Speed paces the replay by the events' server times: 0 (the default)
	// replays as fast as possible, 1 with the original gaps between events,
	// 2 twice as fast. Negative, NaN and infinite values are rejected.
	Speed float64
	// OnDecodeError receives each entry that is not a valid event; the
	// entry is skipped, and a non-nil return stops the replay with that
	// error. Without it, malformed entries are skipped and reported
	// together in ReplayInto's error (errors.Is ErrDecode) once everything
	// else was replayed.
	OnDecodeError func(*DecodeError) error
}

func (o ReplayOptions) validate() error {
	if o.Speed < 0 || math.IsNaN(o.Speed) || math.IsInf(o.Speed, 0) {
		return fmt.Errorf("%w: ReplayOptions.Speed=%v, want 0 (no pacing) or a positive factor", sferr.ErrInvalidOption, o.Speed)
	}
	return nil
}

// SkippedError reports the malformed entries a replay skipped. It matches
// sferr.ErrDecode (queue.ErrDecode) with errors.Is.
type SkippedError struct {
	Room string
	IDs  []string // the first skipped entries' IDs (at most 100)
	N    int      // how many were skipped in all
}

func (e *SkippedError) Error() string {
	return fmt.Sprintf("syncfanout: replay of room %q skipped %d malformed entries (first: %s)", e.Room, e.N, strings.Join(e.IDs, ", "))
}

func (e *SkippedError) Is(target error) bool { return target == sferr.ErrDecode }

// ReplayInto calls handler with every event of a room's history in rg, in
// stream order, paced by opts.Speed. It stops at the first error of
// handler, Redis or ctx and returns it. Each page of entries is read just
// before it is needed, so a long paced replay holds no large buffer.
func ReplayInto(ctx context.Context, rdb redis.UniversalClient, streamKey, room string, rg Range, handler func(Event) error, opts ReplayOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	if handler == nil {
		return fmt.Errorf("%w: nil replay handler", sferr.ErrInvalidOption)
	}
	var skipped *SkippedError
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// Pacing follows the server times of the events against a local clock
	// started at the first event, so slow handlers do not add up drift.
	var start time.Time
	var first time.Time
	for ev, err := range History(ctx, rdb, streamKey, room, rg) {
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				return err
			}
			if opts.OnDecodeError != nil {
				if err := opts.OnDecodeError(de); err != nil {
					return err
				}
				continue
			}
			if skipped == nil {
				skipped = &SkippedError{Room: room}
			}
			skipped.N++
			if len(skipped.IDs) < 100 {
				skipped.IDs = append(skipped.IDs, de.ID)
			}
			continue
		}
		if opts.Speed > 0 {
			if start.IsZero() {
				start, first = time.Now(), ev.At
			} else {
				due := start.Add(time.Duration(float64(ev.At.Sub(first)) / opts.Speed))
				if wait := time.Until(due); wait > 0 {
					if timer == nil {
						timer = time.NewTimer(wait)
					} else {
						timer.Reset(wait)
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-timer.C:
					}
				}
			}
		}
		if err := handler(ev); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if skipped != nil {
		return skipped
	}
	return nil
}

// tailBlock bounds one blocking XREAD of Tail. go-redis does not interrupt
// a blocked read when its context is cancelled, so this is also how long
// Tail may take to notice that its context ended.
const tailBlock = time.Second

// Tail yields a room's events as they are appended, in stream order, until
// ctx ends (the iteration then just stops). fromID "" or "$" starts with
// the events appended after the call; any other ID yields the events after
// it (exclusive: pass the last ID you saw to resume, "0" for the whole
// stream first). "$" is resolved once, to the stream's last entry, so no
// event is lost between two reads.
//
// Entries that are not valid events are yielded as *DecodeError (with
// their ID) and skipped. Redis errors are yielded too, then reading resumes
// from the last position after a short back-off; a closed client ends the
// iteration. Each blocking XREAD holds one connection of rdb for up to a
// second.
func Tail(ctx context.Context, rdb redis.UniversalClient, streamKey, room, fromID string) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		last := fromID
		backoff := 50 * time.Millisecond
		fail := func(err error) bool {
			if ctx.Err() != nil {
				return false
			}
			if !yield(Event{}, fmt.Errorf("syncfanout: tail of room %q: %w", room, err)) || errors.Is(err, redis.ErrClosed) {
				return false
			}
			t := time.NewTimer(backoff)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
			}
			backoff = min(backoff*2, 2*time.Second)
			return true
		}
		for last == "" || last == "$" {
			id, err := lastID(ctx, rdb, streamKey)
			if err == nil {
				last = id
				break
			}
			if !fail(err) {
				return
			}
		}
		for ctx.Err() == nil {
			res, err := rdb.XRead(ctx, &redis.XReadArgs{
				Streams: []string{streamKey, last},
				Count:   512,
				Block:   tailBlock,
			}).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				if !fail(err) {
					return
				}
				continue
			}
			backoff = 50 * time.Millisecond
			for _, s := range res {
				for _, m := range s.Messages {
					last = m.ID
					ev, err := Decode(room, m)
					if err != nil {
						ev = Event{ID: m.ID, Room: room}
					}
					if !yield(ev, err) {
						return
					}
				}
			}
		}
	}
}

// lastID returns the ID of a stream's last entry, "0-0" when it has none.
func lastID(ctx context.Context, rdb redis.UniversalClient, streamKey string) (string, error) {
	msgs, err := rdb.XRevRangeN(ctx, streamKey, "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}
