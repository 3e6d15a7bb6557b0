package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// testMalformedAlike (issue 13, item 4): garbage XADDed into a room's stream
// between valid events is classified the same way by every reader — History,
// Tail, ReplayInto (both ways of reporting), the reader behind subscriptions,
// MessageFromEvent and `syncfanout replay` — and each garbage entry is
// counted as skipped exactly once by each of them.
func testMalformedAlike(t *testing.T, bin string) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
		require.NoError(t, err)
		defer q.Close()
		const room = "poisoned"
		obs, err := q.Join(ctx, room, queue.AsObserver())
		require.NoError(t, err)
		before, err := q.SendOutOfBand(ctx, room, []byte("before"))
		require.NoError(t, err)
		key, err := q.StreamKey(room)
		require.NoError(t, err)
		now := fmt.Sprint(time.Now().UnixMilli())
		garbage := [][]any{
			{"t", "m", "id", "90", "pr", "1", "et", now, "d", "no kind byte"},
			{"t", "m", "id", "91", "pr", "1", "et", now, "d", ""},
			{"t", "o", "id", "92", "et", now, "d", "?"},
			{"t", "m", "id", "93", "pr", "1", "et", now},
			{"t", "m"},
			{"x", "1"},
			{"t", "zz", "c", "someone"},
			{"t", "x", "id", "7"},
		}
		var bad []string
		for _, g := range garbage {
			id, err := b.Client.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: g}).Result()
			require.NoError(t, err)
			bad = append(bad, id)
		}
		after, err := q.SendOutOfBand(ctx, room, map[string]any{"n": 1})
		require.NoError(t, err)
		for _, want := range []uint64{before, after} {
			m, err := obs.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, want, m.ID, "the subscription's reader must skip the garbage")
		}
		require.EqualValues(t, len(garbage), q.Stats().Invalid, "the subscriptions' reader counts each garbage entry once")

		// classify returns the IDs of the valid events and of the skipped entries.
		type verdict struct{ good, skipped []string }
		var hist verdict
		for ev, err := range q.History(ctx, room, streams.Range{}) {
			if err != nil {
				var de *streams.DecodeError
				require.ErrorAs(t, err, &de)
				hist.skipped = append(hist.skipped, de.ID)
				continue
			}
			hist.good = append(hist.good, ev.ID)
			if ev.Type == streams.Message || ev.Type == streams.OutOfBand {
				_, err := queue.MessageFromEvent(ev)
				require.NoError(t, err, "History yielded %s as a %s that MessageFromEvent refuses", ev.ID, ev.Type)
			}
		}
		require.Equal(t, bad, hist.skipped, "History")
		require.Len(t, hist.good, 3) // the observer's join and the two OOB messages

		var tail verdict
		tctx, tcancel := context.WithCancel(ctx)
		last := hist.good[len(hist.good)-1]
		for ev, err := range q.Tail(tctx, room, "0") {
			var de *streams.DecodeError
			if errors.As(err, &de) {
				tail.skipped = append(tail.skipped, de.ID)
				continue
			}
			require.NoError(t, err)
			tail.good = append(tail.good, ev.ID)
			if ev.ID == last {
				tcancel()
			}
		}
		tcancel()
		require.Equal(t, hist, tail, "Tail")

		var replay verdict
		err = q.ReplayInto(ctx, room, streams.Range{}, func(ev streams.Event) error {
			replay.good = append(replay.good, ev.ID)
			return nil
		}, streams.ReplayOptions{})
		var se *streams.SkippedError
		require.ErrorAs(t, err, &se)
		require.Equal(t, len(garbage), se.N, "SkippedError.N")
		replay.skipped = se.IDs
		require.Equal(t, hist, replay, "ReplayInto")

		var hooked verdict
		require.NoError(t, q.ReplayInto(ctx, room, streams.Range{}, func(ev streams.Event) error {
			hooked.good = append(hooked.good, ev.ID)
			return nil
		}, streams.ReplayOptions{OnDecodeError: func(de *streams.DecodeError) error {
			hooked.skipped = append(hooked.skipped, de.ID)
			return nil
		}}))
		require.Equal(t, hist, hooked, "ReplayInto with OnDecodeError")

		r := newCLI(bin, b).run(ctx, t, "replay", "--format", "json", room)
		require.Equal(t, 0, r.code, r.stderr)
		var cli verdict
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var ev struct {
				StreamID string `json:"stream_id"`
				Encoding string `json:"encoding"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
			require.NotEqual(t, "invalid", ev.Encoding, "the CLI printed an undecodable payload: %s", line)
			cli.good = append(cli.good, ev.StreamID)
		}
		skippedLine := regexp.MustCompile(`malformed stream entry (\d+-\d+)`)
		for _, m := range skippedLine.FindAllStringSubmatch(r.stderr, -1) {
			cli.skipped = append(cli.skipped, m[1])
		}
		require.Equal(t, hist, cli, "syncfanout replay; stderr:\n%s", r.stderr)
		require.Contains(t, r.stderr, fmt.Sprintf("skipped %d malformed entries", len(garbage)))
		require.True(t, slices.IsSorted(cli.good))
	})
}
