package queue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/metrics"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// TestPoisonPendingEntrySetAside (issue 13, item 3): entries pushed into a
// room's priority list by something other than Send, between good
// messages — a valid header with an empty payload, with a payload lacking
// the kind byte, with message ID 0, and no header at all — never become the
// in-flight message: the release step records each as a "malformed" stream
// event, counts it, and releases the next good message in the same call, so
// two members keep receiving the good ones in order under lock-step. Peek
// lists every entry in release order, the bad ones flagged. Issue 18 added
// entries whose header block is malformed.
func TestPoisonPendingEntrySetAside(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		tb := setup(t, b)
		ctx, q, layout := tb.ctx, tb.q, tb.layout
		const room = "poison"
		a := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		first := send(t, ctx, q, room, "m1")
		second := send(t, ctx, q, room, "m2")

		list := layout.Queue(room, queue.DefaultPriority)
		now := time.Now().UnixMilli()
		poison := []string{
			fmt.Sprintf("900:%d:0:", now),               // no payload at all
			fmt.Sprintf("901:%d:3:evexno kind", now),    // payload without a kind byte
			fmt.Sprintf("0:%d:0:rzero message ID", now), // a message ID no reader accepts
			"junk", // no header
			fmt.Sprintf("12345678901234567890:%d:0:rx", now), // a message ID beyond a uint64
			"902:0:0:rx",                     // no enqueue time
			fmt.Sprintf("903:%d:99:rx", now), // producer longer than the entry
			// Header blocks (issue 18) that no reader accepts.
			fmt.Sprintf("904:%d:0:h", now),                    // no block length
			fmt.Sprintf("905:%d:0:h0:rx", now),                // an empty block
			fmt.Sprintf("906:%d:0:h99:1:a1:brx", now),         // a block beyond the entry
			fmt.Sprintf("907:%d:0:h6:1:a1:bxdata", now),       // no kind byte after the block
			fmt.Sprintf("908:%d:0:h12:1:a1:b1:a1:crx", now),   // a key twice
			fmt.Sprintf("909:%d:0:h5:0:1:brx", now),           // an empty key
			fmt.Sprintf("910:%d:0:h07:1:a1:brx", now),         // a length with a leading zero
			fmt.Sprintf("911:%d:0:h5:1:a1:brx", now),          // a value past the block's end
			fmt.Sprintf("912:%d:0:h6:1:a1:bh6:1:a1:brx", now), // a block inside a block
			fmt.Sprintf("913:%d:0:h5:1:ab0:rx", now),          // a value length that is no number
			fmt.Sprintf("914:%d:0:h999999:1:a1:brx", now),     // a block length of six digits
		}
		for _, p := range poison {
			require.NoError(t, b.Client.RPush(ctx, list, p).Err())
		}
		third := send(t, ctx, q, room, "m3")

		// Peek lists them all in release order; only the good ones decode.
		peeked, err := q.Peek(ctx, room, 0, 100)
		require.NoError(t, err, "one bad entry must not fail Peek as a whole")
		require.Len(t, peeked, 2+len(poison))
		require.Equal(t, second, peeked[0].ID)
		require.NoError(t, peeked[0].Err)
		for i := range poison {
			p := peeked[1+i]
			require.ErrorIs(t, p.Err, queue.ErrDecode, "entry %q", poison[i])
			require.Nil(t, p.Data())
			require.ErrorIs(t, p.Decode(new(string)), queue.ErrDecode)
		}
		require.Equal(t, third, peeked[len(peeked)-1].ID)
		require.NoError(t, peeked[len(peeked)-1].Err)
		var s string
		require.NoError(t, peeked[len(peeked)-1].Decode(&s))
		require.Equal(t, "m3", s)
		// Offsets count the bad entries too: they are where they will be met.
		tail, err := q.Peek(ctx, room, 1+len(poison), 10)
		require.NoError(t, err)
		require.Len(t, tail, 1)
		require.Equal(t, third, tail[0].ID)

		// Lock-step over the good messages: each waits for both acks.
		for _, want := range []uint64{first, second, third} {
			ma, mc := next(t, ctx, a), next(t, ctx, c)
			require.Equal(t, want, ma.ID)
			require.Equal(t, want, mc.ID)
			require.NoError(t, ma.Ack(ctx))
			st, err := q.RoomState(ctx, room)
			require.NoError(t, err)
			require.NotNil(t, st.InFlight)
			require.Equal(t, want, st.InFlight.Seq)
			require.Equal(t, []string{c.ClientID()}, st.Missing)
			require.NoError(t, mc.Ack(ctx))
		}
		st, err := q.RoomState(ctx, room)
		require.NoError(t, err)
		require.Nil(t, st.InFlight)
		require.Zero(t, st.Pending)
		require.Zero(t, b.Client.LLen(ctx, list).Val())

		// Each bad entry is its own event in the stream, between the
		// messages it sat between, and nothing in the stream is undecodable.
		var types []streams.Type
		var bad []streams.Event
		for ev, err := range q.History(ctx, room, streams.Range{}) {
			require.NoError(t, err)
			if ev.Type == streams.Join {
				continue
			}
			types = append(types, ev.Type)
			if ev.Type == streams.Malformed {
				bad = append(bad, ev)
			}
		}
		want := []streams.Type{streams.Message, streams.Message}
		for range poison {
			want = append(want, streams.Malformed)
		}
		require.Equal(t, append(want, streams.Message), types)
		require.Len(t, bad, len(poison))
		for i, ev := range bad {
			require.Equal(t, queue.DefaultPriority, ev.Priority)
			require.Equal(t, len(poison[i]), ev.Size)
			require.Equal(t, poison[i], string(ev.Payload), "short entries are kept whole")
			require.NotEmpty(t, ev.Reason)
		}
		require.EqualValues(t, 900, bad[0].MessageID)
		require.EqualValues(t, 901, bad[1].MessageID)
		require.Equal(t, streams.MalformedHeader, bad[3].Reason)
		require.Equal(t, streams.MalformedPayload, bad[1].Reason)
		for i, ev := range bad[7:] {
			require.Equal(t, streams.MalformedPayload, ev.Reason, "entry %q", poison[7+i])
			require.EqualValues(t, 904+i, ev.MessageID, "entry %q", poison[7+i])
		}

		// Counted for the deployment, and exported.
		m, err := q.Metrics(ctx, 0)
		require.NoError(t, err)
		require.EqualValues(t, len(poison), m.Malformed)
		reg := prometheus.NewRegistry()
		require.NoError(t, reg.Register(metrics.NewCollector(q, metrics.Options{})))
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(`
# HELP syncfanout_malformed_pending_entries_total Pending entries that the release step set aside as malformed instead of releasing them, each recorded as a malformed event in its room's stream (whole deployment).
# TYPE syncfanout_malformed_pending_entries_total counter
syncfanout_malformed_pending_entries_total %d
`, len(poison))), "syncfanout_malformed_pending_entries_total"))
	})
}

// TestUndecodableInFlightMessageIsAcked (issue 13, item 3, defence in
// depth): when the message a room waits on is nonetheless an entry no
// reader can decode (written into the stream and the room's meta by hand
// here), the subscription and the worker that host its members ack it on
// their own instead of skipping it, so the room moves on to the next
// message.
func TestUndecodableInFlightMessageIsAcked(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		tb := setup(t, b)
		ctx, q, layout := tb.ctx, tb.q, tb.layout
		const room = "undecodable"
		sub := join(t, ctx, q, room)
		got := make(chan *queue.Message, 10)
		w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: func(_ context.Context, _ string, m *queue.Message) error {
			got <- m
			return nil
		}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		require.NoError(t, w.Subscribe(ctx, "gateway-client", room))

		// Message 1 is in flight, but its stream entry has no payload.
		now := fmt.Sprint(time.Now().UnixMilli())
		id, err := b.Client.XAdd(ctx, &redis.XAddArgs{Stream: layout.Stream(room), Values: []any{"t", "m", "id", "1", "pr", "5", "et", now, "d", ""}}).Result()
		require.NoError(t, err)
		require.NoError(t, b.Client.HSet(ctx, layout.Meta(room), "seq", 1, "f", 1, "fs", id, "rt", now).Err())

		good := send(t, ctx, q, room, "good")
		// Something appended after the garbage makes the readers look back.
		oob := sendOOB(t, ctx, q, room, "wake")
		var seen []uint64
		for len(seen) < 2 {
			m := next(t, ctx, sub)
			seen = append(seen, m.ID)
			require.NoError(t, m.Ack(ctx))
		}
		require.Equal(t, []uint64{oob, good}, seen)
		var handled []uint64
		for len(handled) < 2 {
			select {
			case m := <-got:
				handled = append(handled, m.ID)
			case <-ctx.Done():
				t.Fatalf("the worker's handler got only %v", handled)
			}
		}
		require.ElementsMatch(t, []uint64{oob, good}, handled)
	})
}
