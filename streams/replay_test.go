package streams_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

type bundle struct {
	q   *queue.Queue
	rdb redis.UniversalClient
}

func setup(t *testing.T, b *redistest.Backend) (context.Context, *bundle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute, StreamMaxLen: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return ctx, &bundle{q: q, rdb: b.Client}
}

func (bd *bundle) key(t *testing.T, room string) string {
	t.Helper()
	k, err := bd.q.StreamKey(room)
	require.NoError(t, err)
	return k
}

// sendAll sends the values to a room without members, where each one is
// released into the stream at once.
func (bd *bundle) sendAll(ctx context.Context, t *testing.T, room string, vals ...any) {
	t.Helper()
	for _, v := range vals {
		_, err := bd.q.Send(ctx, room, v)
		require.NoError(t, err)
	}
}

func payloads(t *testing.T, evs []streams.Event) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		if ev.Type != streams.Message && ev.Type != streams.OutOfBand {
			out = append(out, string(ev.Type))
			continue
		}
		m, err := queue.MessageFromEvent(ev)
		require.NoError(t, err)
		var s string
		require.NoError(t, m.Decode(&s))
		out = append(out, s)
	}
	return out
}

func TestReplayIntoOrderAndRanges(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, bd := setup(t, b)
		bd.sendAll(ctx, t, "r", "a", "b")
		_, err := bd.q.SendOutOfBand(ctx, "r", "oob")
		require.NoError(t, err)
		bd.sendAll(ctx, t, "r", "c", "d")

		var all []streams.Event
		err = streams.ReplayInto(ctx, bd.rdb, bd.key(t, "r"), "r", streams.Range{PerPage: 2}, func(ev streams.Event) error {
			all = append(all, ev)
			return nil
		}, streams.ReplayOptions{})
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b", "oob", "c", "d"}, payloads(t, all))
		require.Equal(t, streams.OutOfBand, all[2].Type)
		for i := 1; i < len(all); i++ {
			require.Negative(t, streams.CompareIDs(all[i-1].ID, all[i].ID))
		}

		// An ID range is inclusive at both ends.
		var mid []streams.Event
		err = bd.q.ReplayInto(ctx, "r", streams.Range{FromID: all[1].ID, ToID: all[3].ID}, func(ev streams.Event) error {
			mid = append(mid, ev)
			return nil
		}, streams.ReplayOptions{})
		require.NoError(t, err)
		require.Equal(t, []string{"b", "oob", "c"}, payloads(t, mid))

		// A time range that starts after the last event is empty; one that
		// covers the whole history returns all of it.
		var none, byTime []streams.Event
		last := all[len(all)-1].At
		require.NoError(t, bd.q.ReplayInto(ctx, "r", streams.Range{Since: last.Add(time.Millisecond)}, func(ev streams.Event) error {
			none = append(none, ev)
			return nil
		}, streams.ReplayOptions{}))
		require.Empty(t, none)
		require.NoError(t, bd.q.ReplayInto(ctx, "r", streams.Range{Since: all[0].At, Until: last}, func(ev streams.Event) error {
			byTime = append(byTime, ev)
			return nil
		}, streams.ReplayOptions{}))
		require.Equal(t, payloads(t, all), payloads(t, byTime))

		// q.History agrees with the replay.
		var hist []streams.Event
		for ev, err := range bd.q.History(ctx, "r", streams.Range{}) {
			require.NoError(t, err)
			hist = append(hist, ev)
		}
		require.Equal(t, all, hist)

		// A handler error stops the replay and is returned as is.
		stop := errors.New("enough")
		n := 0
		err = bd.q.ReplayInto(ctx, "r", streams.Range{}, func(streams.Event) error {
			n++
			if n == 2 {
				return stop
			}
			return nil
		}, streams.ReplayOptions{})
		require.ErrorIs(t, err, stop)
		require.Equal(t, 2, n)
	})
}

func TestReplayIntoMembershipEvents(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, bd := setup(t, b)
		sub, err := bd.q.Join(ctx, "r", queue.WithClientID("alice"))
		require.NoError(t, err)
		bd.sendAll(ctx, t, "r", "x")
		m, err := sub.Next(ctx)
		require.NoError(t, err)
		require.NoError(t, m.Ack(ctx))
		require.NoError(t, sub.Close(ctx))

		var evs []streams.Event
		require.NoError(t, bd.q.ReplayInto(ctx, "r", streams.Range{}, func(ev streams.Event) error {
			evs = append(evs, ev)
			return nil
		}, streams.ReplayOptions{}))
		require.Equal(t, []string{"join", "x", "leave"}, payloads(t, evs))
		require.Equal(t, "alice", evs[0].ClientID)
		require.Equal(t, "alice", evs[2].ClientID)
		require.Equal(t, m.StreamID, evs[1].ID)
	})
}

// writeRaw appends an entry that did not come from the scripts.
func writeRaw(ctx context.Context, t *testing.T, rdb redis.UniversalClient, key, id string, values ...any) string {
	t.Helper()
	if id == "" {
		id = "*"
	}
	got, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: id, Values: values}).Result()
	require.NoError(t, err)
	return got
}

func TestReplayIntoSkipsMalformedEntries(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, bd := setup(t, b)
		key := bd.key(t, "r")
		bd.sendAll(ctx, t, "r", "a")
		bad1 := writeRaw(ctx, t, bd.rdb, key, "", "t", "zz")
		bd.sendAll(ctx, t, "r", "b")
		bad2 := writeRaw(ctx, t, bd.rdb, key, "", "t", "m", "id", "not-a-number")
		bd.sendAll(ctx, t, "r", "c")

		var evs []streams.Event
		collect := func(ev streams.Event) error { evs = append(evs, ev); return nil }
		err := streams.ReplayInto(ctx, bd.rdb, key, "r", streams.Range{}, collect, streams.ReplayOptions{})
		require.ErrorIs(t, err, queue.ErrDecode)
		var sk *streams.SkippedError
		require.ErrorAs(t, err, &sk)
		require.Equal(t, 2, sk.N)
		require.Equal(t, []string{bad1, bad2}, sk.IDs)
		require.Equal(t, []string{"a", "b", "c"}, payloads(t, evs))

		// With OnDecodeError each one is reported with its ID, and the
		// callback decides whether to go on.
		evs = nil
		var seen []string
		err = streams.ReplayInto(ctx, bd.rdb, key, "r", streams.Range{}, collect, streams.ReplayOptions{
			OnDecodeError: func(de *streams.DecodeError) error { seen = append(seen, de.ID); return nil },
		})
		require.NoError(t, err)
		require.Equal(t, []string{bad1, bad2}, seen)
		require.Equal(t, []string{"a", "b", "c"}, payloads(t, evs))

		stop := errors.New("stop at garbage")
		evs = nil
		err = streams.ReplayInto(ctx, bd.rdb, key, "r", streams.Range{}, collect, streams.ReplayOptions{
			OnDecodeError: func(*streams.DecodeError) error { return stop },
		})
		require.ErrorIs(t, err, stop)
		require.Equal(t, []string{"a"}, payloads(t, evs))
	})
}

func TestReplayIntoPacing(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, bd := setup(t, b)
		key := bd.key(t, "paced")
		// Two valid events one hour apart by their IDs' server times.
		oob := func(id, body string) {
			writeRaw(ctx, t, bd.rdb, key, id, "t", "o", "id", "1", "p", "", "et", "1000", "d", "r"+body)
		}
		oob("1000-0", "first")
		oob(fmt.Sprint(1000+time.Hour.Milliseconds())+"-0", "second")

		var got []string
		collect := func(ev streams.Event) error {
			got = append(got, payloads(t, []streams.Event{ev})...)
			return nil
		}
		// As fast as possible: both at once.
		require.NoError(t, streams.ReplayInto(ctx, bd.rdb, key, "paced", streams.Range{}, collect, streams.ReplayOptions{}))
		require.Equal(t, []string{"first", "second"}, got)

		// At the original pace the second event is an hour away: the replay
		// waits for it and ends with the context.
		got = nil
		short, cancel := context.WithCancel(ctx)
		err := streams.ReplayInto(short, bd.rdb, key, "paced", streams.Range{}, func(ev streams.Event) error {
			require.NoError(t, collect(ev))
			cancel()
			return nil
		}, streams.ReplayOptions{Speed: 1})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, []string{"first"}, got)

		for _, bad := range []float64{-1, float64Inf(), float64NaN()} {
			err := streams.ReplayInto(ctx, bd.rdb, key, "paced", streams.Range{}, collect, streams.ReplayOptions{Speed: bad})
			require.ErrorIs(t, err, queue.ErrInvalidOption, "speed %v", bad)
		}
		require.ErrorIs(t, streams.ReplayInto(ctx, bd.rdb, key, "paced", streams.Range{}, nil, streams.ReplayOptions{}), queue.ErrInvalidOption)
	})
}

func TestTail(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, bd := setup(t, b)
		key := bd.key(t, "t")
		bd.sendAll(ctx, t, "t", "old")

		// The tail runs in its own goroutine and hands events over a channel.
		type item struct {
			ev  streams.Event
			err error
		}
		start := func(ctx context.Context, from string) (<-chan item, <-chan struct{}) {
			out := make(chan item, 16)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for ev, err := range bd.q.Tail(ctx, "t", from) {
					select {
					case out <- item{ev, err}:
					case <-ctx.Done():
						return
					}
				}
			}()
			return out, done
		}
		next := func(ch <-chan item) item {
			t.Helper()
			select {
			case it := <-ch:
				return it
			case <-ctx.Done():
				t.Fatal("no tail event before the deadline")
				return item{}
			}
		}

		tailCtx, stop := context.WithCancel(ctx)
		ch, done := start(tailCtx, "")
		// The tail from now must not yield "old". It cannot say when it
		// started reading, so markers are sent until one arrives: the first
		// one yielded and every marker after it must come in order.
		sent := 0
		var first item
	wait:
		for {
			bd.sendAll(ctx, t, "t", fmt.Sprint("new", sent))
			sent++
			select {
			case first = <-ch:
				break wait
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				t.Fatal("no tail event before the deadline")
			}
		}
		require.NoError(t, first.err)
		var k int
		_, err := fmt.Sscanf(payloads(t, []streams.Event{first.ev})[0], "new%d", &k)
		require.NoError(t, err, "the tail from now yielded an older event")
		for i := k + 1; i < sent; i++ {
			it := next(ch)
			require.NoError(t, it.err)
			require.Equal(t, []string{fmt.Sprint("new", i)}, payloads(t, []streams.Event{it.ev}))
		}
		bad := writeRaw(ctx, t, bd.rdb, key, "", "garbage", "1")
		bd.sendAll(ctx, t, "t", "after-garbage")
		it := next(ch)
		require.ErrorIs(t, it.err, queue.ErrDecode)
		var de *streams.DecodeError
		require.ErrorAs(t, it.err, &de)
		require.Equal(t, bad, de.ID)
		it = next(ch)
		require.NoError(t, it.err)
		require.Equal(t, []string{"after-garbage"}, payloads(t, []streams.Event{it.ev}))
		stop()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("tail did not end with its context")
		}

		// Resuming from an ID yields what follows it, in order, the
		// malformed entry included.
		type entry struct {
			id  string
			bad bool
		}
		var all []entry
		for ev, err := range bd.q.History(ctx, "t", streams.Range{}) {
			all = append(all, entry{ev.ID, err != nil})
		}
		tailCtx, stop = context.WithCancel(ctx)
		defer stop()
		ch, done = start(tailCtx, all[0].id)
		var resumed []entry
		for range len(all) - 1 {
			it := next(ch)
			id := it.ev.ID
			if it.err != nil {
				require.ErrorAs(t, it.err, &de)
				id = de.ID
			}
			resumed = append(resumed, entry{id, it.err != nil})
		}
		require.Equal(t, all[1:], resumed)
		stop()
		<-done

		// A room without a stream yet: "now" is its very beginning.
		freshCtx, stopFresh := context.WithCancel(ctx)
		defer stopFresh()
		fresh := make(chan streams.Event, 16)
		freshDone := make(chan struct{})
		go func() {
			defer close(freshDone)
			for ev, err := range bd.q.Tail(freshCtx, "fresh", "$") {
				if err == nil {
					select {
					case fresh <- ev:
					case <-freshCtx.Done():
						return
					}
				}
			}
		}()
	waitFresh:
		for i := 0; ; i++ {
			bd.sendAll(ctx, t, "fresh", fmt.Sprint("f", i))
			select {
			case ev := <-fresh:
				require.Regexp(t, `^f\d+$`, payloads(t, []streams.Event{ev})[0])
				break waitFresh
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				t.Fatal("no event from the tail of a new room")
			}
		}
		stopFresh()
		<-freshDone

		// Invalid rooms are reported, not read.
		for _, err := range bd.q.Tail(ctx, "bad{room}", "") {
			require.ErrorIs(t, err, queue.ErrInvalidRoom)
		}
	})
}

func float64Inf() float64 { return math.Inf(1) }
func float64NaN() float64 { return math.NaN() }
