package queue_test

// One test per rule of docs/semantics.md, each on standalone Redis and on a
// 3-master cluster. They use the public API (queue, streams) and raw
// commands for inspection only.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// Rule 1: every released message reaches every subscriber and observer of
// the room exactly once, across processes.
func TestRule01_Fanout(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q1 := setup(t, b, queue.Options{}).q
		q2 := setupOn(t, b.NewClient(t), b.Prefix, queue.Options{}) // another process
		const room = "fanout"
		members := []*queue.Subscription{join(t, ctx, q1, room), join(t, ctx, q2, room), join(t, ctx, q2, room)}
		observers := []*queue.Subscription{
			join(t, ctx, q1, room, queue.AsObserver()),
			join(t, ctx, q2, room, queue.AsObserver()),
		}
		const n = 5
		var ids []uint64
		for i := range n {
			ids = append(ids, send(t, ctx, q1, room, fmt.Sprintf("m%d", i)))
		}
		for i := range n {
			for _, s := range members {
				m := next(t, ctx, s)
				require.Equal(t, ids[i], m.ID, "member %s", s.ClientID())
				require.Equal(t, fmt.Sprintf("m%d", i), text(t, m))
				require.NotEmpty(t, m.AckToken)
				require.NoError(t, m.Ack(ctx))
			}
		}
		for _, s := range observers {
			for i := range n {
				m := next(t, ctx, s)
				require.Equal(t, ids[i], m.ID, "observer %s", s.ClientID())
				require.Equal(t, fmt.Sprintf("m%d", i), text(t, m))
				require.Empty(t, m.AckToken, "observers never ack")
			}
		}
		// A fence appended after the last release: whatever anyone receives
		// next must be it, so nothing was delivered twice.
		fence := sendOOB(t, ctx, q1, room, "fence")
		for _, s := range append(members, observers...) {
			m := next(t, ctx, s)
			require.Equal(t, fence, m.ID, "client %s received something twice", s.ClientID())
		}
		require.Equal(t, ids, messageIDs(history(t, ctx, q1, room)), "each message released exactly once")
	})
}

// Rule 2: message k+1 becomes visible only after every current member acked
// message k, whichever process acks.
func TestRule02_LockStep(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q1 := setup(t, b, queue.Options{}).q
		q2 := setupOn(t, b.NewClient(t), b.Prefix, queue.Options{})
		const room = "lockstep"
		a := join(t, ctx, q1, room)
		c := join(t, ctx, q2, room)
		o := join(t, ctx, q1, room, queue.AsObserver())
		ids := []uint64{send(t, ctx, q1, room, "one"), send(t, ctx, q1, room, "two"), send(t, ctx, q1, room, "three")}
		released := func() []uint64 { return messageIDs(history(t, ctx, q1, room)) }

		ma := next(t, ctx, a)
		require.Equal(t, ids[0], ma.ID)
		require.Equal(t, ids[:1], released())
		require.NoError(t, ma.Ack(ctx))
		st := roomState(t, ctx, q1, room)
		require.Equal(t, ids[0], viewOf(st).InFlight)
		require.Equal(t, []string{c.ClientID()}, st.Missing)
		require.Equal(t, 2, st.Pending)
		require.Equal(t, ids[:1], released(), "one ack out of two must not release anything")

		mc := next(t, ctx, c)
		require.Equal(t, ids[0], mc.ID)
		// An ack sent by another process than the subscriber's counts the same.
		require.NoError(t, q1.Ack(ctx, c.ClientID(), mc.AckToken))
		st = roomState(t, ctx, q1, room)
		require.Equal(t, ids[1], viewOf(st).InFlight)
		require.ElementsMatch(t, []string{a.ClientID(), c.ClientID()}, st.Missing)
		require.Equal(t, ids[:2], released())

		for _, s := range []*queue.Subscription{a, c} {
			m := next(t, ctx, s)
			require.Equal(t, ids[1], m.ID)
			require.NoError(t, m.Ack(ctx))
		}
		require.Equal(t, ids, released())
		for _, want := range ids {
			require.Equal(t, want, next(t, ctx, o).ID)
		}
	})
}

// Rule 3: lower priority numbers first, then the order Redis accepted the
// sends; identical payloads stay distinct; out-of-range priorities are
// refused.
func TestRule03_PriorityThenFIFO(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "priority"
		a := join(t, ctx, q, room)
		first := send(t, ctx, q, room, "first", queue.Priority(queue.MaxPriority))
		head := next(t, ctx, a) // in flight: everything below queues behind it
		require.Equal(t, first, head.ID)

		type sent struct {
			id   uint64
			prio int
			text string
		}
		var (
			mu   sync.Mutex
			msgs []sent
		)
		add := func(text string, prio int, opts ...queue.SendOption) {
			id := send(t, ctx, q, room, text, opts...)
			mu.Lock()
			msgs = append(msgs, sent{id, prio, text})
			mu.Unlock()
		}
		// The original ordered equal priorities by payload text and merged
		// identical payloads sent in the same millisecond.
		add("z", 5, queue.Priority(5))
		add("same", 5, queue.Priority(5))
		add("same", 5, queue.Priority(5))
		add("a", 5, queue.Priority(5))
		add("default", queue.DefaultPriority)
		add("p1", 1, queue.Priority(1))
		add("low", 9, queue.Priority(9))
		add("p0", 0, queue.Priority(0))
		add("p1-again", 1, queue.Priority(1))
		// Concurrent producers: the order Redis accepted them is the ID order.
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 8 {
					p := (g + i) % 3 * 4 // 0, 4, 8
					add(fmt.Sprintf("g%d-%d", g, i), p, queue.Priority(p))
				}
			})
		}
		wg.Wait()
		for _, p := range []int{queue.MinPriority - 1, queue.MaxPriority + 1} {
			_, err := q.Send(ctx, room, "out of range", queue.Priority(p))
			require.ErrorIs(t, err, queue.ErrInvalidPriority, "priority %d", p)
		}

		want := slices.Clone(msgs)
		slices.SortFunc(want, func(x, y sent) int { return cmp.Or(cmp.Compare(x.prio, y.prio), cmp.Compare(x.id, y.id)) })
		pending, err := q.Peek(ctx, room, 0, 1000)
		require.NoError(t, err)
		require.Len(t, pending, len(want))
		for i, p := range pending {
			require.Equal(t, want[i].id, p.ID, "peek position %d", i)
			require.Equal(t, want[i].prio, p.Priority)
		}

		require.NoError(t, head.Ack(ctx))
		seen := map[uint64]bool{}
		for i, w := range want {
			m := next(t, ctx, a)
			require.Equal(t, w.id, m.ID, "release position %d: want %q (priority %d)", i, w.text, w.prio)
			require.Equal(t, w.prio, m.Priority)
			require.Equal(t, w.text, text(t, m))
			require.False(t, seen[m.ID])
			seen[m.ID] = true
			require.NoError(t, m.Ack(ctx))
		}
		st := roomState(t, ctx, q, room)
		require.Zero(t, st.Pending)
		require.Nil(t, st.InFlight)
	})
}

// Rule 4: an out-of-band message is in the stream at once, whatever the
// barrier holds, and leaves the barrier as it was.
func TestRule04_OutOfBand(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "oob"
		a := join(t, ctx, q, room)
		o := join(t, ctx, q, room, queue.AsObserver())
		m1 := send(t, ctx, q, room, "m1")
		m2 := send(t, ctx, q, room, "m2")
		got := next(t, ctx, a)
		require.Equal(t, m1, got.ID) // in flight, not acked: the barrier is closed

		before := roomState(t, ctx, q, room)
		oid := sendOOB(t, ctx, q, room, "flash", queue.Producer("ops"))
		after := roomState(t, ctx, q, room)
		require.Equal(t, before.LastSeq+1, oid, "OOB messages take an ID from the room's counter")
		wantView := viewOf(before)
		wantView.LastSeq = oid
		require.Equal(t, wantView, viewOf(after), "OOB changed the barrier")
		require.Equal(t, before.StreamLen+1, after.StreamLen)

		m := next(t, ctx, a)
		require.Equal(t, oid, m.ID, "the OOB message must not wait behind the in-flight one")
		require.True(t, m.OutOfBand)
		require.Empty(t, m.AckToken)
		require.Equal(t, "ops", m.Producer)
		require.Equal(t, "flash", text(t, m))
		require.NoError(t, m.Ack(ctx), "acking an OOB message is a no-op")
		require.Equal(t, wantView, view(t, ctx, q, room))
		require.Equal(t, m1, next(t, ctx, o).ID)
		require.Equal(t, oid, next(t, ctx, o).ID)

		// The barrier works as before.
		require.NoError(t, got.Ack(ctx))
		require.Equal(t, m2, next(t, ctx, a).ID)

		// In a room without members, and in a room that holds its queue.
		qh := setup(t, b, queue.Options{HoldWhenEmpty: true}).q
		const held = "oob-held"
		send(t, ctx, qh, held, "queued")
		hid := sendOOB(t, ctx, qh, held, "now")
		evs := history(t, ctx, qh, held)
		require.Len(t, evs, 1)
		require.Equal(t, streams.OutOfBand, evs[0].Type)
		require.Equal(t, hid, evs[0].MessageID)
		require.Equal(t, 1, roomState(t, ctx, qh, held).Pending)
	})
}

// Rule 5: a member joining while message k is in flight is not waited for
// on k and first sees what is released after it joined.
func TestRule05_JoinMidFlight(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "midflight"
		a := join(t, ctx, q, room)
		ids := []uint64{send(t, ctx, q, room, "k"), send(t, ctx, q, room, "k+1"), send(t, ctx, q, room, "k+2")}
		ma := next(t, ctx, a)
		require.Equal(t, ids[0], ma.ID)

		c := join(t, ctx, q, room)
		st := roomState(t, ctx, q, room)
		require.Equal(t, ids[0], viewOf(st).InFlight)
		require.Equal(t, []string{a.ClientID()}, st.Missing, "the newcomer must not be waited for")

		require.NoError(t, ma.Ack(ctx))
		require.Equal(t, ids[1], view(t, ctx, q, room).InFlight)
		mc := next(t, ctx, c)
		require.Equal(t, ids[1], mc.ID, "the newcomer must not receive the message in flight at its join")

		// From now on it holds the barrier like everyone else.
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		require.Equal(t, []string{c.ClientID()}, roomState(t, ctx, q, room).Missing)
		require.NoError(t, mc.Ack(ctx))
		require.Equal(t, ids[2], next(t, ctx, c).ID)

		evs := history(t, ctx, q, room)
		j := findEvent(evs, isClientEvent(streams.Join, c.ClientID()))
		require.Greater(t, j, findEvent(evs, isMessage(ids[0])))
		require.Less(t, j, findEvent(evs, isMessage(ids[1])))
	})
}

// Rule 6: leaving removes the member's vote; when it was the last one
// missing, the next message is released by the leave itself. The last
// member leaving does not drop the backlog.
func TestRule06_LeaveReleases(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "leave"
		a := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		d := join(t, ctx, q, room)
		z := subscribe(t, ctx, q, room)
		ids := []uint64{send(t, ctx, q, room, 1), send(t, ctx, q, room, 2), send(t, ctx, q, room, 3)}

		for _, s := range []*queue.Subscription{a, c, d} {
			m := next(t, ctx, s)
			require.Equal(t, ids[0], m.ID)
			if s != d {
				require.NoError(t, m.Ack(ctx))
			}
		}
		require.NoError(t, q.Unsubscribe(ctx, z, room)) // not the last one missing: nothing moves
		require.Equal(t, []string{d.ClientID()}, roomState(t, ctx, q, room).Missing)

		// Subscription.Close: d was the last vote missing on ids[0].
		require.NoError(t, d.Close(ctx))
		st := roomState(t, ctx, q, room)
		require.Equal(t, ids[1], viewOf(st).InFlight, "the leave itself must release the next message")
		evs := history(t, ctx, q, room)
		l := findEvent(evs, isClientEvent(streams.Leave, d.ClientID()))
		require.NotEqual(t, -1, l)
		require.Equal(t, "leave", evs[l].Reason)
		require.Less(t, l+1, len(evs))
		require.True(t, isMessage(ids[1])(evs[l+1]), "release must follow the leave in the same step, got %+v", evs[l+1])
		_, err := d.Next(ctx)
		require.ErrorIs(t, err, queue.ErrClosed)

		// Unsubscribe through the API, by another member's ID.
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		require.Equal(t, ids[1], next(t, ctx, c).ID)
		require.NoError(t, q.Unsubscribe(ctx, c.ClientID(), room))
		require.Equal(t, ids[2], view(t, ctx, q, room).InFlight)
		require.ErrorIs(t, q.Unsubscribe(ctx, c.ClientID(), room), queue.ErrNotMember)
		require.ErrorIs(t, nextErr(t, ctx, c), queue.ErrNotMember, "a removed subscription is told")

		// The last member leaves with a backlog: it goes to the stream
		// (rule 8), nothing is dropped.
		backlog := []uint64{send(t, ctx, q, room, 4), send(t, ctx, q, room, 5)}
		require.Equal(t, 2, roomState(t, ctx, q, room).Pending)
		require.NoError(t, a.Close(ctx))
		st = roomState(t, ctx, q, room)
		require.Zero(t, st.Pending)
		require.Nil(t, st.InFlight)
		require.Empty(t, st.Members)
		require.Equal(t, append(ids, backlog...), messageIDs(history(t, ctx, q, room)))
	})
}

// Rule 7: a member that stops beating is evicted within ClientTimeout plus
// one housekeeping interval by the subscriber processes themselves; the
// eviction releases the barrier, is in the stream, and the hosting process
// is told. Ping for the evicted client says so, then forgets it.
func TestRule07_EvictionWithoutOtherProcesses(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		opts := fast(queue.Options{})
		// Two subscriber processes and nothing else: qY keeps running, qX
		// loses its network below and can neither beat nor ack.
		qY := setup(t, b, opts).q
		sw := newNetSwitch()
		qX := setupOn(t, switchedClient(t, b, sw), b.Prefix, opts)
		t.Cleanup(sw.Heal) // runs before qX.Close
		const room = "liveness"
		y := join(t, ctx, qY, room)
		x := join(t, ctx, qX, room)
		z := subscribe(t, ctx, qY, room) // a client nobody pings
		// And a room where nobody calls anything at all: only the
		// housekeeping of the subscriber processes can evict there.
		const solo = "liveness-solo"
		lone := subscribe(t, ctx, qY, solo)
		deadline := func(room, client string) time.Time {
			for _, m := range roomState(t, ctx, qY, room).Members {
				if m.ClientID == client {
					return m.Deadline
				}
			}
			t.Fatalf("%s is not a member of %s", client, room)
			return time.Time{}
		}
		zDeadline, loneDeadline := deadline(room, z), deadline(solo, lone)
		bound := shortHousekeep + shortHousekeep/10 + evictionSlack
		inTime := func(evicted, deadline time.Time, who string) {
			t.Helper()
			require.False(t, evicted.Before(deadline.Add(-stampTolerance)), "%s evicted at %v, before its deadline %v", who, evicted, deadline)
			require.LessOrEqual(t, evicted.Sub(deadline), bound,
				"%s evicted %v after its deadline, want within one housekeeping interval (%v) plus %v slack", who, evicted.Sub(deadline), shortHousekeep, evictionSlack)
		}

		m1 := send(t, ctx, qY, room, "m1")
		m2 := send(t, ctx, qY, room, "m2")
		require.NoError(t, next(t, ctx, y).Ack(ctx))
		require.Equal(t, m1, next(t, ctx, x).ID) // never acked
		sw.Cut()

		// m2 can only be released by evicting both x and z.
		require.Equal(t, m2, next(t, ctx, y).ID)
		evs := history(t, ctx, qY, room)
		release := findEvent(evs, isMessage(m2))
		for _, c := range []string{x.ClientID(), z} {
			i := findEvent(evs, isClientEvent(streams.Evict, c))
			require.NotEqual(t, -1, i, "no evict event for %s", c)
			require.Less(t, i, release)
			require.Equal(t, "timeout", evs[i].Reason)
			require.False(t, evs[i].Observer)
		}
		require.Equal(t, -1, findEvent(evs, isClientEvent(streams.Evict, y.ClientID())), "a beating member was evicted")
		inTime(evs[findEvent(evs, isClientEvent(streams.Evict, z))].At, zDeadline, "z")
		ev := waitEvent(t, ctx, qY, solo, isClientEvent(streams.Evict, lone))
		require.Equal(t, "timeout", ev.Reason)
		inTime(ev.At, loneDeadline, "the member of the untouched room")
		st := roomState(t, ctx, qY, room)
		require.Len(t, st.Members, 1)
		require.Equal(t, y.ClientID(), st.Members[0].ClientID)

		// The hosting process hears of it once it is back.
		sw.Heal()
		err := nextErr(t, ctx, x)
		require.ErrorIs(t, err, queue.ErrEvicted)
		var ee *queue.EvictedError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, x.ClientID(), ee.ClientID)
		require.Equal(t, []string{room}, ee.Rooms)

		for _, c := range []string{z, x.ClientID()} {
			err := qY.Ping(ctx, c)
			require.ErrorIs(t, err, queue.ErrEvicted, "first ping after the eviction of %s", c)
			require.ErrorAs(t, err, &ee)
			require.Equal(t, []string{room}, ee.Rooms)
			require.ErrorIs(t, qY.Ping(ctx, c), queue.ErrUnknownClient, "second ping of %s", c)
		}
		err = qY.Ping(ctx, lone)
		require.ErrorAs(t, err, &ee)
		require.Equal(t, []string{solo}, ee.Rooms)
	})
}

// Rule 7 with Options.AckTimeout: a live member that does not ack is
// evicted (reason ack-timeout), no sooner than the timeout.
func TestRule07_AckTimeout(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		// Long enough for the member that acks to do so in time on a
		// loaded machine.
		const ackTimeout = 2 * time.Second
		// ClientTimeout stays at its default: a heartbeat timeout cannot be
		// what evicts the stuck member here.
		q := setup(t, b, queue.Options{AckTimeout: ackTimeout, HousekeepingInterval: shortHousekeep}).q
		const room = "acktimeout"
		stuck := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		m1 := send(t, ctx, q, room, "m1")
		m2 := send(t, ctx, q, room, "m2")
		got := next(t, ctx, stuck)
		require.Equal(t, m1, got.ID)
		require.NoError(t, next(t, ctx, c).Ack(ctx))

		require.Equal(t, m2, next(t, ctx, c).ID, "the stuck member must be evicted and m2 released")
		require.ErrorIs(t, nextErr(t, ctx, stuck), queue.ErrEvicted)
		require.ErrorIs(t, got.Ack(ctx), queue.ErrNotMember, "an evicted member's ack is refused")
		require.EqualValues(t, 1, q.Stats().EvictedAckTimeout)

		evs := history(t, ctx, q, room)
		i := findEvent(evs, isClientEvent(streams.Evict, stuck.ClientID()))
		require.NotEqual(t, -1, i)
		require.Equal(t, "ack-timeout", evs[i].Reason)
		require.Less(t, i, findEvent(evs, isMessage(m2)))
		require.Equal(t, -1, findEvent(evs[:i], isClientEvent(streams.Evict, c.ClientID())), "the member that acked was evicted")
		releasedAt := evs[findEvent(evs, isMessage(m1))].At
		late := evs[i].At.Sub(releasedAt)
		require.GreaterOrEqual(t, late, ackTimeout-stampTolerance, "evicted before its ack timeout")
		require.LessOrEqual(t, late, ackTimeout+shortHousekeep+shortHousekeep/10+evictionSlack)
	})
}

// Rule 8: a message sent to a room without members goes straight to the
// stream; with HoldWhenEmpty it waits for the first member.
func TestRule08_EmptyRoomReleasesStraightToStream(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "empty"
		ids := []uint64{
			send(t, ctx, q, room, "a", queue.Priority(7)),
			send(t, ctx, q, room, "b", queue.Priority(0)),
			send(t, ctx, q, room, "c"),
		}
		require.Equal(t, ids, messageIDs(history(t, ctx, q, room)), "each send released at once, in send order")
		st := roomState(t, ctx, q, room)
		require.Zero(t, st.Pending)
		require.Nil(t, st.InFlight)
		require.False(t, st.Hold)
		pending, err := q.Peek(ctx, room, 0, 10)
		require.NoError(t, err)
		require.Empty(t, pending)

		// An observer does not make the room non-empty: it never holds it.
		const watched = "observed"
		o := join(t, ctx, q, watched, queue.AsObserver())
		w1, w2 := send(t, ctx, q, watched, 1), send(t, ctx, q, watched, 2)
		require.Equal(t, w1, next(t, ctx, o).ID)
		require.Equal(t, w2, next(t, ctx, o).ID)
		require.Zero(t, roomState(t, ctx, q, watched).Pending)

		// A member joining later gets what follows, not what was released.
		a := join(t, ctx, q, room)
		later := send(t, ctx, q, room, "d")
		require.Equal(t, later, next(t, ctx, a).ID)
	})
}

func TestRule08_HoldWhenEmpty(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{HoldWhenEmpty: true}).q
		const room = "held"
		a5 := send(t, ctx, q, room, "a", queue.Priority(5))
		b1 := send(t, ctx, q, room, "b", queue.Priority(1))
		c5 := send(t, ctx, q, room, "c", queue.Priority(5))
		st := roomState(t, ctx, q, room)
		require.Equal(t, 3, st.Pending)
		require.Nil(t, st.InFlight)
		require.True(t, st.Hold)
		require.Empty(t, messageIDs(history(t, ctx, q, room)))

		// The join releases the first held message in its own step.
		s := join(t, ctx, q, room)
		require.Equal(t, b1, view(t, ctx, q, room).InFlight)
		for _, want := range []uint64{b1, a5, c5} {
			m := next(t, ctx, s)
			require.Equal(t, want, m.ID)
			require.NoError(t, m.Ack(ctx))
		}
		require.Equal(t, []uint64{b1, a5, c5}, messageIDs(history(t, ctx, q, room)))

		// The last member leaving holds the backlog again instead of dropping it.
		d := send(t, ctx, q, room, "d")
		e := send(t, ctx, q, room, "e")
		require.Equal(t, d, next(t, ctx, s).ID)
		require.NoError(t, s.Close(ctx))
		st = roomState(t, ctx, q, room)
		require.Equal(t, 1, st.Pending)
		require.Nil(t, st.InFlight)
		s2 := join(t, ctx, q, room)
		require.Equal(t, e, next(t, ctx, s2).ID)
	})
}

// Rule 9: an ack names room, message and client; stale, foreign, altered,
// made-up and non-member acks are refused and change nothing; a second ack
// is harmless.
func TestRule09_AcksAreBound(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		for _, tc := range []struct {
			name   string
			secret []byte
		}{{"unsigned", nil}, {"signed", []byte("0123456789abcdef")}} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := testContext(t)
				q := setup(t, b, queue.Options{AckSecret: tc.secret}).q
				room := "acks-" + tc.name
				a := join(t, ctx, q, room)
				c := join(t, ctx, q, room)
				o := join(t, ctx, q, room, queue.AsObserver())
				gone := join(t, ctx, q, room)   // will leave: a non-member with a genuine token
				turned := join(t, ctx, q, room) // will come back as an observer
				ids := []uint64{send(t, ctx, q, room, 1), send(t, ctx, q, room, 2), send(t, ctx, q, room, 3)}
				ma1, mc1 := next(t, ctx, a), next(t, ctx, c)
				mGone, mTurned := next(t, ctx, gone), next(t, ctx, turned)
				mo1 := next(t, ctx, o)
				require.Equal(t, ids[0], ma1.ID)
				require.Empty(t, mo1.AckToken)
				require.NoError(t, gone.Close(ctx))
				require.NoError(t, turned.Close(ctx))
				require.NoError(t, q.SubscribeObserver(ctx, turned.ClientID(), room))

				refused := func(want error, client, token, why string) {
					t.Helper()
					before := view(t, ctx, q, room)
					err := q.Ack(ctx, client, token)
					if want == nil {
						require.Error(t, err, why)
					} else {
						require.ErrorIs(t, err, want, why)
					}
					require.Equal(t, before, view(t, ctx, q, room), "%s changed the barrier", why)
				}
				refused(queue.ErrNotMember, gone.ClientID(), mGone.AckToken, "ack by a member that left")
				refused(queue.ErrObserver, turned.ClientID(), mTurned.AckToken, "ack by an observer")
				require.NoError(t, mo1.Ack(ctx), "an observer's Message.Ack is a no-op")
				refused(queue.ErrInvalidToken, c.ClientID(), ma1.AckToken, "ack with another member's token")
				refused(queue.ErrInvalidToken, o.ClientID(), ma1.AckToken, "ack by an observer with a member's token")
				stranger, err := q.CreateClientID(ctx)
				require.NoError(t, err)
				refused(queue.ErrInvalidToken, stranger, ma1.AckToken, "ack by an unknown client with a member's token")
				for _, tok := range []string{"", "x", "!!!!", "AQAA", strings.Repeat("A", 5000), ma1.AckToken + "A", ma1.AckToken[:len(ma1.AckToken)-1]} {
					refused(queue.ErrInvalidToken, a.ClientID(), tok, fmt.Sprintf("made-up token %.20q", tok))
				}
				// Every single-character alteration. Unsigned tokens can only
				// be refused by meaning (wrong room, epoch, message or client);
				// signed ones by their MAC.
				const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
				for i := range len(ma1.AckToken) {
					for bit := range 6 {
						alt := []byte(ma1.AckToken)
						alt[i] = alphabet[strings.IndexByte(alphabet, alt[i])^(1<<bit)]
						var want error
						if tc.secret != nil {
							want = queue.ErrInvalidToken
						}
						refused(want, a.ClientID(), string(alt), fmt.Sprintf("token altered at %d (bit %d): %s", i, bit, alt))
					}
				}

				// Double ack: harmless, counted once.
				require.NoError(t, ma1.Ack(ctx))
				require.NoError(t, ma1.Ack(ctx))
				st := view(t, ctx, q, room)
				require.Equal(t, ids[0], st.InFlight)
				require.Equal(t, []string{c.ClientID()}, st.Missing)
				require.NoError(t, mc1.Ack(ctx))
				require.Equal(t, ids[1], view(t, ctx, q, room).InFlight)

				// Late acks of message 1 must not count for message 2 (the original's defect 4).
				refused(queue.ErrStaleAck, a.ClientID(), ma1.AckToken, "late ack of the previous message")
				refused(queue.ErrStaleAck, c.ClientID(), mc1.AckToken, "late ack of the previous message")
				st = view(t, ctx, q, room)
				require.ElementsMatch(t, []string{a.ClientID(), c.ClientID()}, st.Missing)
				ma2 := next(t, ctx, a)
				require.NoError(t, ma2.Ack(ctx))
				require.NoError(t, ma2.Ack(ctx))
				require.Equal(t, []string{c.ClientID()}, view(t, ctx, q, room).Missing, "a double ack counted twice")
				require.NoError(t, next(t, ctx, c).Ack(ctx))
				require.Equal(t, ids[2], view(t, ctx, q, room).InFlight)
			})
		}
	})
}

// Rule 10: Peek lists pending messages in release order and changes nothing.
func TestRule10_PeekOrderUnchanged(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		// Held messages and no member: nothing else writes to the prefix
		// while the keyspace is compared.
		q := setup(t, b, queue.Options{HoldWhenEmpty: true}).q
		const room = "peek"
		seed := rand.Uint64()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, seed))
		type sent struct {
			id   uint64
			prio int
		}
		var msgs []sent
		for i := range 40 {
			p := rng.IntN(queue.MaxPriority + 1)
			msgs = append(msgs, sent{send(t, ctx, q, room, fmt.Sprintf("m%d", i), queue.Priority(p), queue.Producer("peeker")), p})
		}
		slices.SortStableFunc(msgs, func(x, y sent) int { return cmp.Compare(x.prio, y.prio) })

		snapshot := snapshotter(t, ctx, b)
		before := snapshot()
		all, err := q.Peek(ctx, room, 0, 100)
		require.NoError(t, err)
		require.Len(t, all, len(msgs))
		for i, p := range all {
			require.Equal(t, msgs[i].id, p.ID, "position %d", i)
			require.Equal(t, msgs[i].prio, p.Priority)
			require.Equal(t, room, p.Room)
			require.Equal(t, "peeker", p.Producer)
			require.False(t, p.EnqueuedAt.IsZero())
			var s string
			require.NoError(t, p.Decode(&s))
		}
		for _, page := range []struct{ offset, limit int }{{0, 1}, {5, 7}, {13, 13}, {39, 5}, {40, 3}, {100, 1}} {
			got, err := q.Peek(ctx, room, page.offset, page.limit)
			require.NoError(t, err)
			want := all[min(page.offset, len(all)):min(page.offset+page.limit, len(all))]
			require.Equal(t, len(want), len(got), "page %+v", page)
			for i := range got {
				require.Equal(t, want[i].ID, got[i].ID, "page %+v", page)
			}
		}
		for _, bad := range []struct{ offset, limit int }{{-1, 1}, {0, -1}, {0, 10001}} {
			_, err := q.Peek(ctx, room, bad.offset, bad.limit)
			require.ErrorIs(t, err, queue.ErrInvalidOption, "%+v", bad)
		}
		require.Equal(t, before, snapshot(), "Peek changed the keyspace")

		// The release order is the peeked order.
		s := join(t, ctx, q, room)
		for i, p := range all {
			m := next(t, ctx, s)
			require.Equal(t, p.ID, m.ID, "release %d", i)
			if i == 0 {
				rest, err := q.Peek(ctx, room, 0, 100)
				require.NoError(t, err)
				require.Len(t, rest, len(all)-1, "the in-flight message is no longer pending")
				require.Equal(t, all[1].ID, rest[0].ID)
			}
			require.NoError(t, m.Ack(ctx))
		}
	})
}

// Rule 11: the room state reports pending count, in-flight message and its
// age, members with their heartbeats, and who acked or is missing.
func TestRule11_RoomState(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		const timeout = 15 * time.Second
		q := setup(t, b, queue.Options{ClientTimeout: timeout}).q
		const room = "state"
		empty := roomState(t, ctx, q, room)
		require.Zero(t, empty.Pending)
		require.Nil(t, empty.InFlight)
		require.Empty(t, empty.Members)

		a := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		o := join(t, ctx, q, room, queue.AsObserver())
		z := subscribe(t, ctx, q, room)
		m1 := send(t, ctx, q, room, "m1")
		send(t, ctx, q, room, "m2", queue.Priority(1))
		send(t, ctx, q, room, "m3", queue.Priority(7))
		send(t, ctx, q, room, "m4", queue.Priority(7))
		ma := next(t, ctx, a)
		require.NoError(t, ma.Ack(ctx))
		late := join(t, ctx, q, room) // joined mid-flight: not waited for

		st := roomState(t, ctx, q, room)
		require.Equal(t, room, st.Room)
		require.NotEmpty(t, st.Epoch)
		require.EqualValues(t, 4, st.LastSeq)
		require.Equal(t, 3, st.Pending)
		require.Equal(t, 1, st.ByPriority[1])
		require.Equal(t, 2, st.ByPriority[7])
		require.NotNil(t, st.InFlight)
		require.Equal(t, m1, viewOf(st).InFlight)
		require.Equal(t, ma.StreamID, st.InFlight.StreamID)
		// The stream ID's time (Message.ReleasedAt) and the script's TIME
		// (InFlight.ReleasedAt) are read a moment apart in the same step.
		require.WithinDuration(t, ma.ReleasedAt, st.InFlight.ReleasedAt, stampTolerance)
		require.Equal(t, st.Now.Sub(st.InFlight.ReleasedAt), st.InFlight.Age)
		require.GreaterOrEqual(t, st.InFlight.Age, time.Duration(0))
		require.True(t, st.InFlight.AckDeadline.IsZero(), "no AckTimeout configured")
		require.ElementsMatch(t, []string{c.ClientID(), z}, st.Missing)
		require.True(t, slices.IsSorted(st.Missing))

		byID := map[string]int{}
		for i, m := range st.Members {
			byID[m.ClientID] = i
			require.False(t, m.Observer)
			require.False(t, m.LastHeartbeat.IsZero(), "member %s", m.ClientID)
			require.False(t, m.LastHeartbeat.After(st.Now))
			require.Equal(t, m.LastHeartbeat.Add(timeout), m.Deadline, "deadline = last heartbeat + ClientTimeout")
		}
		require.Len(t, st.Members, 4)
		require.True(t, slices.IsSortedFunc(st.Members, func(x, y queue.Member) int { return strings.Compare(x.ClientID, y.ClientID) }))
		ma0 := st.Members[byID[a.ClientID()]]
		require.True(t, ma0.Acked)
		require.False(t, ma0.AckedAt.Before(st.InFlight.ReleasedAt))
		require.False(t, st.Members[byID[c.ClientID()]].Acked)
		require.False(t, st.Members[byID[z]].Acked)
		ml := st.Members[byID[late.ClientID()]]
		require.True(t, ml.Acked, "a mid-flight joiner counts as acked")
		require.True(t, ml.AckedAt.IsZero(), "a mid-flight joiner never acked")
		require.Len(t, st.Observers, 1)
		require.Equal(t, o.ClientID(), st.Observers[0].ClientID)
		require.True(t, st.Observers[0].Observer)
		require.False(t, st.Observers[0].LastHeartbeat.IsZero())
		require.Equal(t, int64(len(history(t, ctx, q, room))), st.StreamLen)

		// A heartbeat moves the member's last heartbeat and deadline.
		t0 := serverTime(t, ctx, b.Client)
		require.NoError(t, q.Ping(ctx, z))
		t1 := serverTime(t, ctx, b.Client)
		st = roomState(t, ctx, q, room)
		mz := st.Members[slices.IndexFunc(st.Members, func(m queue.Member) bool { return m.ClientID == z })]
		between(t, mz.LastHeartbeat, t0, t1, "last heartbeat after Ping")
		require.Equal(t, mz.LastHeartbeat.Add(timeout), mz.Deadline)

		// Acks and leaves show at once.
		require.NoError(t, q.Unsubscribe(ctx, z, room))
		st = roomState(t, ctx, q, room)
		require.Equal(t, []string{c.ClientID()}, st.Missing)
		require.Len(t, st.Members, 3)
	})
}

// Rule 12: timestamps and deadlines come from the Redis server clock. The
// harness's servers share this host's clock, so the test checks that each
// timestamp falls in the window of TIME read from the server just before
// and after the call that set it, at the engine's millisecond resolution,
// and that deadlines are server timestamps plus the configured durations.
func TestRule12_ServerClock(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		const timeout = 15 * time.Second
		q := setup(t, b, queue.Options{ClientTimeout: timeout, AckTimeout: time.Hour}).q
		const room = "clock"
		now := func() time.Time { return serverTime(t, ctx, b.Client) }

		t0 := now()
		a := join(t, ctx, q, room)
		z := subscribe(t, ctx, q, room)
		t1 := now()
		st := roomState(t, ctx, q, room)
		for _, m := range st.Members {
			between(t, m.LastHeartbeat, t0, t1, "join heartbeat")
			require.Equal(t, m.LastHeartbeat.Add(timeout), m.Deadline)
		}

		t2 := now()
		id := send(t, ctx, q, room, "x")
		t3 := now()
		m := next(t, ctx, a)
		require.Equal(t, id, m.ID)
		between(t, m.EnqueuedAt, t2, t3, "EnqueuedAt")
		between(t, m.ReleasedAt, t2, t3, "ReleasedAt")
		t4 := now()
		st = roomState(t, ctx, q, room)
		t5 := now()
		between(t, st.Now, t4, t5, "RoomState.Now")
		require.NotNil(t, st.InFlight)
		between(t, st.InFlight.ReleasedAt, t2, t3, "InFlight.ReleasedAt")
		require.WithinDuration(t, m.ReleasedAt, st.InFlight.ReleasedAt, stampTolerance)
		require.Equal(t, st.Now.Sub(st.InFlight.ReleasedAt), st.InFlight.Age)
		require.Equal(t, st.InFlight.ReleasedAt.Add(time.Hour), st.InFlight.AckDeadline, "ack deadline = server release time + AckTimeout")

		t6 := now()
		require.NoError(t, m.Ack(ctx))
		t7 := now()
		for _, mem := range roomState(t, ctx, q, room).Members {
			if mem.ClientID == a.ClientID() {
				between(t, mem.AckedAt, t6, t7, "AckedAt")
			}
		}

		// A queued message: enqueue and release times are each the server
		// time of the call that did them.
		t8 := now()
		queued := send(t, ctx, q, room, "queued")
		t9 := now()
		pending, err := q.Peek(ctx, room, 0, 1)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		between(t, pending[0].EnqueuedAt, t8, t9, "pending EnqueuedAt")
		t10 := now()
		require.NoError(t, q.Unsubscribe(ctx, z, room)) // z was the last vote missing
		t11 := now()
		mq := next(t, ctx, a)
		require.Equal(t, queued, mq.ID)
		require.Equal(t, pending[0].EnqueuedAt, mq.EnqueuedAt)
		between(t, mq.ReleasedAt, t10, t11, "queued ReleasedAt")
		require.Equal(t, mq.ReleasedAt.Sub(mq.EnqueuedAt), mq.QueueWait())

		t12 := now()
		oid := sendOOB(t, ctx, q, room, "oob")
		t13 := now()
		mo := next(t, ctx, a)
		require.Equal(t, oid, mo.ID)
		between(t, mo.EnqueuedAt, t12, t13, "OOB EnqueuedAt")
		between(t, mo.ReleasedAt, t12, t13, "OOB ReleasedAt")

		for _, ev := range history(t, ctx, q, room) {
			between(t, ev.At, t0, t13, "stream event "+ev.ID)
		}
	})
}

// Rule 13: the delivery stream keeps message, OOB, join, leave and evict
// events with their details, in order; it reads back by ID or time range,
// tails live, and is trimmed by count or age as it is appended to.
func TestRule13_ReplayHistory(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, fast(queue.Options{})).q
		const room = "replay"
		key, err := q.StreamKey(room)
		require.NoError(t, err)

		// A live tail from the start of the stream, on its own connection.
		tailClient := b.NewClient(t)
		tailCtx, stopTail := context.WithCancel(ctx)
		var (
			tailMu  sync.Mutex
			tailed  []streams.Event
			tailErr error
			tailed1 = make(chan struct{}, 1)
			tailEnd = make(chan struct{})
		)
		go func() {
			defer close(tailEnd)
			for ev, err := range streams.Tail(tailCtx, tailClient, key, room, "0") {
				tailMu.Lock()
				if err != nil && tailErr == nil {
					tailErr = err
				}
				tailed = append(tailed, ev)
				tailMu.Unlock()
				select {
				case tailed1 <- struct{}{}:
				default:
				}
			}
		}()
		t.Cleanup(func() { stopTail(); <-tailEnd })

		a := join(t, ctx, q, room)
		o := join(t, ctx, q, room, queue.AsObserver())
		e := subscribe(t, ctx, q, room) // never pings: evicted after ClientTimeout
		payload1 := []byte("one")
		m1 := send(t, ctx, q, room, payload1, queue.Priority(3), queue.Producer("svc-a"))
		m2 := send(t, ctx, q, room, map[string]int{"n": 2}, queue.Priority(7), queue.Producer("svc-a"))
		o1 := sendOOB(t, ctx, q, room, "flash", queue.Producer("svc-b"))
		got := next(t, ctx, a)
		require.Equal(t, m1, got.ID)
		require.NoError(t, got.Ack(ctx))
		require.Equal(t, o1, next(t, ctx, a).ID)
		got = next(t, ctx, a) // released once e is evicted
		require.Equal(t, m2, got.ID)
		require.NoError(t, got.Ack(ctx))
		require.NoError(t, a.Close(ctx))

		evs := history(t, ctx, q, room)
		type step struct {
			ty     streams.Type
			client string
			msg    uint64
		}
		want := []step{
			{streams.Join, a.ClientID(), 0}, {streams.Join, o.ClientID(), 0}, {streams.Join, e, 0},
			{streams.Message, "", m1}, {streams.OutOfBand, "", o1},
			{streams.Evict, e, 0}, {streams.Message, "", m2}, {streams.Leave, a.ClientID(), 0},
		}
		var steps []step
		for _, ev := range evs {
			steps = append(steps, step{ev.Type, ev.ClientID, ev.MessageID})
		}
		require.Equal(t, want, steps)
		for i := 1; i < len(evs); i++ {
			require.Equal(t, -1, streams.CompareIDs(evs[i-1].ID, evs[i].ID), "stream order")
		}
		require.False(t, evs[0].Observer)
		require.True(t, evs[1].Observer)
		require.Equal(t, "timeout", evs[5].Reason)
		require.Equal(t, "leave", evs[7].Reason)

		ev1, ev2, evo := evs[3], evs[6], evs[4]
		require.Equal(t, "svc-a", ev1.Producer)
		require.Equal(t, 3, ev1.Priority)
		require.Equal(t, 7, ev2.Priority)
		require.Equal(t, "svc-b", evo.Producer)
		for _, ev := range []streams.Event{ev1, ev2, evo} {
			require.False(t, ev.Enqueued.IsZero())
			require.False(t, ev.At.Before(ev.Enqueued.Add(-stampTolerance)), "released before enqueued: %+v", ev)
		}
		require.GreaterOrEqual(t, ev2.At.Sub(ev2.Enqueued), shortTimeout/2, "m2 waited for the eviction, its release time must show it")
		msg1, err := queue.MessageFromEvent(ev1)
		require.NoError(t, err)
		require.True(t, msg1.Raw())
		require.Equal(t, payload1, msg1.Data())
		msg2, err := queue.MessageFromEvent(ev2)
		require.NoError(t, err)
		var m2body map[string]int
		require.NoError(t, msg2.Decode(&m2body))
		require.Equal(t, map[string]int{"n": 2}, m2body)

		// streams.History on the raw key, by ID range and by time range,
		// one entry per page, reads the same.
		rdb := b.Client
		var direct []streams.Event
		for ev, err := range streams.History(ctx, rdb, key, room, streams.Range{PerPage: 1}) {
			require.NoError(t, err)
			direct = append(direct, ev)
		}
		require.Equal(t, evs, direct)
		require.Equal(t, evs[2:6], historyRange(t, ctx, q, room, streams.Range{FromID: evs[2].ID, ToID: evs[5].ID, PerPage: 2}))
		since, until := evs[3].At, evs[6].At
		var inTime []streams.Event
		for _, ev := range evs {
			if !ev.At.Before(since) && !ev.At.After(until) {
				inTime = append(inTime, ev)
			}
		}
		require.Equal(t, inTime, historyRange(t, ctx, q, room, streams.Range{Since: since, Until: until}))

		// The live tail saw the same events (and later ones, such as o's
		// leave when the Queue closes, do not matter here).
		for {
			tailMu.Lock()
			n, terr := len(tailed), tailErr
			tailMu.Unlock()
			require.NoError(t, terr)
			if n >= len(evs) {
				break
			}
			select {
			case <-tailed1:
			case <-ctx.Done():
				t.Fatalf("the tail saw %d of %d events", n, len(evs))
			}
		}
		tailMu.Lock()
		require.Equal(t, evs, tailed[:len(evs)])
		tailMu.Unlock()
	})
}

func TestRule13_Retention(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		// Trimming is approximate (MAXLEN ~, MINID ~): Redis drops whole
		// stream nodes only, so the bounds allow one node more than asked.
		var nodeMax int
		require.NoError(t, b.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			v, err := c.ConfigGet(ctx, "stream-node-max-entries").Result()
			if err == nil {
				_, err = fmt.Sscan(v["stream-node-max-entries"], &nodeMax)
			}
			return err
		}))
		require.Positive(t, nodeMax)
		n := 2*nodeMax + 20
		xlen := func(q *queue.Queue, room string) int64 {
			key, err := q.StreamKey(room)
			require.NoError(t, err)
			l, err := b.Client.XLen(ctx, key).Result()
			require.NoError(t, err)
			return l
		}
		fill := func(q *queue.Queue, room string) []uint64 {
			var ids []uint64
			for i := range n {
				ids = append(ids, send(t, ctx, q, room, i)) // no members: each goes straight to the stream
			}
			return ids
		}

		t.Run("count", func(t *testing.T) {
			const maxLen = 10
			q := setup(t, b, queue.Options{StreamMaxLen: maxLen}).q
			ids := fill(q, "retain-count")
			l := xlen(q, "retain-count")
			require.GreaterOrEqual(t, l, int64(maxLen))
			require.LessOrEqual(t, l, int64(maxLen+nodeMax), "StreamMaxLen not applied on append")
			kept := messageIDs(history(t, ctx, q, "retain-count"))
			require.Equal(t, ids[len(ids)-len(kept):], kept, "the newest events are the ones kept")

			unlimited := setup(t, b, queue.Options{StreamMaxLen: -1}).q
			fill(unlimited, "retain-all")
			require.EqualValues(t, n, xlen(unlimited, "retain-all"))
		})

		t.Run("age", func(t *testing.T) {
			// Events older than the limit are written with old IDs instead of
			// waiting for them to age: a stream ID is its server time.
			seedOld := func(q *queue.Queue, room string) {
				key, err := q.StreamKey(room)
				require.NoError(t, err)
				for i := 1; i <= n; i++ {
					require.NoError(t, b.Client.XAdd(ctx, &redis.XAddArgs{
						Stream: key, ID: fmt.Sprintf("1000-%d", i),
						Values: []any{"t", "o", "id", i, "p", "", "et", 1000, "d", "rold"},
					}).Err())
				}
			}
			q := setup(t, b, queue.Options{StreamMaxAge: time.Second, StreamMaxLen: -1}).q
			seedOld(q, "retain-age")
			last := send(t, ctx, q, "retain-age", "new")
			require.LessOrEqual(t, xlen(q, "retain-age"), int64(nodeMax), "StreamMaxAge not applied on append")
			evs := history(t, ctx, q, "retain-age")
			require.Equal(t, last, evs[len(evs)-1].MessageID)

			keep := setup(t, b, queue.Options{StreamMaxLen: -1}).q
			seedOld(keep, "retain-forever")
			send(t, ctx, keep, "retain-forever", "new")
			require.EqualValues(t, n+1, xlen(keep, "retain-forever"), "trimmed without an age limit")
		})
	})
}

// Rule 14: concurrent sends, acks, joins, leaves, heartbeats and OOB sends
// never produce a state the rules forbid. The invariants are checked on the
// stream history and the log of acks the engine accepted.
func TestRule14_AtomicityUnderConcurrency(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		// Heartbeats (every ClientTimeout/3) interleave with everything else.
		opts := queue.Options{ClientTimeout: 3 * time.Second}
		qs := []*queue.Queue{setup(t, b, opts).q, setupOn(t, b.NewClient(t), b.Prefix, opts)}
		const room = "atomic"
		seed := rand.Uint64()
		t.Logf("seed %d", seed)

		var (
			mu       sync.Mutex
			acked    = map[string]map[uint64]bool{} // client -> messages whose ack was accepted
			received = map[string][]uint64{}        // client -> message and OOB IDs in delivery order
			queued   = map[uint64]int{}             // sent message -> priority
			oobs     = map[uint64]bool{}
			problems []string
		)
		problem := func(format string, args ...any) {
			mu.Lock()
			problems = append(problems, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
		const endMarker = "end"
		isEnd := func(m *queue.Message) bool {
			var s string
			return !m.OutOfBand && m.Decode(&s) == nil && s == endMarker
		}
		// consume takes up to limit queued messages (all when negative, until
		// the end marker), acking each, sometimes twice, and sometimes
		// re-acking the previous one, which must be stale.
		consume := func(ctx context.Context, rng *rand.Rand, s *queue.Subscription, limit int) {
			id := s.ClientID()
			mu.Lock()
			acked[id] = map[uint64]bool{}
			mu.Unlock()
			var prev *queue.Message
			for n := 0; limit < 0 || n < limit; {
				m, err := s.Next(ctx)
				if err != nil {
					if ctx.Err() == nil {
						problem("client %s: Next: %v", id, err)
					}
					return
				}
				mu.Lock()
				received[id] = append(received[id], m.ID)
				mu.Unlock()
				if m.OutOfBand {
					continue
				}
				if s.Observer() {
					if isEnd(m) {
						return
					}
					continue
				}
				if prev != nil && rng.IntN(4) == 0 {
					if err := prev.Ack(ctx); !errors.Is(err, queue.ErrStaleAck) {
						problem("client %s: late ack of %d while %d is in flight: %v, want ErrStaleAck", id, prev.ID, m.ID, err)
					}
				}
				if err := m.Ack(ctx); err != nil {
					problem("client %s: ack of %d: %v", id, m.ID, err)
					return
				}
				mu.Lock()
				acked[id][m.ID] = true
				mu.Unlock()
				if rng.IntN(4) == 0 {
					// Harmless either way: nil while m is still in flight,
					// stale once the first ack completed it.
					if err := m.Ack(ctx); err != nil && !errors.Is(err, queue.ErrStaleAck) {
						problem("client %s: second ack of %d: %v", id, m.ID, err)
					}
				}
				prev = m
				n++
				if isEnd(m) {
					return
				}
			}
		}

		var persistent []*queue.Subscription
		for _, q := range []*queue.Queue{qs[0], qs[0], qs[1]} {
			persistent = append(persistent, join(t, ctx, q, room))
		}
		persistent = append(persistent, join(t, ctx, qs[1], room, queue.AsObserver()))
		var consumers, producers, churners sync.WaitGroup
		for i, s := range persistent {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			consumers.Go(func() { consume(ctx, rng, s, -1) })
		}
		churnCtx, stopChurn := context.WithCancel(ctx)
		defer stopChurn()
		var churned []*queue.Subscription
		for g := range 2 {
			rng := rand.New(rand.NewPCG(seed, uint64(100+g)))
			churners.Go(func() {
				for range 6 {
					if churnCtx.Err() != nil {
						return
					}
					s, err := qs[rng.IntN(len(qs))].Join(churnCtx, room)
					if err != nil {
						if churnCtx.Err() == nil {
							problem("churner join: %v", err)
						}
						return
					}
					mu.Lock()
					churned = append(churned, s)
					mu.Unlock()
					consume(churnCtx, rng, s, rng.IntN(4))
					if err := s.Close(ctx); err != nil {
						problem("churner %s: close: %v", s.ClientID(), err)
					}
				}
			})
		}
		for g := range 3 {
			rng := rand.New(rand.NewPCG(seed, uint64(200+g)))
			producers.Go(func() {
				for i := range 40 {
					p := rng.IntN(queue.MaxPriority + 1)
					id, err := qs[rng.IntN(len(qs))].Send(ctx, room, fmt.Sprintf("p%d-%d", g, i), queue.Priority(p))
					if err != nil {
						problem("send: %v", err)
						return
					}
					mu.Lock()
					queued[id] = p
					mu.Unlock()
				}
			})
		}
		producers.Go(func() {
			for i := range 20 {
				id, err := qs[i%2].SendOutOfBand(ctx, room, fmt.Sprintf("oob%d", i))
				if err != nil {
					problem("oob: %v", err)
					return
				}
				mu.Lock()
				oobs[id] = true
				mu.Unlock()
			}
		})
		producers.Wait()
		// Lowest priority and newest: released last of all.
		end := send(t, ctx, qs[0], room, endMarker, queue.Priority(queue.MaxPriority))
		queued[end] = queue.MaxPriority
		consumers.Wait()
		stopChurn()
		churners.Wait()
		for _, s := range persistent {
			require.NoError(t, s.Close(ctx))
		}
		require.Empty(t, problems)

		evs := history(t, ctx, qs[0], room)
		// Everything sent was released exactly once.
		releasedQ, releasedO := map[uint64]int{}, map[uint64]int{}
		for _, ev := range evs {
			switch ev.Type {
			case streams.Message:
				releasedQ[ev.MessageID]++
				require.Equal(t, queued[ev.MessageID], ev.Priority, "message %d", ev.MessageID)
			case streams.OutOfBand:
				releasedO[ev.MessageID]++
			case streams.Evict:
				t.Fatalf("nobody should be evicted: %+v", ev)
			}
		}
		require.Len(t, releasedQ, len(queued))
		for id := range queued {
			require.Equal(t, 1, releasedQ[id], "message %d", id)
		}
		require.Len(t, releasedO, len(oobs))
		for id := range oobs {
			require.Equal(t, 1, releasedO[id], "OOB %d", id)
		}

		// Priority then FIFO: a message released later cannot be both older
		// and of the same or a more urgent priority (it was pending then).
		msgs := ofType(evs, streams.Message)
		for i, x := range msgs {
			for _, y := range msgs[i+1:] {
				require.False(t, y.MessageID < x.MessageID && y.Priority <= x.Priority,
					"message %d (priority %d) released before older message %d (priority %d)", x.MessageID, x.Priority, y.MessageID, y.Priority)
			}
		}

		// Lock-step: message k+1 was released only when every member present
		// at k's release and still present had its ack of k accepted.
		members := map[string]bool{}
		var prev *streams.Event
		var present []string
		for i := range evs {
			ev := &evs[i]
			switch ev.Type {
			case streams.Join:
				if !ev.Observer {
					members[ev.ClientID] = true
				}
			case streams.Leave, streams.Evict:
				delete(members, ev.ClientID)
			case streams.Message:
				if prev != nil {
					for _, c := range present {
						require.False(t, members[c] && !acked[c][prev.MessageID],
							"message %d released while member %s, present at the release of %d, had not acked it", ev.MessageID, c, prev.MessageID)
					}
				}
				prev = ev
				present = present[:0]
				for c := range members {
					present = append(present, c)
				}
			}
		}

		// Fanout: each subscription received the messages after its join, in
		// stream order, each once; the ones that stayed received all of them.
		for _, s := range append(persistent, churned...) {
			j := findEvent(evs, isClientEvent(streams.Join, s.ClientID()))
			require.NotEqual(t, -1, j)
			var after []uint64
			for _, ev := range evs[j+1:] {
				if ev.Type == streams.Message || ev.Type == streams.OutOfBand {
					after = append(after, ev.MessageID)
				}
			}
			got := received[s.ClientID()]
			require.LessOrEqual(t, len(got), len(after))
			require.Equal(t, after[:len(got)], append([]uint64{}, got...), "client %s", s.ClientID())
			if slices.Contains(persistent, s) {
				require.Equal(t, after[:slices.Index(after, end)+1], got, "client %s stayed to the end", s.ClientID())
			}
		}
		st := roomState(t, ctx, qs[0], room)
		require.Empty(t, st.Members)
		require.Empty(t, st.Observers)
		require.Zero(t, st.Pending)
		require.Nil(t, st.InFlight)
	})
}

// Rule 15: bad input gets a typed error and leaves every key under the
// prefix as it was; malformed entries in Redis are counted and skipped.
func TestRule15_BadInputChangesNothing(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		const limit = 64
		q := setup(t, b, queue.Options{MaxPayloadBytes: limit}).q
		const room = "bad-input"

		// A genuine token of a member that then left; its Queue is closed
		// before the comparison so no heartbeat writes meanwhile.
		qc := setupOn(t, b.NewClient(t), b.Prefix, queue.Options{})
		left := join(t, ctx, qc, room)
		member := subscribe(t, ctx, q, room) // nobody beats for it: it writes nothing
		send(t, ctx, q, room, "in flight")
		send(t, ctx, q, room, "pending")
		token := next(t, ctx, left).AckToken
		require.NoError(t, qc.Close())
		_, err := left.Next(ctx)
		require.ErrorIs(t, err, queue.ErrClosed)
		closed := setup(t, b, queue.Options{}).q
		require.NoError(t, closed.Close())
		require.NoError(t, closed.Close(), "Close is idempotent")
		stranger, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		cancelled, cancel := context.WithCancel(ctx)
		cancel()

		type call struct {
			name string
			want error
			fn   func() error
		}
		var cases []call
		add := func(want error, name string, fn func() error) { cases = append(cases, call{name, want, fn}) }
		// calls exercises every method that takes a room or a client ID.
		calls := func(q *queue.Queue, ctx context.Context, room, client, token string) map[string]func() error {
			return map[string]func() error{
				"Send":              func() error { _, err := q.Send(ctx, room, "x"); return err },
				"SendOutOfBand":     func() error { _, err := q.SendOutOfBand(ctx, room, "x"); return err },
				"Subscribe":         func() error { return q.Subscribe(ctx, client, room) },
				"SubscribeObserver": func() error { return q.SubscribeObserver(ctx, client, room) },
				"Unsubscribe":       func() error { return q.Unsubscribe(ctx, client, room) },
				"Ping":              func() error { return q.Ping(ctx, client) },
				"Ack":               func() error { return q.Ack(ctx, client, token) },
				"Peek":              func() error { _, err := q.Peek(ctx, room, 0, 10); return err },
				"RoomState":         func() error { _, err := q.RoomState(ctx, room); return err },
				"Join":              func() error { _, err := q.Join(ctx, room, queue.WithClientID(client)); return err },
				"History": func() error {
					for _, err := range q.History(ctx, room, streams.Range{}) {
						return err
					}
					return nil
				},
			}
		}
		usesRoom := map[string]bool{"Send": true, "SendOutOfBand": true, "Subscribe": true, "SubscribeObserver": true,
			"Unsubscribe": true, "Peek": true, "RoomState": true, "Join": true, "History": true}
		usesClient := map[string]bool{"Subscribe": true, "SubscribeObserver": true, "Unsubscribe": true, "Ping": true, "Ack": true, "Join": true}

		badNames := map[string]string{
			"empty":        "",
			"257 bytes":    strings.Repeat("r", 257),
			"open brace":   "a{b",
			"close brace":  "a}b",
			"tab":          "a\tb",
			"newline":      "a\nb",
			"NUL":          "a\x00b",
			"DEL":          "a\x7fb",
			"C1 control":   "a\u0085b",
			"invalid UTF8": "a\xff\xfeb",
		}
		for what, bad := range badNames {
			for name, fn := range calls(q, ctx, bad, member, token) {
				if usesRoom[name] {
					add(queue.ErrInvalidRoom, name+" room "+what, fn)
				}
			}
			for name, fn := range calls(q, ctx, room, bad, token) {
				if usesClient[name] {
					add(queue.ErrInvalidClientID, name+" client "+what, fn)
				}
			}
			if bad != "" { // the empty producer is allowed
				add(queue.ErrInvalidProducer, "producer "+what, func() error {
					_, err := q.Send(ctx, room, "x", queue.Producer(bad))
					return err
				})
			}
		}
		for name, fn := range calls(closed, ctx, room, member, token) {
			add(queue.ErrClosed, name+" after Close", fn)
		}
		add(queue.ErrClosed, "CreateClientID after Close", func() error { _, err := closed.CreateClientID(ctx); return err })
		for name, fn := range calls(q, cancelled, room, member, token) {
			add(context.Canceled, name+" with a cancelled context", fn)
		}
		add(context.Canceled, "CreateClientID with a cancelled context", func() error { _, err := q.CreateClientID(cancelled); return err })

		for _, s := range []func(context.Context, string, any, ...queue.SendOption) (uint64, error){q.Send, q.SendOutOfBand} {
			add(queue.ErrPayloadTooLarge, "raw payload over the limit", func() error { _, err := s(ctx, room, make([]byte, limit+1)); return err })
			add(queue.ErrPayloadTooLarge, "encoded payload over the limit", func() error { _, err := s(ctx, room, strings.Repeat("x", limit)); return err })
			add(queue.ErrEncode, "nil payload", func() error { _, err := s(ctx, room, nil); return err })
			add(queue.ErrEncode, "nil []byte payload", func() error { _, err := s(ctx, room, []byte(nil)); return err })
			add(queue.ErrEncode, "channel payload", func() error { _, err := s(ctx, room, make(chan int)); return err })
			add(queue.ErrEncode, "func payload", func() error { _, err := s(ctx, room, func() {}); return err })
			for _, p := range []int{-1, 10} {
				add(queue.ErrInvalidPriority, fmt.Sprintf("priority %d", p), func() error { _, err := s(ctx, room, "x", queue.Priority(p)); return err })
			}
		}
		add(queue.ErrUnknownClient, "Ping of an unknown client", func() error { return q.Ping(ctx, stranger) })
		add(queue.ErrNotMember, "Unsubscribe of a non-member", func() error { return q.Unsubscribe(ctx, stranger, room) })
		add(queue.ErrNotMember, "Ack by a member that left", func() error { return q.Ack(ctx, left.ClientID(), token) })
		add(queue.ErrInvalidToken, "Ack with another client's token", func() error { return q.Ack(ctx, member, token) })
		for _, tok := range []string{"", "garbage", "!!!!", "AQAA", strings.Repeat("A", 5000), token[:len(token)/2]} {
			add(queue.ErrInvalidToken, fmt.Sprintf("malformed token %.12q", tok), func() error { return q.Ack(ctx, member, tok) })
		}
		for _, pg := range [][2]int{{-1, 1}, {0, -1}, {0, 10001}} {
			add(queue.ErrInvalidOption, fmt.Sprintf("Peek(%d, %d)", pg[0], pg[1]), func() error { _, err := q.Peek(ctx, room, pg[0], pg[1]); return err })
		}
		newQueue := func(rdb redis.UniversalClient, o queue.Options) func() error {
			return func() error {
				o.Logger = discardLogger
				nq, err := queue.New(ctx, rdb, o)
				if nq != nil {
					_ = nq.Close()
				}
				return err
			}
		}
		add(queue.ErrInvalidOption, "New with a nil client", newQueue(nil, queue.Options{Prefix: b.Prefix}))
		add(queue.ErrInvalidOption, "New with ClientTimeout 500ms", newQueue(b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: 500 * time.Millisecond}))
		add(queue.ErrInvalidOption, "New with a brace in the prefix", newQueue(b.Client, queue.Options{Prefix: b.Prefix + "{x}"}))
		add(queue.ErrInvalidOption, "New with a short AckSecret", newQueue(b.Client, queue.Options{Prefix: b.Prefix, AckSecret: []byte("short")}))
		add(queue.ErrShardMismatch, "New with another NumShards", newQueue(b.Client, queue.Options{Prefix: b.Prefix, NumShards: 8}))

		snapshot := snapshotter(t, ctx, b)
		before := snapshot()
		require.NotEmpty(t, before)
		for _, c := range cases {
			err := c.fn()
			require.ErrorIs(t, err, c.want, c.name)
			require.Equal(t, before, snapshot(), "%s changed Redis", c.name)
		}
		t.Logf("%d bad calls, keyspace of %d keys unchanged", len(cases), len(before))
	})
}

// Rule 15, second half: entries in Redis that the engine did not write are
// counted and skipped, never fatal.
func TestRule15_MalformedEntriesSkipped(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "garbage"
		s := join(t, ctx, q, room)
		o := join(t, ctx, q, room, queue.AsObserver())
		key, err := q.StreamKey(room)
		require.NoError(t, err)
		garbage := [][]any{
			{"t", "zz"},
			{"x", "y"},
			{"t", "m", "id", "not a number", "et", "1", "d", "rx"},
			{"t", "m", "id", "7", "et", "1"}, // no payload
			{"t", "o", "id", "8", "et", "1", "d", "?unknown kind"},
		}
		for _, g := range garbage {
			require.NoError(t, b.Client.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: g}).Err())
		}
		id := send(t, ctx, q, room, "valid")
		m := next(t, ctx, s)
		require.Equal(t, id, m.ID, "the garbage must be skipped")
		require.NoError(t, m.Ack(ctx))
		require.Equal(t, id, next(t, ctx, o).ID)
		// Each undecodable entry is counted once by the Queue's reader.
		require.EqualValues(t, len(garbage), q.Stats().Invalid)

		var decodeErrs, events int
		for _, err := range q.History(ctx, room, streams.Range{}) {
			if err != nil {
				require.ErrorIs(t, err, queue.ErrDecode)
				decodeErrs++
				continue
			}
			events++
		}
		// One decision for every reader: the payload of unknown kind is as
		// malformed for History as for the subscriptions (issue 13, item 4).
		require.Equal(t, len(garbage), decodeErrs)
		require.Equal(t, 3, events) // two joins, the message
	})
}

// Rule 16: a reader whose connection drops resumes from its last stream ID
// and misses nothing appended meanwhile.
func TestRule16_ReaderResumesAfterReconnect(t *testing.T) {
	t.Parallel()
	// Both backends: the subscriber's Queue dials through a switch that
	// drops all its connections at once (to every cluster node), while the
	// producer keeps its own.
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		sw := newNetSwitch()
		checkResume(t, switchedClient(t, b, sw), b.Client, b.Prefix, sw.Cut, sw.Heal, sw.refused)
	})
	// A private standalone server behind redistest.Proxy: the drop happens
	// outside the client process. Standalone only, because the proxy fronts
	// one node and cluster clients learn the nodes' real addresses from
	// CLUSTER SLOTS, bypassing it.
	t.Run("proxy", func(t *testing.T) {
		t.Parallel()
		srv := redistest.NewServer(t, redistest.ServerOptions{})
		proxy := redistest.NewProxy(t, srv.Addr())
		viaProxy := redis.NewClient(&redis.Options{Addr: proxy.Addr(),
			MaxRetries: cutMaxRetries, DialerRetries: cutDialerRetries, PoolSize: cutPoolSize})
		t.Cleanup(func() { _ = viaProxy.Close() })
		checkResume(t, viaProxy, srv.Client(t), "sfresume", proxy.Cut, proxy.Heal, nil)
	})
}

// checkResume cuts the subscriber's connections while messages are sent,
// keeps them cut until the subscriber's process noticed (its reader logged
// the failure, or one of its reconnections was refused: refused, when not
// nil), heals, and requires every entry appended meanwhile to arrive in
// order. Its client does not retry commands, so what resumes the reading is
// the engine, not a go-redis retry of the same read.
func checkResume(t *testing.T, subRdb, prodRdb redis.UniversalClient, prefix string, cut, heal func(), refused <-chan struct{}) {
	t.Helper()
	ctx := testContext(t)
	logger, readerFailed := logSignal("stream reader")
	qs := setupOn(t, subRdb, prefix, queue.Options{Logger: logger})
	qp := setupOn(t, prodRdb, prefix, queue.Options{})
	t.Cleanup(heal) // before the Queues close
	const room = "resume"
	s := join(t, ctx, qs, room)
	m1 := send(t, ctx, qp, room, "m1")
	got := next(t, ctx, s)
	require.Equal(t, m1, got.ID)
	require.NoError(t, got.Ack(ctx))

	cut()
	m2 := send(t, ctx, qp, room, "m2") // released at once: m1 was acked
	var oobs []uint64
	for i := range 5 {
		oobs = append(oobs, sendOOB(t, ctx, qp, room, fmt.Sprintf("during the cut %d", i)))
	}
	m3 := send(t, ctx, qp, room, "m3") // waits for s's ack of m2
	select {
	case <-readerFailed:
	case <-refused:
	case <-time.After(waitLimit):
		t.Fatal("the subscriber's process never noticed the cut")
	}
	heal()

	var want []streams.Event
	for _, ev := range history(t, ctx, qp, room) {
		if (ev.Type == streams.Message || ev.Type == streams.OutOfBand) && streams.CompareIDs(ev.ID, got.StreamID) > 0 {
			want = append(want, ev)
		}
	}
	require.Len(t, want, 1+len(oobs))
	for _, w := range want {
		m := nextAfterOutage(t, ctx, s)
		require.Equal(t, w.MessageID, m.ID)
		require.Equal(t, w.ID, m.StreamID)
		if m.ID == m2 {
			require.NoError(t, m.Ack(ctx))
		}
	}
	require.Equal(t, m3, nextAfterOutage(t, ctx, s).ID)
	require.Zero(t, qs.Stats().Invalid)
}

// nextAfterOutage is next for a subscription whose reader has just been
// through an outage: until the reader's next attempt succeeds (it backs
// off up to 2s), Next may still report the outage as a *ReadError, which
// by contract leaves the subscription open, so a caller loops on it the
// way an application would. Any other error fails the test.
func nextAfterOutage(t *testing.T, ctx context.Context, s *queue.Subscription) *queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	for {
		m, err := s.Next(ctx)
		var re *queue.ReadError
		if errors.As(err, &re) {
			continue
		}
		require.NoError(t, err, "waiting for a message for client %s", s.ClientID())
		return m
	}
}
