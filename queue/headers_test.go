package queue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/payload"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// TestHeadersTravelWithMessages (issue 18, item 1): headers given to Send,
// SendBatch and SendOutOfBand reach every member with the message
// (subscription and worker alike), and show in Peek, History,
// MessageFromEvent, ReplayInto and Tail; a message sent without headers
// has none anywhere, and payloads are unchanged by headers.
func TestHeadersTravelWithMessages(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "headers"
		sub := join(t, ctx, q, room)
		got := make(chan *queue.Message, 16)
		w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: func(ctx context.Context, _ string, m *queue.Message) error {
			got <- m
			return m.Ack(ctx)
		}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		require.NoError(t, w.Subscribe(ctx, "headers-worker", room))

		trace := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "empty": ""}
		tail := q.Tail(ctx, room, "0")
		one := send(t, ctx, q, room, "one", queue.Headers(trace))
		// Pending behind one: Peek shows the headers of each.
		batch, err := q.SendBatch(ctx, room, []any{[]byte("two"), "three"}, queue.Header("k", "v"), queue.Header("k", "w"))
		require.NoError(t, err)
		plain := send(t, ctx, q, room, "plain")
		peeked, err := q.Peek(ctx, room, 0, 10)
		require.NoError(t, err)
		require.Len(t, peeked, 3)
		require.Equal(t, map[string]string{"k": "w"}, peeked[0].Headers, "a later Header replaces the value")
		require.Equal(t, map[string]string{"k": "w"}, peeked[1].Headers)
		require.Nil(t, peeked[2].Headers)
		require.Equal(t, []byte("two"), peeked[0].Data())
		oob := sendOOB(t, ctx, q, room, "notice", queue.Header("urgent", "yes"))

		want := map[uint64]map[string]string{one: trace, batch[0]: {"k": "w"}, batch[1]: {"k": "w"}, plain: nil, oob: {"urgent": "yes"}}
		data := map[uint64]string{one: "one", batch[0]: "two", batch[1]: "three", plain: "plain", oob: "notice"}
		check := func(where string, id uint64, h map[string]string, m *queue.Message) {
			t.Helper()
			require.Equal(t, want[id], h, "%s: message %d", where, id)
			if m != nil {
				if m.Raw() {
					require.Equal(t, data[id], string(m.Data()), "%s: message %d", where, id)
				} else {
					require.Equal(t, data[id], text(t, m), "%s: message %d", where, id)
				}
			}
		}
		seen := map[uint64]bool{}
		for len(seen) < len(want) {
			m := next(t, ctx, sub)
			check("Next", m.ID, m.Headers, m)
			seen[m.ID] = true
			require.NoError(t, m.Ack(ctx))
		}
		for handled := 0; handled < len(want); handled++ {
			select {
			case m := <-got:
				check("worker", m.ID, m.Headers, m)
			case <-ctx.Done():
				t.Fatal("the worker's handler got too few messages")
			}
		}

		msgs := 0
		for _, ev := range history(t, ctx, q, room) {
			if ev.Type != streams.Message && ev.Type != streams.OutOfBand {
				continue
			}
			msgs++
			m, err := queue.MessageFromEvent(ev)
			require.NoError(t, err)
			check("History", ev.MessageID, ev.Headers, nil)
			check("MessageFromEvent", m.ID, m.Headers, m)
		}
		require.Equal(t, len(want), msgs)
		replayed := 0
		require.NoError(t, q.ReplayInto(ctx, room, streams.Range{}, func(ev streams.Event) error {
			if ev.Type == streams.Message || ev.Type == streams.OutOfBand {
				check("ReplayInto", ev.MessageID, ev.Headers, nil)
				replayed++
			}
			return nil
		}, streams.ReplayOptions{}))
		require.Equal(t, len(want), replayed)
		tailed := 0
		for ev, err := range tail {
			require.NoError(t, err)
			if ev.Type == streams.Message || ev.Type == streams.OutOfBand {
				check("Tail", ev.MessageID, ev.Headers, nil)
				if tailed++; tailed == len(want) {
					break
				}
			}
		}
	})
}

// TestHeadersStorage (issue 18, item 1): a message without headers is
// stored exactly as before headers existed, "<seq>:<enqueue ms>:<producer
// length>:<producer>" and the payload with its kind byte, in the queue and
// in the stream; a message with headers carries one block before the
// payload, its keys sorted, so equal headers encode alike.
func TestHeadersStorage(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{HoldWhenEmpty: true}).q
		const room = "headers-storage"
		plain := send(t, ctx, q, room, []byte("body"), queue.Producer("p1"))
		with := send(t, ctx, q, room, []byte("body"), queue.Producer("p1"), queue.Headers(map[string]string{"b": "2", "a": "11"}))
		layout, err := keys.New(b.Prefix, 16)
		require.NoError(t, err)
		ks := layout.RoomKeys(room)
		entries, err := b.Client.LRange(ctx, ks[keys.KQueue0-1+queue.DefaultPriority], 0, -1).Result()
		require.NoError(t, err)
		require.Len(t, entries, 2)
		peeked, err := q.Peek(ctx, room, 0, 2)
		require.NoError(t, err)
		enq := func(i int) int64 { return peeked[i].EnqueuedAt.UnixMilli() }
		require.Equal(t, fmt.Sprintf("%d:%d:2:p1rbody", plain, enq(0)), entries[0])
		require.Equal(t, fmt.Sprintf("%d:%d:2:p1h13:1:a2:111:b1:2rbody", with, enq(1)), entries[1])

		// Released into the stream: the payload field is the same bytes.
		sub := join(t, ctx, q, room)
		for range 2 {
			require.NoError(t, next(t, ctx, sub).Ack(ctx))
		}
		evs, err := b.Client.XRange(ctx, ks[keys.KStream-1], "-", "+").Result()
		require.NoError(t, err)
		var ds []any
		for _, e := range evs {
			if e.Values["t"] == "m" {
				ds = append(ds, e.Values["d"])
			}
		}
		require.Equal(t, []any{"rbody", "h13:1:a2:111:b1:2rbody"}, ds)
	})
}

// TestHeadersMaxSize: headers up to the limits are sent whole; one byte
// more is refused (the bad-input matrix checks that nothing is written).
func TestHeadersMaxSize(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(testContext(t), time.Minute)
		defer cancel()
		q := setup(t, b, queue.Options{}).q
		const room = "headers-max"
		// One header whose block is exactly MaxHeaderBytes (8192):
		// "h8186:" + "1:k" + "8178:" + 8178 bytes of value.
		overhead := len("h8186:") + len("1:k") + len("8178:")
		value := make([]byte, queue.MaxHeaderBytes-overhead)
		for i := range value {
			value[i] = 'v'
		}
		sub := join(t, ctx, q, room)
		send(t, ctx, q, room, "big", queue.Header("k", string(value)))
		m := next(t, ctx, sub)
		require.Equal(t, string(value), m.Headers["k"])
		_, err := q.Send(ctx, room, "big", queue.Header("k", string(value)+"v"))
		require.ErrorIs(t, err, queue.ErrInvalidHeader)
		require.ErrorContains(t, err, fmt.Sprint(queue.MaxHeaderBytes))
		many := map[string]string{}
		for i := range queue.MaxHeaders {
			many[fmt.Sprintf("k%02d", i)] = "v"
		}
		send(t, ctx, q, room, "many", queue.Headers(many))
		require.NoError(t, m.Ack(ctx))
		require.Equal(t, many, next(t, ctx, sub).Headers)
	})
}

// TestHeaderBlocksScriptsAgreeWithReaders (issue 18, item 1): the release
// step (room.lua) and the Go readers (internal/payload, through Peek and
// the stream decoder) take the same decision on every header block:
// hand-made edge cases and random mutations of a valid one, pushed into a
// room's queue by hand and drained in one call. Each entry the script
// releases carries exactly the headers Peek read; each it sets aside is one
// Peek flagged.
func TestHeaderBlocksScriptsAgreeWithReaders(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	blocks := []string{
		"h4:1:a0:rx",          // an empty value
		"h10:1:a0:1:b1:cmx",   // msgpack after the block
		"h8:3:\x00\xff\n0:rx", // any bytes in a key, read by length
		"h5:1:a1:brx", "h3:1:arx", "h4:1:a1:rx", "h4:1:a0:", "h4:1:a0:h", "h:1:a0:rx", "h4:01:a0:rx",
		"h100000:1:a0:rx", "h65536:1:a0:rx", "h4:1:a00:rx", "h4:100000:a0:rx",
	}
	good := []byte("h13:2:tp3:abc1:k0:rpayload")
	for range 300 {
		m := append([]byte(nil), good...)
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(m))
			switch rng.IntN(3) {
			case 0:
				m[i] = "0123456789:hrmx"[rng.IntN(15)]
			case 1:
				m = append(m[:i], m[i+1:]...)
			default:
				m = append(m[:i], append([]byte{"0123456789:"[rng.IntN(11)]}, m[i:]...)...)
			}
		}
		blocks = append(blocks, string(m))
	}
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{HoldWhenEmpty: true}).q
		const room = "header-blocks"
		layout, err := keys.New(b.Prefix, 16)
		require.NoError(t, err)
		ks := layout.RoomKeys(room)
		list := ks[keys.KQueue0-1+queue.DefaultPriority]
		now := time.Now().UnixMilli()
		for i, blk := range blocks {
			require.NoError(t, b.Client.RPush(ctx, list, fmt.Sprintf("%d:%d:0:%s", 1000+i, now, blk)).Err())
		}
		peeked, err := q.Peek(ctx, room, 0, len(blocks))
		require.NoError(t, err)
		require.Len(t, peeked, len(blocks))
		for i, p := range peeked {
			h, _, why := payload.Parse([]byte(blocks[i]))
			require.Equal(t, why == "", p.Err == nil, "block %q: Peek %v, Parse %q", blocks[i], p.Err, why)
			require.Equal(t, h, p.Headers, "block %q", blocks[i])
		}
		// Drained in one call: a send to the room, now without HoldWhenEmpty.
		drain := setup(t, b, queue.Options{}).q
		send(t, ctx, drain, room, "last")
		evs, err := b.Client.XRange(ctx, ks[keys.KStream-1], "-", "+").Result()
		require.NoError(t, err)
		require.Len(t, evs, len(blocks)+1)
		for i, e := range evs[:len(blocks)] {
			ev, err := streams.Decode(room, e)
			if peeked[i].Err != nil {
				require.Equal(t, "x", e.Values["t"], "block %q released, Peek refused it: %v", blocks[i], peeked[i].Err)
				require.NoError(t, err)
				require.Equal(t, streams.MalformedPayload, ev.Reason)
				continue
			}
			require.Equal(t, "m", e.Values["t"], "block %q set aside, Peek accepted it", blocks[i])
			require.NoError(t, err, "block %q", blocks[i])
			require.Equal(t, peeked[i].Headers, ev.Headers, "block %q", blocks[i])
			require.Equal(t, peeked[i].Data(), ev.Payload[1:])
		}
	})
}
