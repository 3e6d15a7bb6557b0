package queue_test

// One regression test per defect of the original library, numbered as in
// the parity list of docs/semantics.md. Each test reproduces the situation
// that broke the original and checks the rule that replaces it, on
// standalone Redis and on Redis Cluster.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// dftEvents reads a room's whole delivery stream; every entry must decode.
func dftEvents(ctx context.Context, t *testing.T, rdb redis.UniversalClient, l *keys.Layout, room string) []streams.Event {
	t.Helper()
	var out []streams.Event
	for ev, err := range streams.History(ctx, rdb, l.Stream(room), room, streams.Range{}) {
		require.NoError(t, err)
		out = append(out, ev)
	}
	return out
}

// dftWaitEvents blocks on the room's stream (XREAD on rdb, read-only: it
// never runs a room script) until done accepts the events read so far.
func dftWaitEvents(ctx context.Context, t *testing.T, rdb redis.UniversalClient, l *keys.Layout, room string, done func([]streams.Event) bool) []streams.Event {
	t.Helper()
	key, last := l.Stream(room), "0-0"
	var evs []streams.Event
	for {
		if done(evs) {
			return evs
		}
		require.NoError(t, ctx.Err(), "waiting on the stream of room %q; got %d events: %+v", room, len(evs), evs)
		res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{key, last}, Block: 200 * time.Millisecond}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		require.NoError(t, err)
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				ev, err := streams.Decode(room, m)
				require.NoError(t, err)
				evs = append(evs, ev)
			}
		}
	}
}

// dftInFlight is the in-flight message ID, 0 when none.
func dftInFlight(st queue.RoomState) uint64 {
	if st.InFlight == nil {
		return 0
	}
	return st.InFlight.Seq
}

// dftMemberIDs lists the voting members of a state, sorted.
func dftMemberIDs(st queue.RoomState) []string {
	ids := []string{}
	for _, m := range st.Members {
		ids = append(ids, m.ClientID)
	}
	sort.Strings(ids)
	return ids
}

// dftSorted returns a sorted copy (nil becomes empty, to compare with states).
func dftSorted(ids ...string) []string {
	out := append([]string{}, ids...)
	sort.Strings(out)
	return out
}

// dftCounter counts the commands a client sends (pipelined ones one by
// one), by name.
type dftCounter struct {
	mu    sync.Mutex
	names map[string]int
	total int
}

// dftHandshake are the commands go-redis sends when it opens a connection.
var dftHandshake = map[string]bool{"hello": true, "client": true, "auth": true, "select": true, "readonly": true}

func (c *dftCounter) add(cmds ...redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names = map[string]int{}
	}
	for _, cmd := range cmds {
		name := strings.ToLower(cmd.Name())
		if dftHandshake[name] {
			continue // a new connection's setup, not the call's own cost
		}
		c.names[name]++
		c.total++
	}
}

func (c *dftCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names, c.total = map[string]int{}, 0
}

func (c *dftCounter) snapshot() (int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, maps.Clone(c.names)
}

func (c *dftCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *dftCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *dftCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(cmds...)
		return next(ctx, cmds)
	}
}

// dftCountedQueue returns a Queue on a client of its own whose commands
// are counted. Housekeeping is off so only the test's own calls count.
func dftCountedQueue(t *testing.T, b *redistest.Backend) (*queue.Queue, *dftCounter) {
	t.Helper()
	rdb := b.NewClient(t)
	c := &dftCounter{}
	rdb.AddHook(c)
	return setupOn(t, rdb, b.Prefix, queue.Options{DisableHousekeeping: true}), c
}

func TestDefect01_IdenticalPayloadsSameMillisecond(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 60*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		const room = "identical"
		sub, err := q.Join(ctx, room)
		require.NoError(t, err)

		// Concurrent producers make many sends share a server millisecond,
		// the situation in which the original merged identical payloads.
		const senders, perSender = 8, 25
		const n = senders * perSender
		payload := []byte("the very same payload")
		ids := make(chan uint64, n)
		var wg sync.WaitGroup
		errs := make(chan error, senders)
		for range senders {
			wg.Go(func() {
				for range perSender {
					id, err := q.Send(ctx, room, payload)
					if err != nil {
						errs <- err
						return
					}
					ids <- id
				}
			})
		}
		wg.Wait()
		close(ids)
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		sent := map[uint64]bool{}
		for id := range ids {
			require.False(t, sent[id], "message ID %d returned twice", id)
			sent[id] = true
		}
		require.Len(t, sent, n)

		st := roomState(t, ctx, q, room)
		require.Equal(t, n-1, st.Pending, "one message in flight, every other one pending")
		require.NotNil(t, st.InFlight)

		// Every one of them is delivered, once, with its own ID.
		delivered := map[uint64]bool{}
		perMs := map[int64]int{}
		for range n {
			m := next(t, ctx, sub)
			require.Equal(t, payload, m.Data())
			require.True(t, sent[m.ID], "delivered an ID that no Send returned: %d", m.ID)
			require.False(t, delivered[m.ID], "message %d delivered twice", m.ID)
			delivered[m.ID] = true
			perMs[m.EnqueuedAt.UnixMilli()]++
			require.NoError(t, m.Ack(ctx))
		}
		busiest := 0
		for _, c := range perMs {
			busiest = max(busiest, c)
		}
		require.GreaterOrEqual(t, busiest, 2, "no two sends shared a millisecond: the test did not reproduce the defect's condition")
		t.Logf("%d identical payloads over %d server milliseconds, up to %d in one", n, len(perMs), busiest)

		evs := ofType(dftEvents(ctx, t, b.Client, layoutOf(t, b, 0), room), streams.Message)
		require.Len(t, evs, n, "the stream holds each message once")
	})
}

func TestDefect02_FIFOBySendOrderNotPayload(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		const room = "fifo"
		sub, err := q.Join(ctx, room)
		require.NoError(t, err)
		// The first message goes in flight and holds the rest back.
		blocker, err := q.Send(ctx, room, []byte("blocker"), queue.Priority(3))
		require.NoError(t, err)

		// Payloads and producers sort in reverse of the send order, so an
		// order by content (the original's ZSET member order) shows.
		const n = 30
		type sent struct {
			id       uint64
			payload  string
			producer string
		}
		var want []sent
		for i := range n {
			s := sent{payload: fmt.Sprintf("z%03d", n-i), producer: []string{"producer-b", "producer-a"}[i%2]}
			s.id, err = q.Send(ctx, room, []byte(s.payload), queue.Priority(3), queue.Producer(s.producer))
			require.NoError(t, err)
			if len(want) > 0 {
				require.Greater(t, s.id, want[len(want)-1].id, "IDs grow in send order")
			}
			want = append(want, s)
		}

		pending, err := q.Peek(ctx, room, 0, 1000)
		require.NoError(t, err)
		require.Len(t, pending, n)
		for i, p := range pending {
			require.Equal(t, want[i].id, p.ID, "Peek position %d", i)
			require.Equal(t, want[i].payload, string(p.Data()))
			require.Equal(t, want[i].producer, p.Producer)
		}

		first := next(t, ctx, sub)
		require.Equal(t, blocker, first.ID)
		require.NoError(t, first.Ack(ctx))
		for i := range n {
			m := next(t, ctx, sub)
			require.Equal(t, want[i].id, m.ID, "delivery %d", i)
			require.Equal(t, want[i].payload, string(m.Data()))
			require.Equal(t, want[i].producer, m.Producer)
			require.NoError(t, m.Ack(ctx))
		}
	})
}

func TestDefect03_PriorityDirection(t *testing.T) {
	t.Parallel()
	// The direction and range are documented constants.
	require.Equal(t, 0, queue.MinPriority)
	require.Equal(t, 9, queue.MaxPriority)
	require.Equal(t, 5, queue.DefaultPriority)
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		const room = "priorities"
		sub, err := q.Join(ctx, room)
		require.NoError(t, err)
		blocker, err := q.Send(ctx, room, []byte("blocker"))
		require.NoError(t, err)

		// -1 stands for "no Priority option": DefaultPriority.
		order := []int{7, 2, queue.MaxPriority, queue.MinPriority, -1, 2, queue.MinPriority, 6, -1, 4, queue.MaxPriority, 5}
		type sent struct {
			id   uint64
			prio int
			seq  int // send order
		}
		var all []sent
		for i, p := range order {
			var opts []queue.SendOption
			prio := queue.DefaultPriority
			if p >= 0 {
				opts = append(opts, queue.Priority(p))
				prio = p
			}
			id, err := q.Send(ctx, room, []byte(fmt.Sprintf("m%02d", i)), opts...)
			require.NoError(t, err)
			all = append(all, sent{id: id, prio: prio, seq: i})
		}

		before := roomState(t, ctx, q, room)
		for _, p := range []int{queue.MinPriority - 1, queue.MaxPriority + 1, -100, 1 << 20} {
			_, err := q.Send(ctx, room, []byte("rejected"), queue.Priority(p))
			require.ErrorIs(t, err, queue.ErrInvalidPriority, "priority %d", p)
		}
		after := roomState(t, ctx, q, room)
		require.Equal(t, before.LastSeq, after.LastSeq, "a rejected priority changes nothing")
		require.Equal(t, before.Pending, after.Pending)
		for p := range after.ByPriority {
			want := 0
			for _, s := range all {
				if s.prio == p {
					want++
				}
			}
			require.Equal(t, want, after.ByPriority[p], "pending at priority %d", p)
		}

		// Lower number first; equal priorities in send order.
		want := slices.Clone(all)
		slices.SortStableFunc(want, func(a, b sent) int { return a.prio - b.prio })
		pending, err := q.Peek(ctx, room, 0, 100)
		require.NoError(t, err)
		require.Len(t, pending, len(want))
		for i, p := range pending {
			require.Equal(t, want[i].id, p.ID, "Peek position %d", i)
			require.Equal(t, want[i].prio, p.Priority)
		}
		m := next(t, ctx, sub)
		require.Equal(t, blocker, m.ID)
		require.Equal(t, queue.DefaultPriority, m.Priority)
		require.NoError(t, m.Ack(ctx))
		for i, w := range want {
			m := next(t, ctx, sub)
			require.Equal(t, w.id, m.ID, "release %d", i)
			require.Equal(t, w.prio, m.Priority)
			require.Equal(t, fmt.Sprintf("m%02d", w.seq), string(m.Data()))
			require.NoError(t, m.Ack(ctx))
		}
	})
}

func TestDefect04_AcksAreBound(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		const room = "bound"
		a, err := q.Join(ctx, room)
		require.NoError(t, err)
		bb, err := q.Join(ctx, room)
		require.NoError(t, err)
		e, err := q.Join(ctx, room)
		require.NoError(t, err)
		outsider, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, q.Subscribe(ctx, outsider, "elsewhere"))

		var ids []uint64
		for i := range 5 {
			id, err := q.Send(ctx, room, []byte(fmt.Sprintf("m%d", i+1)))
			require.NoError(t, err)
			ids = append(ids, id)
		}
		state := func() queue.RoomState { return roomState(t, ctx, q, room) }
		requireWaiting := func(seq uint64, missing ...string) {
			t.Helper()
			st := state()
			require.Equal(t, seq, dftInFlight(st), "in flight")
			require.Equal(t, dftSorted(missing...), dftSorted(st.Missing...), "missing acks of message %d", seq)
		}
		var stale, invalid, notMember uint64

		a1, b1, e1 := next(t, ctx, a), next(t, ctx, bb), next(t, ctx, e)
		require.Equal(t, ids[0], a1.ID)
		require.NoError(t, e1.Ack(ctx))
		requireWaiting(ids[0], a.ClientID(), bb.ClientID())

		// A third party cannot ack for B: not a client that is not in the
		// room, not another member, not with a made-up or altered token.
		for _, who := range []string{outsider, a.ClientID(), e.ClientID()} {
			require.ErrorIs(t, q.Ack(ctx, who, b1.AckToken), queue.ErrInvalidToken, "%s acking with B's token", who)
			invalid++
		}
		for _, tok := range []string{"", "bogus", "AQA", b1.AckToken + "x", b1.AckToken[:len(b1.AckToken)-2], strings.ToUpper(b1.AckToken)} {
			err := q.Ack(ctx, bb.ClientID(), tok)
			require.Error(t, err, "token %q", tok)
			require.NotErrorIs(t, err, queue.ErrStaleAck)
			invalid++
		}
		requireWaiting(ids[0], a.ClientID(), bb.ClientID())

		// A duplicate ack of message 1 while it is in flight is harmless and
		// is not a vote for anyone else.
		require.NoError(t, a1.Ack(ctx))
		require.NoError(t, a1.Ack(ctx))
		require.NoError(t, q.Ack(ctx, a.ClientID(), a1.AckToken))
		requireWaiting(ids[0], bb.ClientID())

		require.NoError(t, b1.Ack(ctx))
		requireWaiting(ids[1], a.ClientID(), bb.ClientID(), e.ClientID())

		// Late and duplicate acks of message 1 do not count for message 2.
		for _, m := range []*queue.Message{a1, b1, e1, a1} {
			require.ErrorIs(t, m.Ack(ctx), queue.ErrStaleAck)
			stale++
		}
		requireWaiting(ids[1], a.ClientID(), bb.ClientID(), e.ClientID())

		a2, b2, e2 := next(t, ctx, a), next(t, ctx, bb), next(t, ctx, e)
		require.Equal(t, ids[1], e2.ID)
		require.NoError(t, a2.Ack(ctx))
		require.NoError(t, b2.Ack(ctx))
		requireWaiting(ids[1], e.ClientID())

		// E leaves without acking: it was the last vote missing, so message
		// 3 goes out in the same step. Its ack of message 2 is now a
		// non-member's.
		eID := e.ClientID()
		require.NoError(t, e.Close(ctx))
		requireWaiting(ids[2], a.ClientID(), bb.ClientID())
		require.ErrorIs(t, q.Ack(ctx, eID, e2.AckToken), queue.ErrNotMember)
		notMember++
		requireWaiting(ids[2], a.ClientID(), bb.ClientID())

		// E comes back while message 3 is in flight: it does not owe message
		// 3, and its late ack of message 2 counts for nothing.
		e, err = q.Join(ctx, room, queue.WithClientID(eID))
		require.NoError(t, err)
		require.ErrorIs(t, q.Ack(ctx, eID, e2.AckToken), queue.ErrStaleAck)
		stale++
		requireWaiting(ids[2], a.ClientID(), bb.ClientID())
		a3, b3 := next(t, ctx, a), next(t, ctx, bb)
		require.Equal(t, ids[2], a3.ID)
		require.NoError(t, a3.Ack(ctx))
		require.NoError(t, b3.Ack(ctx))
		requireWaiting(ids[3], a.ClientID(), bb.ClientID(), eID)
		require.ErrorIs(t, q.Ack(ctx, eID, e2.AckToken), queue.ErrStaleAck)
		stale++
		require.ErrorIs(t, a3.Ack(ctx), queue.ErrStaleAck)
		stale++
		requireWaiting(ids[3], a.ClientID(), bb.ClientID(), eID)
		for _, s := range []*queue.Subscription{a, bb, e} {
			m := next(t, ctx, s)
			require.Equal(t, ids[3], m.ID, "E receives what was released after it came back")
			require.NoError(t, m.Ack(ctx))
		}
		requireWaiting(ids[4], a.ClientID(), bb.ClientID(), eID)

		st := q.Stats()
		require.Equal(t, stale, st.AckStale)
		require.Equal(t, invalid, st.AckInvalid)
		require.Equal(t, notMember, st.AckNotMember)

		// With AckSecret, a token altered anywhere is refused before Redis.
		qs := setupOn(t, b.NewClient(t), b.Prefix, queue.Options{AckSecret: []byte("0123456789abcdef0123456789abcdef")})
		const signed = "signed"
		x, err := qs.Join(ctx, signed)
		require.NoError(t, err)
		_, err = qs.Send(ctx, signed, []byte("s1"))
		require.NoError(t, err)
		mx := next(t, ctx, x)
		tok := []byte(mx.AckToken)
		for i := range tok {
			altered := slices.Clone(tok)
			altered[i] = map[bool]byte{true: 'B', false: 'A'}[tok[i] == 'A']
			require.ErrorIs(t, qs.Ack(ctx, x.ClientID(), string(altered)), queue.ErrInvalidToken, "token altered at byte %d", i)
		}
		// An unsigned token from the Queue without a secret is refused too.
		require.ErrorIs(t, qs.Ack(ctx, a.ClientID(), a3.AckToken), queue.ErrInvalidToken)
		require.Equal(t, []string{x.ClientID()}, roomState(t, ctx, qs, signed).Missing)
		require.NoError(t, mx.Ack(ctx))
		require.Empty(t, roomState(t, ctx, qs, signed).Missing)
	})
}

func TestDefect05_SilentSubscriberEvictedWithoutOtherProcesses(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		const timeout = time.Second
		// The only process: the producer's own Queue. Nothing else runs
		// housekeeping, and after the sends nobody calls anything on the
		// room; the test only reads the stream.
		opts := queue.Options{ClientTimeout: timeout}
		q := setupOn(t, b.Client, b.Prefix, opts)
		interval := min(timeout/4, time.Second) // the documented default
		l := layoutOf(t, b, 0)
		const room = "silent"
		silent, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, q.Subscribe(ctx, silent, room))
		first, err := q.Send(ctx, room, []byte("one"))
		require.NoError(t, err)
		second, err := q.Send(ctx, room, []byte("two"))
		require.NoError(t, err)
		require.Equal(t, []string{silent}, roomState(t, ctx, q, room).Missing)

		reader := b.NewClient(t)
		evs := dftWaitEvents(ctx, t, reader, l, room, func(evs []streams.Event) bool {
			return len(ofType(evs, streams.Message)) == 2
		})
		var join, evict streams.Event
		for _, ev := range evs {
			switch ev.Type {
			case streams.Join:
				join = ev
			case streams.Evict:
				evict = ev
			}
		}
		require.Equal(t, silent, join.ClientID)
		require.Equal(t, silent, evict.ClientID, "the silent member is evicted: %+v", evs)
		require.Equal(t, "timeout", evict.Reason)
		msgs := ofType(evs, streams.Message)
		require.Equal(t, []uint64{first, second}, []uint64{msgs[0].MessageID, msgs[1].MessageID})
		require.Negative(t, streams.CompareIDs(evict.ID, msgs[1].ID), "message 2 is released by the eviction")

		// By the server clock: not before the timeout, and within the
		// timeout plus one housekeeping round (generous slack for a loaded
		// machine; the original needed another process, or waited forever).
		silence := evict.At.Sub(join.At)
		require.GreaterOrEqual(t, silence, timeout)
		require.LessOrEqual(t, silence, timeout+interval+1500*time.Millisecond)
		t.Logf("evicted %v after its last heartbeat (timeout %v, housekeeping every %v)", silence, timeout, interval)

		st := roomState(t, ctx, q, room)
		require.Empty(t, st.Members)
		require.Nil(t, st.InFlight)
		require.Zero(t, st.Pending)
		// The client's own heartbeat learns it was evicted, once.
		err = q.Ping(ctx, silent)
		var ev *queue.EvictedError
		require.ErrorAs(t, err, &ev)
		require.ErrorIs(t, err, queue.ErrEvicted)
		require.Equal(t, []string{room}, ev.Rooms)
		require.ErrorIs(t, q.Ping(ctx, silent), queue.ErrUnknownClient)
	})
}

func TestDefect06_NoSpuriousDeliveries(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		const room = "exact"
		a, err := q.Join(ctx, room)
		require.NoError(t, err)
		c, err := q.Join(ctx, room)
		require.NoError(t, err)
		obs, err := q.Join(ctx, room, queue.AsObserver())
		require.NoError(t, err)

		const n, oobs = 12, 4
		for i := range n {
			if i%3 == 0 && i/3 < oobs {
				_, err := q.SendOutOfBand(ctx, room, []byte(fmt.Sprintf("oob%d", i/3)))
				require.NoError(t, err)
			}
			_, err := q.Send(ctx, room, []byte(fmt.Sprintf("m%d", i)))
			require.NoError(t, err)
		}

		type tally struct{ msgs, oob int }
		counts := map[string]*tally{a.ClientID(): {}, c.ClientID(): {}, obs.ClientID(): {}}
		// nextQueued reads up to the next queued message, counting the
		// out-of-band ones met on the way.
		nextQueued := func(s *queue.Subscription) *queue.Message {
			t.Helper()
			for {
				m := next(t, ctx, s)
				if m.OutOfBand {
					require.Empty(t, m.AckToken)
					counts[s.ClientID()].oob++
					continue
				}
				counts[s.ClientID()].msgs++
				return m
			}
		}
		for i := range n {
			if i == n/2 {
				// Joins and leaves of others are stream events too; none of
				// them may come out as a delivery.
				x, err := q.Join(ctx, room)
				require.NoError(t, err)
				require.NoError(t, x.Close(ctx))
				y, err := q.CreateClientID(ctx)
				require.NoError(t, err)
				require.NoError(t, q.SubscribeObserver(ctx, y, room))
				require.NoError(t, q.Unsubscribe(ctx, y, room))
			}
			ma, mc, mo := nextQueued(a), nextQueued(c), nextQueued(obs)
			want := fmt.Sprintf("m%d", i)
			for _, m := range []*queue.Message{ma, mc, mo} {
				require.Equal(t, want, string(m.Data()))
			}
			require.Empty(t, mo.AckToken, "observers do not ack")
			require.NoError(t, ma.Ack(ctx))
			require.NoError(t, mc.Ack(ctx))
		}
		// Nothing else is queued for anyone: the next delivery of each is
		// this final out-of-band message.
		end, err := q.SendOutOfBand(ctx, room, []byte("end"))
		require.NoError(t, err)
		for _, s := range []*queue.Subscription{a, c, obs} {
			m := next(t, ctx, s)
			require.Equal(t, end, m.ID, "client %s got a delivery it should not have: %q", s.ClientID(), m.Data())
			require.Equal(t, tally{msgs: n, oob: oobs}, *counts[s.ClientID()], "client %s", s.ClientID())
		}

		st := q.Stats()
		require.EqualValues(t, n, st.Sent)
		require.EqualValues(t, oobs+1, st.OutOfBand)
		require.EqualValues(t, 3*(n+oobs+1), st.Delivered)
		require.EqualValues(t, 2*n, st.Acked)
		require.EqualValues(t, n, st.Released)
		for name, v := range map[string]uint64{
			"Invalid": st.Invalid, "AckStale": st.AckStale, "AckInvalid": st.AckInvalid,
			"AckNotMember": st.AckNotMember, "EvictedTimeout": st.EvictedTimeout, "EvictedAckTimeout": st.EvictedAckTimeout,
		} {
			require.Zero(t, v, name)
		}

		evs := dftEvents(ctx, t, b.Client, layoutOf(t, b, 0), room)
		require.Len(t, ofType(evs, streams.Message), n)
		require.Len(t, ofType(evs, streams.OutOfBand), oobs+1)
		require.Len(t, ofType(evs, streams.Join), 5)
		require.Len(t, ofType(evs, streams.Leave), 2)
	})
}

func TestDefect07_GarbageInRedisIsSkipped(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		l := layoutOf(t, b, 0)
		const room = "garbage"
		member, err := q.Join(ctx, room)
		require.NoError(t, err)
		obs, err := q.Join(ctx, room, queue.AsObserver())
		require.NoError(t, err)
		first, err := q.Send(ctx, room, []byte("before"))
		require.NoError(t, err)
		m := next(t, ctx, member)
		require.Equal(t, first, m.ID)
		require.Equal(t, first, next(t, ctx, obs).ID)

		now := fmt.Sprint(time.Now().UnixMilli())
		msg := func(kv ...string) []any {
			out := make([]any, len(kv))
			for i, s := range kv {
				out[i] = s
			}
			return out
		}
		garbage := [][]any{
			msg("junk", "1"),
			msg("t", "x", "id", "7", "d", "rhello"),
			msg("t", "M", "id", "7", "pr", "0", "et", now, "d", "rhello"),
			msg("t", "", "id", "7"),
			msg("\xff\xfe", "\x00\x01"),
			// Forged-looking: the shape of a message event, wrong inside.
			// (An entry forged in every detail by someone who can write to
			// Redis cannot be told from the scripts' own: stream entries
			// are not signed. What is checked is that no entry the scripts
			// could not have written gets through.)
			msg("t", "m"),
			msg("t", "m", "id", "abc", "pr", "0", "et", now, "d", "rhello"),
			msg("t", "m", "id", "0", "pr", "0", "et", now, "d", "rhello"),
			msg("t", "m", "id", "-3", "pr", "0", "et", now, "d", "rhello"),
			msg("t", "m", "id", "18446744073709551616", "pr", "0", "et", now, "d", "rhello"),
			msg("t", "m", "id", "7", "pr", "-1", "et", now, "d", "rhello"),
			msg("t", "m", "id", "7", "pr", "high", "et", now, "d", "rhello"),
			msg("t", "m", "id", "7", "pr", "0", "et", "-5", "d", "rhello"),
			msg("t", "m", "id", "7", "pr", "0", "et", "yesterday", "d", "rhello"),
			msg("t", "m", "id", "7", "pr", "0", "et", now),
			msg("t", "m", "id", "7", "pr", "0", "et", now, "d", ""),
			msg("t", "m", "id", "7", "pr", "0", "et", now, "d", "xno kind byte"),
			msg("t", "o", "id", "8", "et", now, "d", "\x00binary"),
			msg("t", "o", "id", "8", "et", "0", "d", "rhello"),
			msg("t", "o", "et", now, "d", "rhello"),
			msg("t", "e"),
			msg("t", "l", "c", ""),
			msg("t", "j", "r", "timeout"),
		}
		for _, values := range garbage {
			require.NoError(t, b.Client.XAdd(ctx, &redis.XAddArgs{Stream: l.Stream(room), Values: values}).Err())
		}

		// The member acks the message it has, which releases the next one;
		// the observer sees the same. The garbage in between is skipped,
		// counted once per entry, and the subscriptions go on.
		second, err := q.Send(ctx, room, []byte("after"))
		require.NoError(t, err)
		oob, err := q.SendOutOfBand(ctx, room, []byte("after-oob"))
		require.NoError(t, err)
		require.NoError(t, m.Ack(ctx))
		for _, s := range []*queue.Subscription{member, obs} {
			got := []uint64{next(t, ctx, s).ID, next(t, ctx, s).ID}
			require.ElementsMatch(t, []uint64{second, oob}, got, "client %s", s.ClientID())
		}
		require.EqualValues(t, len(garbage), q.Stats().Invalid, "every malformed entry counted once")
		require.EqualValues(t, 2*3, q.Stats().Delivered, "no malformed entry delivered")

		// The history reader reports them as decode errors and goes on too.
		var bad int
		var good []uint64
		for ev, err := range streams.History(ctx, b.Client, l.Stream(room), room, streams.Range{}) {
			if err != nil {
				require.ErrorIs(t, err, queue.ErrDecode)
				bad++
				continue
			}
			if ev.Type == streams.Message || ev.Type == streams.OutOfBand {
				good = append(good, ev.MessageID)
			}
		}
		// Payloads without our kind byte included: every reader decides
		// with streams.Decode (issue 13, item 4).
		require.Equal(t, len(garbage), bad)
		require.Len(t, good, 3)
		st := roomState(t, ctx, q, room)
		require.Equal(t, second, dftInFlight(st))
		require.Equal(t, []string{member.ClientID()}, st.Missing)
	})
}

func TestDefect08_SeparatorsInIDs(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		l := layoutOf(t, b, 0)
		rooms := []string{"room", "room::a:b", "room:"}
		clients := []string{"c", "c:1", "c::1", ":", "::", "a::b::c", "x:y:", "c:1:"}
		producers := []string{":", "::", "p::q", "p:q:", "producer"}

		subs := map[string]*queue.Subscription{}
		for _, c := range clients {
			s, err := q.Join(ctx, rooms[0], queue.WithClientID(c))
			require.NoError(t, err)
			subs[c] = s
		}
		// Raw subscriptions of the same IDs in rooms whose names carry
		// separators too.
		for _, c := range clients[:4] {
			for _, r := range rooms[1:] {
				require.NoError(t, q.Subscribe(ctx, c, r))
			}
		}
		require.Equal(t, dftSorted(clients...), dftMemberIDs(roomState(t, ctx, q, rooms[0])))

		var ids []uint64
		for _, p := range producers {
			id, err := q.Send(ctx, rooms[0], []byte("from "+p), queue.Producer(p))
			require.NoError(t, err)
			ids = append(ids, id)
		}
		for i, p := range producers {
			for j, c := range clients {
				m := next(t, ctx, subs[c])
				require.Equal(t, ids[i], m.ID)
				require.Equal(t, p, m.Producer)
				if j%2 == 0 {
					require.NoError(t, m.Ack(ctx))
				} else {
					require.NoError(t, q.Ack(ctx, c, m.AckToken))
				}
				st := roomState(t, ctx, q, rooms[0])
				if j < len(clients)-1 {
					require.Equal(t, ids[i], dftInFlight(st), "message %d waits for the others", ids[i])
					require.Len(t, st.Missing, len(clients)-j-1)
				}
			}
		}
		st := roomState(t, ctx, q, rooms[0])
		require.Nil(t, st.InFlight, "every ack counted: nothing left in flight")
		evs := ofType(dftEvents(ctx, t, b.Client, l, rooms[0]), streams.Message)
		require.Len(t, evs, len(producers))
		for i, ev := range evs {
			require.Equal(t, producers[i], ev.Producer)
		}

		// "c" leaving must not take "c:1" or "c::1" (or anyone) with it.
		require.NoError(t, q.Unsubscribe(ctx, "c", rooms[1]))
		require.Equal(t, dftSorted(clients[1:4]...), dftMemberIDs(roomState(t, ctx, q, rooms[1])))
		require.NoError(t, subs["c"].Close(ctx))
		require.Equal(t, dftSorted(clients[1:]...), dftMemberIDs(roomState(t, ctx, q, rooms[0])))
		require.NoError(t, q.Ping(ctx, "c:1"), "c:1 is still in its rooms")

		// Everyone leaves: no phantom member, room or client anywhere.
		for _, c := range clients[1:] {
			require.NoError(t, subs[c].Close(ctx))
		}
		for _, c := range clients[:4] {
			for _, r := range rooms[1:] {
				err := q.Unsubscribe(ctx, c, r)
				if c == "c" && r == rooms[1] {
					require.ErrorIs(t, err, queue.ErrNotMember, "c already left %q", r)
					continue
				}
				require.NoError(t, err)
			}
		}
		for _, r := range rooms {
			st := roomState(t, ctx, q, r)
			require.Empty(t, st.Members, "room %q", r)
			require.Empty(t, st.Observers, "room %q", r)
		}
		for _, c := range clients {
			require.ErrorIs(t, q.Ping(ctx, c), queue.ErrUnknownClient, "client %q", c)
			n, err := b.Client.Exists(ctx, l.Client(c)).Result()
			require.NoError(t, err)
			require.Zero(t, n, "client %q keeps a room set", c)
		}
		met, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.Zero(t, met.Members)
		require.Zero(t, met.KnownRooms, "rooms left in the index: %+v", met.TopRooms)
	})
}

func TestDefect09_EmptyRoomsAndLastLeaver(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		l := layoutOf(t, b, 0)

		// A room without members: each message is released into the stream
		// at once, nothing waits and nothing is dropped.
		const empty = "nobody-home"
		var sent []uint64
		for i := range 5 {
			id, err := q.Send(ctx, empty, []byte(fmt.Sprintf("e%d", i)), queue.Priority(i%3))
			require.NoError(t, err)
			sent = append(sent, id)
			st := roomState(t, ctx, q, empty)
			require.Zero(t, st.Pending)
			require.Nil(t, st.InFlight)
		}
		require.EqualValues(t, 5, q.Stats().Released)
		var got []uint64
		for _, ev := range ofType(dftEvents(ctx, t, b.Client, l, empty), streams.Message) {
			got = append(got, ev.MessageID)
		}
		require.Equal(t, sent, got)
		// They were released: a member that joins later does not get them
		// (no delivery without a barrier), and the barrier holds for it.
		s, err := q.Join(ctx, empty)
		require.NoError(t, err)
		x, err := q.Send(ctx, empty, []byte("x"))
		require.NoError(t, err)
		y, err := q.Send(ctx, empty, []byte("y"))
		require.NoError(t, err)
		m := next(t, ctx, s)
		require.Equal(t, x, m.ID)
		st := roomState(t, ctx, q, empty)
		require.Equal(t, 1, st.Pending, "y waits for the ack of x")
		require.NoError(t, m.Ack(ctx))
		require.Equal(t, y, next(t, ctx, s).ID)

		// The last member leaves with a backlog: the backlog is released
		// into the stream, in order, not dropped.
		const busy = "last-leaver"
		a, err := q.Join(ctx, busy)
		require.NoError(t, err)
		c, err := q.Join(ctx, busy)
		require.NoError(t, err)
		var backlog []uint64
		for i := range 6 {
			id, err := q.Send(ctx, busy, []byte(fmt.Sprintf("b%d", i)), queue.Priority(5-i%2))
			require.NoError(t, err)
			backlog = append(backlog, id)
		}
		pend, err := q.Peek(ctx, busy, 0, 100)
		require.NoError(t, err)
		order := []uint64{backlog[0]}
		for _, p := range pend {
			order = append(order, p.ID)
		}
		require.Len(t, order, 6)
		require.NoError(t, c.Close(ctx))
		require.NoError(t, a.Close(ctx))
		st = roomState(t, ctx, q, busy)
		require.Zero(t, st.Pending)
		require.Nil(t, st.InFlight)
		got = nil
		for _, ev := range ofType(dftEvents(ctx, t, b.Client, l, busy), streams.Message) {
			got = append(got, ev.MessageID)
		}
		require.Equal(t, order, got, "the backlog is in the stream, in release order")
		met, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.Zero(t, met.Backlog)

		// With HoldWhenEmpty the messages wait for the first member instead.
		qh := setupOn(t, b.NewClient(t), b.Prefix, queue.Options{HoldWhenEmpty: true})
		const held = "held"
		var h []uint64
		for i := range 3 {
			id, err := qh.Send(ctx, held, []byte(fmt.Sprintf("h%d", i)))
			require.NoError(t, err)
			h = append(h, id)
		}
		require.Equal(t, 3, roomState(t, ctx, qh, held).Pending)
		hs, err := qh.Join(ctx, held)
		require.NoError(t, err)
		for _, id := range h {
			m := next(t, ctx, hs)
			require.Equal(t, id, m.ID)
			require.NoError(t, m.Ack(ctx))
		}
	})
}

func TestDefect10_UnreceivedMessageDoesNotBlockForever(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 40*time.Second)
		l := layoutOf(t, b, 0)

		t.Run("ack-timeout", func(t *testing.T) {
			// The stuck member keeps beating (its process is alive) but never
			// acks: the ack deadline evicts it.
			// Long enough for the other member to ack in time on a loaded machine.
			const ackTimeout = 2 * time.Second
			q := setupOn(t, b.Client, b.Prefix, queue.Options{AckTimeout: ackTimeout, HousekeepingInterval: 100 * time.Millisecond})
			const room = "stuck-ack"
			stuck, err := q.Join(ctx, room)
			require.NoError(t, err)
			ok, err := q.Join(ctx, room)
			require.NoError(t, err)
			first, err := q.Send(ctx, room, []byte("one"))
			require.NoError(t, err)
			second, err := q.Send(ctx, room, []byte("two"))
			require.NoError(t, err)
			require.Equal(t, first, next(t, ctx, stuck).ID, "received, never acked")
			m := next(t, ctx, ok)
			require.NoError(t, m.Ack(ctx))

			m2 := next(t, ctx, ok)
			require.Equal(t, second, m2.ID, "the room moves on")
			// At once: the ack deadline applies to this member too.
			require.NoError(t, m2.Ack(ctx))
			_, err = stuck.Next(ctx)
			var ev *queue.EvictedError
			require.ErrorAs(t, err, &ev, "the stuck subscription is told")
			require.Equal(t, []string{room}, ev.Rooms)
			require.EqualValues(t, 1, q.Stats().EvictedAckTimeout)

			evs := dftEvents(ctx, t, b.Client, l, room)
			evicts := ofType(evs, streams.Evict)
			require.Len(t, evicts, 1)
			require.Equal(t, stuck.ClientID(), evicts[0].ClientID)
			require.Equal(t, "ack-timeout", evicts[0].Reason)
			msgs := ofType(evs, streams.Message)
			wait := evicts[0].At.Sub(msgs[0].At)
			require.GreaterOrEqual(t, wait, ackTimeout)
			require.LessOrEqual(t, wait, ackTimeout+100*time.Millisecond+2*time.Second)
		})

		t.Run("client-timeout", func(t *testing.T) {
			// The stuck member's process received the message and then
			// stopped: no ack and no heartbeat. It lives in a Queue of its own
			// whose heartbeat loop never fires in this test (HeartbeatInterval
			// of an hour) and whose membership deadline the main Queue set to
			// one second.
			const timeout = time.Second
			q := setupOn(t, b.Client, b.Prefix, queue.Options{ClientTimeout: timeout})
			frozen := setupOn(t, b.NewClient(t), b.Prefix, queue.Options{ClientTimeout: 2 * time.Hour, HeartbeatInterval: time.Hour, DisableHousekeeping: true})
			const room = "stuck-process"
			stuck, err := frozen.Join(ctx, room)
			require.NoError(t, err)
			require.NoError(t, q.Subscribe(ctx, stuck.ClientID(), room))
			ok, err := q.Join(ctx, room)
			require.NoError(t, err)
			first, err := q.Send(ctx, room, []byte("one"))
			require.NoError(t, err)
			second, err := q.Send(ctx, room, []byte("two"))
			require.NoError(t, err)
			require.Equal(t, first, next(t, ctx, stuck).ID, "received, never acked")
			m := next(t, ctx, ok)
			require.NoError(t, m.Ack(ctx))

			m2 := next(t, ctx, ok)
			require.Equal(t, second, m2.ID, "the room moves on")
			_, err = stuck.Next(ctx)
			require.ErrorIs(t, err, queue.ErrEvicted, "the stuck process is told when it reads again")
			evicts := ofType(dftEvents(ctx, t, b.Client, l, room), streams.Evict)
			require.Len(t, evicts, 1)
			require.Equal(t, stuck.ClientID(), evicts[0].ClientID)
			require.Equal(t, "timeout", evicts[0].Reason)
			require.NoError(t, m2.Ack(ctx))
		})
	})
}

func TestDefect11_PingCostIndependentOfClients(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 60*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		pinger, counter := dftCountedQueue(t, b)
		target, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		targetRooms := []string{"ping-0", "ping-1", "ping-2"}
		for _, r := range targetRooms {
			require.NoError(t, q.Subscribe(ctx, target, r))
		}
		// Other clients, many of them in the target's rooms.
		addClients := func(n int) {
			t.Helper()
			var wg sync.WaitGroup
			errs := make(chan error, n)
			work := make(chan int, n)
			for i := range n {
				work <- i
			}
			close(work)
			for range 8 {
				wg.Go(func() {
					for i := range work {
						id, err := q.CreateClientID(ctx)
						if err == nil {
							err = q.Subscribe(ctx, id, fmt.Sprintf("ping-%d", i%7))
						}
						if err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
		}
		measure := func() (int, map[string]int) {
			t.Helper()
			counter.reset()
			require.NoError(t, pinger.Ping(ctx, target))
			return counter.snapshot()
		}

		addClients(9) // 10 clients with the target
		// The first Ping loads the script on every node it reaches.
		require.NoError(t, pinger.Ping(ctx, target))
		few, fewByName := measure()
		addClients(990) // 1,000
		many, manyByName := measure()
		t.Logf("commands per Ping: %d with 10 clients, %d with 1000 (%v)", few, many, manyByName)
		require.Equal(t, fewByName, manyByName)
		require.Equal(t, few, many)
		// One read of the client's room set and the refresh of its expiry
		// (IdleRoomTTL), in one round trip, plus one heartbeat per room.
		require.Equal(t, 2+len(targetRooms), many)
		require.Equal(t, 1, manyByName["pexpire"])
	})
}

func TestDefect12_CreateClientIDUnique(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 60*time.Second)
		// Two Queues on two clients stand for two processes.
		qs := []*queue.Queue{
			setupOn(t, b.Client, b.Prefix, queue.Options{DisableHousekeeping: true}),
			setupOn(t, b.NewClient(t), b.Prefix, queue.Options{DisableHousekeeping: true}),
		}
		const creators, each = 10, 1000
		results := make([][]string, creators)
		errs := make([]error, creators)
		var wg sync.WaitGroup
		for i := range creators {
			wg.Go(func() {
				q := qs[i%len(qs)]
				for range each {
					id, err := q.CreateClientID(ctx)
					if err != nil {
						errs[i] = err
						return
					}
					results[i] = append(results[i], id)
				}
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		seen := make(map[string]bool, creators*each)
		for _, ids := range results {
			for _, id := range ids {
				require.NotEmpty(t, id)
				require.False(t, seen[id], "client ID %q created twice", id)
				seen[id] = true
			}
		}
		require.Len(t, seen, creators*each)
		// They are usable as they are.
		for _, id := range results[0][:3] {
			require.NoError(t, qs[0].Subscribe(ctx, id, "ids"))
		}
		require.Len(t, roomState(t, ctx, qs[0], "ids").Members, 3)
	})
}

func TestDefect13_RoomStateTimestamps(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		const timeout = 7 * time.Second
		q := setupOn(t, b.Client, b.Prefix, queue.Options{ClientTimeout: timeout, AckTimeout: time.Minute})
		first, err := b.Client.Time(ctx).Result()
		require.NoError(t, err)
		const room = "clock"
		sub, err := q.Join(ctx, room)
		require.NoError(t, err)
		raw, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, q.Subscribe(ctx, raw, room))
		_, err = q.Send(ctx, room, []byte("one"))
		require.NoError(t, err)
		_, err = q.Send(ctx, room, []byte("two"))
		require.NoError(t, err)
		m := next(t, ctx, sub)
		require.NoError(t, m.Ack(ctx))

		srv, err := b.Client.Time(ctx).Result()
		require.NoError(t, err)
		// Every timestamp was taken by the server between first and srv:
		// allow a second either side (ms read as seconds, or the client's
		// clock, would be far off).
		near := func(what string, got time.Time) {
			t.Helper()
			require.True(t, got.After(first.Add(-time.Second)) && got.Before(srv.Add(time.Second)),
				"%s = %v, server time from %v to %v", what, got, first, srv)
		}
		st := roomState(t, ctx, q, room)
		near("RoomState.Now", st.Now)
		require.NotNil(t, st.InFlight)
		near("InFlight.ReleasedAt", st.InFlight.ReleasedAt)
		near("InFlight.AckDeadline - AckTimeout", st.InFlight.AckDeadline.Add(-time.Minute))
		require.Equal(t, time.Minute, st.InFlight.AckDeadline.Sub(st.InFlight.ReleasedAt))
		require.True(t, st.InFlight.Age >= 0 && st.InFlight.Age < time.Second, "age %v", st.InFlight.Age)
		require.Len(t, st.Members, 2)
		for _, mem := range st.Members {
			near("LastHeartbeat of "+mem.ClientID, mem.LastHeartbeat)
			require.Equal(t, timeout, mem.Deadline.Sub(mem.LastHeartbeat), "deadline of %s", mem.ClientID)
			if mem.ClientID == sub.ClientID() {
				require.True(t, mem.Acked)
				near("AckedAt", mem.AckedAt)
			} else {
				require.False(t, mem.Acked)
			}
		}
		near("Message.EnqueuedAt", m.EnqueuedAt)
		near("Message.ReleasedAt", m.ReleasedAt)
		idTime, err := streams.IDTime(m.StreamID)
		require.NoError(t, err)
		require.Equal(t, idTime, m.ReleasedAt)
		pend, err := q.Peek(ctx, room, 0, 10)
		require.NoError(t, err)
		require.Len(t, pend, 1, "message two waits for the raw member's ack")
		near("PendingMessage.EnqueuedAt", pend[0].EnqueuedAt)
		require.NoError(t, q.Unsubscribe(ctx, raw, room))
		m2 := next(t, ctx, sub)
		near("second Message.EnqueuedAt", m2.EnqueuedAt)
		near("second Message.ReleasedAt", m2.ReleasedAt)
		require.False(t, m2.ReleasedAt.Before(m.ReleasedAt))
	})
}

func TestDefect14_TopNReturnsExactlyN(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContextWithin(t, 30*time.Second)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		// Backlogs with a tie, a room with nothing pending (one message in
		// flight) and a room with only an observer.
		backlogs := map[string]int{"top-a": 5, "top-b": 5, "top-c": 3, "top-d": 2, "top-e": 1, "top-f": 0}
		var members int64
		for room, n := range backlogs {
			id, err := q.CreateClientID(ctx)
			require.NoError(t, err)
			require.NoError(t, q.Subscribe(ctx, id, room))
			members++
			for i := range n + 1 {
				_, err := q.Send(ctx, room, []byte(fmt.Sprint(i)))
				require.NoError(t, err)
			}
		}
		watcher, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, q.SubscribeObserver(ctx, watcher, "obs-only"))
		want := []queue.RoomBacklog{
			{Room: "top-b", Backlog: 5}, {Room: "top-a", Backlog: 5}, {Room: "top-c", Backlog: 3},
			{Room: "top-d", Backlog: 2}, {Room: "top-e", Backlog: 1}, {Room: "top-f"}, {Room: "obs-only"},
		}
		for _, n := range []int{0, 1, 2, 3, 6, 7, 8, 100, queue.MaxTopRooms} {
			m, err := q.Metrics(ctx, n)
			require.NoError(t, err)
			require.EqualValues(t, len(want), m.KnownRooms)
			require.Len(t, m.TopRooms, min(n, len(want)), "top %d", n)
			if n > 0 {
				require.Equal(t, want[:min(n, len(want))], m.TopRooms, "top %d", n)
			}
			require.EqualValues(t, 16, m.Backlog)
			require.Equal(t, members, m.Members)
			require.EqualValues(t, 1, m.Observers)
		}
		for _, n := range []int{-1, queue.MaxTopRooms + 1} {
			_, err := q.Metrics(ctx, n)
			require.ErrorIs(t, err, queue.ErrInvalidOption, "top %d", n)
		}

		// The cost is one pipeline over the shards, whatever the number of
		// rooms, and never a scan.
		mq, counter := dftCountedQueue(t, b)
		cost := func() (int, map[string]int) {
			t.Helper()
			counter.reset()
			_, err := mq.Metrics(ctx, 5)
			require.NoError(t, err)
			return counter.snapshot()
		}
		before, byName := cost()
		require.Equal(t, 4*defaultNumShards, before, "commands: %v", byName)
		for name := range byName {
			require.NotContains(t, []string{"scan", "keys", "sscan", "zscan", "hscan"}, name)
		}
		for i := range 40 {
			_, err := q.Send(ctx, fmt.Sprintf("more-%d", i), []byte("x"))
			require.NoError(t, err)
			id, err := q.CreateClientID(ctx)
			require.NoError(t, err)
			require.NoError(t, q.Subscribe(ctx, id, fmt.Sprintf("more-%d", i)))
		}
		after, _ := cost()
		require.Equal(t, before, after)
		m, err := q.Metrics(ctx, 3)
		require.NoError(t, err)
		require.EqualValues(t, len(want)+40, m.KnownRooms)
		require.Len(t, m.TopRooms, 3)
	})
}

// dftClosedAddr returns a loopback address nothing listens on.
func dftClosedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// dftDeadClientOptions keep go-redis from starting its background
// redial goroutine (it starts after PoolSize failed dials and outlives
// Close by up to a second, which goleak would report): a large pool and
// no retries keep the failed dials of these tests far below PoolSize.
const (
	dftDeadPoolSize   = 1000
	dftDeadMaxRetries = -1
)

// dftOutcome is what one public call did with Redis unreachable.
type dftOutcome struct {
	name  string
	err   error
	took  time.Duration
	panic any
}

// dftCall runs call with its own deadline, turning a panic into an outcome.
func dftCall(name string, deadline time.Duration, call func(ctx context.Context) error) (out dftOutcome) {
	out.name = name
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	defer func() {
		out.took = time.Since(start)
		if p := recover(); p != nil {
			out.panic = p
		}
	}()
	out.err = call(ctx)
	return out
}

// dftRequireFailed checks that a call returned an error, did not panic and
// did not overstay its deadline much.
func dftRequireFailed(t *testing.T, o dftOutcome, deadline time.Duration) {
	t.Helper()
	t.Logf("%s: %v after %v", o.name, o.err, o.took.Round(time.Millisecond))
	require.Nil(t, o.panic, "%s panicked", o.name)
	require.Error(t, o.err, "%s returned no error with Redis unreachable", o.name)
	// Slack for a loaded machine; a call that ignored its context would
	// sit in go-redis's own timeouts (seconds each).
	require.Less(t, o.took, deadline+2*time.Second, "%s took %v with a %v deadline", o.name, o.took, deadline)
}

func TestDefect15_RedisErrorsReturnErrors(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		const deadline = 2 * time.Second

		// A client of the backend's kind pointing at a closed port.
		closed := dftClosedAddr(t)
		var nowhere redis.UniversalClient
		if b.Name == redistest.NameCluster {
			nowhere = redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{closed}, PoolSize: dftDeadPoolSize, MaxRetries: dftDeadMaxRetries})
		} else {
			nowhere = redis.NewClient(&redis.Options{Addr: closed, PoolSize: dftDeadPoolSize, MaxRetries: dftDeadMaxRetries})
		}
		defer nowhere.Close()
		dftRequireFailed(t, dftCall("New (closed port)", deadline, func(ctx context.Context) error {
			q, err := queue.New(ctx, nowhere, queue.Options{Prefix: b.Prefix, Logger: discardLogger})
			if err == nil {
				_ = q.Close()
			}
			return err
		}), deadline)

		// A private deployment, killed while the Queue is in use: the
		// shared servers cannot be killed, so each backend gets its own.
		var rdb redis.UniversalClient
		var kill func() error
		started := time.Now()
		if b.Name == redistest.NameCluster {
			c := redistest.NewCluster(t, redistest.ClusterOptions{Masters: 3})
			rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), PoolSize: dftDeadPoolSize, MaxRetries: dftDeadMaxRetries})
			kill = func() error {
				var errs []error
				for _, n := range c.Nodes() {
					errs = append(errs, n.Kill())
				}
				return errors.Join(errs...)
			}
		} else {
			s := redistest.NewServer(t, redistest.ServerOptions{})
			rdb = redis.NewClient(&redis.Options{Addr: s.Addr(), PoolSize: dftDeadPoolSize, MaxRetries: dftDeadMaxRetries})
			kill = s.Kill
		}
		t.Cleanup(func() { _ = rdb.Close() })
		t.Logf("private %s deployment started in %v", b.Name, time.Since(started).Round(time.Millisecond))
		ctx := testContextWithin(t, 30*time.Second)
		q, err := queue.New(ctx, rdb, queue.Options{Prefix: b.Prefix, ClientTimeout: 2 * time.Second, Logger: discardLogger})
		require.NoError(t, err)
		const room = "doomed"
		sub, err := q.Join(ctx, room)
		require.NoError(t, err)
		raw, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, q.Subscribe(ctx, raw, room))
		_, err = q.Send(ctx, room, []byte("one"))
		require.NoError(t, err)
		m := next(t, ctx, sub)
		token := m.AckToken

		require.NoError(t, kill())

		calls := []struct {
			name string
			call func(ctx context.Context) error
		}{
			{"Send", func(ctx context.Context) error { _, err := q.Send(ctx, room, []byte("x")); return err }},
			{"SendOutOfBand", func(ctx context.Context) error { _, err := q.SendOutOfBand(ctx, room, []byte("x")); return err }},
			{"CreateClientID", func(ctx context.Context) error { _, err := q.CreateClientID(ctx); return err }},
			{"Subscribe", func(ctx context.Context) error { return q.Subscribe(ctx, "someone", room) }},
			{"SubscribeObserver", func(ctx context.Context) error { return q.SubscribeObserver(ctx, "someone", room) }},
			{"Unsubscribe", func(ctx context.Context) error { return q.Unsubscribe(ctx, raw, room) }},
			{"Ping", func(ctx context.Context) error { return q.Ping(ctx, raw) }},
			{"Ack", func(ctx context.Context) error { return q.Ack(ctx, sub.ClientID(), token) }},
			{"Message.Ack", func(ctx context.Context) error { return m.Ack(ctx) }},
			{"Peek", func(ctx context.Context) error { _, err := q.Peek(ctx, room, 0, 10); return err }},
			{"RoomState", func(ctx context.Context) error { _, err := q.RoomState(ctx, room); return err }},
			{"Metrics", func(ctx context.Context) error { _, err := q.Metrics(ctx, 10); return err }},
			{"Join", func(ctx context.Context) error { _, err := q.Join(ctx, room); return err }},
			// Next waits for Redis to come back, so it ends with its context.
			{"Subscription.Next", func(ctx context.Context) error { _, err := sub.Next(ctx); return err }},
			{"New", func(ctx context.Context) error {
				q2, err := queue.New(ctx, rdb, queue.Options{Prefix: b.Prefix, Logger: discardLogger})
				if err == nil {
					_ = q2.Close()
				}
				return err
			}},
		}
		// The calls are independent: run them at once, so the test costs
		// about one deadline, not one per call.
		outcomes := make([]dftOutcome, len(calls))
		var wg sync.WaitGroup
		for i, c := range calls {
			wg.Go(func() { outcomes[i] = dftCall(c.name, deadline, c.call) })
		}
		wg.Wait()
		for _, o := range outcomes {
			dftRequireFailed(t, o, deadline)
		}
		dftRequireFailed(t, dftCall("Subscription.Close", deadline, sub.Close), deadline)
		// Close has no error to return but must not hang or panic either.
		closing := dftCall("Queue.Close", 10*time.Second, func(context.Context) error { return q.Close() })
		require.Nil(t, closing.panic)
		require.Less(t, closing.took, 5*time.Second)
		// After Close, calls fail at once with ErrClosed.
		_, err = q.Send(ctx, room, []byte("x"))
		require.ErrorIs(t, err, queue.ErrClosed)
	})
}
