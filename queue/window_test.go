package queue_test

// Barrier policies Window and Quorum (docs/semantics.md, project rules
// "window-*" and "quorum-*"): each rule's named test, on both backends.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// setWindowPolicy sets a room's policy through a Queue of its own.
func setWindowPolicy(t *testing.T, ctx context.Context, b *redistest.Backend, room string, p queue.Policy) {
	t.Helper()
	q := setup(t, b, queue.Options{}).q
	require.NoError(t, q.SetPolicy(ctx, room, p))
}

// inFlightSeqs lists the room's messages in flight, oldest first.
func inFlightSeqs(st queue.RoomState) []uint64 {
	var out []uint64
	for _, f := range st.Window {
		out = append(out, f.Seq)
	}
	return out
}

func lagOf(st queue.RoomState, client string) int {
	for _, m := range st.Members {
		if m.ClientID == client {
			return m.Lag
		}
	}
	return -1
}

// TestWindow_ReleasesUpToW: with Window 3, three messages are in flight at
// once and delivered in order before any ack; the fourth waits until every
// member acked the first.
func TestWindow_ReleasesUpToW(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-upto"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 3})
		a := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		var ids []uint64
		for i := range 5 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		st := roomState(t, ctx, q, room)
		require.Equal(t, ids[:3], inFlightSeqs(st))
		require.Equal(t, 2, st.Pending)
		require.Equal(t, ids[0], st.InFlight.Seq)
		var ma, mc []*queue.Message
		for i := range 3 {
			ma = append(ma, next(t, ctx, a))
			mc = append(mc, next(t, ctx, c))
			require.Equal(t, ids[i], ma[i].ID)
			require.Equal(t, ids[i], mc[i].ID)
		}
		require.NoError(t, ma[0].Ack(ctx))
		st = roomState(t, ctx, q, room)
		require.Equal(t, ids[:3], inFlightSeqs(st), "message 4 waits for every member's ack of message 1")
		require.Equal(t, []string{c.ClientID()}, st.Missing)
		require.Equal(t, 2, lagOf(st, a.ClientID()))
		require.Equal(t, 3, lagOf(st, c.ClientID()))
		require.NoError(t, mc[0].Ack(ctx))
		st = roomState(t, ctx, q, room)
		require.Equal(t, ids[1:4], inFlightSeqs(st))
		require.Equal(t, ids[3], next(t, ctx, a).ID)
	})
}

// TestWindow_CumulativeAck: acking message k acks every message released
// before it; an ack the member's position already covers is accepted and
// changes nothing while the message is tracked, and is stale once every
// member acked it.
func TestWindow_CumulativeAck(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-cumulative"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 4})
		a := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		var ids []uint64
		for i := range 6 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		var ma, mc []*queue.Message
		for range 4 {
			ma = append(ma, next(t, ctx, a))
			mc = append(mc, next(t, ctx, c))
		}
		require.NoError(t, ma[2].Ack(ctx), "acking the third acks the first two")
		st := roomState(t, ctx, q, room)
		require.Equal(t, 1, lagOf(st, a.ClientID()))
		require.Equal(t, ids[:4], inFlightSeqs(st), "c acked nothing yet")
		require.NoError(t, ma[0].Ack(ctx), "covered by a's position: accepted")
		require.Equal(t, 1, lagOf(roomState(t, ctx, q, room), a.ClientID()), "and changes nothing")
		require.NoError(t, mc[2].Ack(ctx))
		st = roomState(t, ctx, q, room)
		require.Equal(t, ids[3:6], inFlightSeqs(st), "1-3 complete, 5 and 6 released")
		require.ErrorIs(t, ma[1].Ack(ctx), queue.ErrStaleAck, "every member acked it: no longer tracked")
		for _, s := range []*queue.Subscription{a, c} {
			require.Equal(t, ids[4], next(t, ctx, s).ID)
			m6 := next(t, ctx, s)
			require.Equal(t, ids[5], m6.ID)
			require.NoError(t, m6.Ack(ctx))
		}
		st = roomState(t, ctx, q, room)
		require.Nil(t, st.InFlight)
		require.Empty(t, st.Window)
		require.Equal(t, 0, lagOf(st, a.ClientID()))
	})
}

// TestWindow_JoinerNotWaitedFor: a member that joins while messages are in
// flight is not waited for on them, and receives only what is released
// after its join, in order.
func TestWindow_JoinerNotWaitedFor(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-joiner"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 3})
		a := join(t, ctx, q, room)
		var ids []uint64
		for i := range 5 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		late := join(t, ctx, q, room)
		st := roomState(t, ctx, q, room)
		require.Equal(t, ids[:3], inFlightSeqs(st))
		require.Equal(t, []string{a.ClientID()}, st.Missing, "the joiner owes nothing released before it joined")
		require.Equal(t, 0, lagOf(st, late.ClientID()))
		var last *queue.Message
		for range 3 {
			last = next(t, ctx, a)
		}
		require.NoError(t, last.Ack(ctx))
		st = roomState(t, ctx, q, room)
		require.Equal(t, ids[3:5], inFlightSeqs(st), "completed without the joiner")
		for _, id := range ids[3:5] {
			require.Equal(t, id, next(t, ctx, late).ID, "the joiner's first messages are those released after its join")
		}
	})
}

// TestWindow_AckTimeoutEvictsOldest: the ack deadline watches the oldest
// message in flight; at it, the members that have not acked that message
// are evicted ("ack-timeout") and the window moves on.
func TestWindow_AckTimeoutEvictsOldest(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		// Long enough for a's ack on a loaded machine: only stuck's is late.
		q := setup(t, b, fast(queue.Options{AckTimeout: 2 * time.Second})).q
		const room = "win-acktimeout"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 2})
		a := join(t, ctx, q, room)
		stuck := join(t, ctx, q, room)
		var ids []uint64
		for i := range 3 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		require.NotZero(t, roomState(t, ctx, q, room).InFlight.AckDeadline)
		next(t, ctx, a)
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		next(t, ctx, stuck) // delivered, never acked
		ev := waitEvent(t, ctx, q, room, isClientEvent(streams.Evict, stuck.ClientID()))
		require.Equal(t, queue.EvictReasonAckTimeout, ev.Reason)
		err := nextErr(t, ctx, stuck)
		require.ErrorIs(t, err, queue.ErrEvicted)
		require.NotErrorIs(t, err, queue.ErrMaxLag)
		require.Equal(t, ids[2], next(t, ctx, a).ID, "the window moved on")
	})
}

// TestWindow_ResumeOwesEveryUnacked: a member subscribing again with its
// client ID (its process restarted) is handed again, in order, every
// message it had not acked, then what follows.
func TestWindow_ResumeOwesEveryUnacked(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-resume"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 3})
		a := join(t, ctx, q, room)
		x := join(t, ctx, q, room)
		var ids []uint64
		for i := range 4 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		require.NoError(t, next(t, ctx, x).Ack(ctx))
		next(t, ctx, x) // handed, then the process dies
		// Another process subscribes the same client again.
		q2 := setup(t, b, queue.Options{}).q
		x2 := join(t, ctx, q2, room, queue.WithClientID(x.ClientID()))
		require.Equal(t, ids[1], next(t, ctx, x2).ID)
		m := next(t, ctx, x2)
		require.Equal(t, ids[2], m.ID)
		require.NoError(t, m.Ack(ctx))
		var last *queue.Message
		for range 3 {
			last = next(t, ctx, a)
		}
		require.NoError(t, last.Ack(ctx))
		require.Equal(t, ids[3], next(t, ctx, x2).ID)
	})
}

// TestWindow_FencedRejoin: with several messages in flight, a token of an
// earlier membership of a client is refused (ErrStaleAck) and changes
// nothing, even for a message still tracked.
func TestWindow_FencedRejoin(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-fence"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 3})
		y := join(t, ctx, q, room)
		x := join(t, ctx, q, room)
		xid := x.ClientID()
		for i := range 3 {
			send(t, ctx, q, room, i)
		}
		next(t, ctx, x)
		old := next(t, ctx, x)
		require.NoError(t, x.Close(ctx))
		join(t, ctx, q, room, queue.WithClientID(xid))
		fencedAck(t, ctx, q, nil, room, old, xid)
		require.Equal(t, []string{y.ClientID()}, roomState(t, ctx, q, room).Missing)
	})
}

// TestWindow_OutOfBandUnaffected: out-of-band messages neither wait for
// the window nor take a place in it.
func TestWindow_OutOfBandUnaffected(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-oob"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 2})
		a := join(t, ctx, q, room)
		m1 := send(t, ctx, q, room, 1)
		m2 := send(t, ctx, q, room, 2)
		send(t, ctx, q, room, 3)
		o := sendOOB(t, ctx, q, room, "oob")
		require.Equal(t, []uint64{m1, m2}, inFlightSeqs(roomState(t, ctx, q, room)))
		require.Equal(t, m1, next(t, ctx, a).ID)
		require.Equal(t, m2, next(t, ctx, a).ID)
		got := next(t, ctx, a)
		require.Equal(t, o, got.ID)
		require.True(t, got.OutOfBand)
	})
}

// TestWindow_Worker: a gateway Worker hands its clients the whole window
// before any ack, in order, and cumulative acks through Worker.Ack move
// it; a follow-all worker started later hands each member what it has not
// acked.
func TestWindow_Worker(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		const room = "win-worker"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 3})
		in := wkInbox{room: make(chan wkDelivery, 64)}
		w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: in.handle, AutoHeartbeat: true})
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, w.Subscribe(ctx, "g1", room))
		require.NoError(t, w.Subscribe(ctx, "g2", room))
		var ids []uint64
		for i := range 5 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		got := map[string][]*queue.Message{}
		for range 6 {
			d := wkRecv(t, ctx, in[room])
			got[d.client] = append(got[d.client], d.msg)
		}
		for _, c := range []string{"g1", "g2"} {
			require.Len(t, got[c], 3)
			for i, m := range got[c] {
				require.Equal(t, ids[i], m.ID)
			}
		}
		require.NoError(t, w.Ack(ctx, "g1", got["g1"][2].AckToken))
		require.NoError(t, w.Ack(ctx, "g2", got["g2"][0].AckToken))
		d := wkRecv(t, ctx, in[room])
		require.Equal(t, ids[3], d.msg.ID)

		// A follow-all worker starting now hands g2 what it owes (2, 3, 4)
		// and g1 only 4.
		in2 := wkInbox{room: make(chan wkDelivery, 64)}
		fa, err := q.NewWorker(queue.WorkerOptions{HandleMessage: in2.handle, FollowAll: true, DiscoveryInterval: 20 * time.Millisecond})
		require.NoError(t, err)
		defer fa.Close()
		owed := map[string][]uint64{}
		for range 4 {
			d := wkRecv(t, ctx, in2[room])
			owed[d.client] = append(owed[d.client], d.msg.ID)
		}
		require.Equal(t, ids[1:4], owed["g2"])
		require.Equal(t, ids[3:4], owed["g1"])
	})
}

// TestQuorum_CompletesWithQ: with Quorum 2 of 3, a message completes on
// two acks; the third member stays, keeps receiving every message in
// order, its lag is visible, and its late acks are accepted and counted.
func TestQuorum_CompletesWithQ(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "quorum-count"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Quorum: 2})
		a := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		slow := join(t, ctx, q, room)
		var ids []uint64
		for i := range 4 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		for i := range 3 {
			for _, s := range []*queue.Subscription{a, c} {
				m := next(t, ctx, s)
				require.Equal(t, ids[i], m.ID)
				require.NoError(t, m.Ack(ctx))
			}
		}
		st := roomState(t, ctx, q, room)
		require.Equal(t, ids[3:4], inFlightSeqs(st), "three completed without the slow member")
		require.Equal(t, 4, lagOf(st, slow.ClientID()))
		require.Len(t, st.Members, 3, "the slow member stays")
		acked := q.Stats().Acked
		var ms []*queue.Message
		for i := range 4 {
			m := next(t, ctx, slow)
			require.Equal(t, ids[i], m.ID, "the slow member receives every message in order")
			ms = append(ms, m)
		}
		require.NoError(t, ms[0].Ack(ctx), "a late ack is accepted")
		require.NoError(t, ms[2].Ack(ctx), "and is cumulative")
		require.Equal(t, acked+2, q.Stats().Acked, "late acks are counted")
		require.Equal(t, 1, lagOf(roomState(t, ctx, q, room), slow.ClientID()))
	})
}

// TestQuorum_Fraction: QuorumFraction counts the current voting members,
// rounded up (0.5 of 3 is 2); observers do not vote.
func TestQuorum_Fraction(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "quorum-fraction"
		setWindowPolicy(t, ctx, b, room, queue.Policy{QuorumFraction: 0.5})
		a := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		join(t, ctx, q, room)
		obs := join(t, ctx, q, room, queue.AsObserver())
		m1 := send(t, ctx, q, room, 1)
		m2 := send(t, ctx, q, room, 2)
		require.Equal(t, m1, next(t, ctx, obs).ID)
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		require.Equal(t, []uint64{m1}, inFlightSeqs(roomState(t, ctx, q, room)), "one ack of three members is not half")
		require.NoError(t, next(t, ctx, c).Ack(ctx))
		require.Equal(t, []uint64{m2}, inFlightSeqs(roomState(t, ctx, q, room)), "two of three is, rounded up")
	})
}

// TestQuorum_MaxLagEvicts: a member more than MaxLag messages behind is
// evicted with its own reason, recorded as an evict event "max-lag" and
// returned as an EvictedError matching ErrMaxLag.
func TestQuorum_MaxLagEvicts(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "quorum-maxlag"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Quorum: 1, MaxLag: 2})
		a := join(t, ctx, q, room)
		slow := join(t, ctx, q, room)
		for i := range 3 {
			send(t, ctx, q, room, i)
			require.NoError(t, next(t, ctx, a).Ack(ctx))
			if i < 2 {
				require.Equal(t, i+1, lagOf(roomState(t, ctx, q, room), slow.ClientID()))
			}
		}
		ev := waitEvent(t, ctx, q, room, isClientEvent(streams.Evict, slow.ClientID()))
		require.Equal(t, queue.EvictReasonMaxLag, ev.Reason)
		err := nextErr(t, ctx, slow)
		require.ErrorIs(t, err, queue.ErrMaxLag)
		require.ErrorIs(t, err, queue.ErrEvicted)
		var ee *queue.EvictedError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, queue.EvictReasonMaxLag, ee.Reason)
		require.Equal(t, uint64(1), q.Stats().EvictedMaxLag)
		require.Len(t, roomState(t, ctx, q, room).Members, 1)
	})
}

// TestWindow_DefaultPolicy: a Queue's Options.DefaultPolicy window applies
// to rooms without a stored policy.
func TestWindow_DefaultPolicy(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{DefaultPolicy: queue.Policy{Window: 2}}).q
		const room = "win-default"
		join(t, ctx, q, room)
		m1 := send(t, ctx, q, room, 1)
		m2 := send(t, ctx, q, room, 2)
		send(t, ctx, q, room, 3)
		require.Equal(t, []uint64{m1, m2}, inFlightSeqs(roomState(t, ctx, q, room)))
	})
}

// TestWindow_PolicyChangesMidFlight: a lock-step room with a message in
// flight and one member's ack taken opens to a window of 3 at once
// (nothing acked is lost), and back to lock-step (the default policy) the
// messages in flight complete as usual before one at a time resumes.
func TestWindow_PolicyChangesMidFlight(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-change"
		a := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		var ids []uint64
		for i := range 6 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{Window: 3}))
		st := roomState(t, ctx, q, room)
		require.Equal(t, ids[:3], inFlightSeqs(st))
		require.Equal(t, []string{c.ClientID()}, st.Missing, "a's ack of the first message was kept")
		require.Equal(t, 2, lagOf(st, a.ClientID()))

		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{}))
		var mc *queue.Message
		for range 3 {
			mc = next(t, ctx, c)
		}
		require.NoError(t, mc.Ack(ctx))
		require.Equal(t, ids[1:3], inFlightSeqs(roomState(t, ctx, q, room)), "c acked all three, a only the first")
		next(t, ctx, a)
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		st = roomState(t, ctx, q, room)
		require.Equal(t, ids[3:4], inFlightSeqs(st), "lock-step again: one message at a time")
		for _, s := range []*queue.Subscription{a, c} {
			m := next(t, ctx, s)
			require.Equal(t, ids[3], m.ID)
			require.NoError(t, m.Ack(ctx))
		}
		require.Equal(t, ids[4:5], inFlightSeqs(roomState(t, ctx, q, room)))
	})
}

// TestWindow_StragglerSkip: with Straggler Skip, the oldest message's ack
// deadline completes it without the members that had not acked it: they
// stay, excused from it (it is not in their lag, and their late ack of it
// is stale once nobody else is behind it), and are named in skip events;
// the window moves on, and the next messages wait for them again.
func TestWindow_StragglerSkip(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, fast(queue.Options{})).q
		const room = "win-skip"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 2, Straggler: queue.Skip})
		a := join(t, ctx, q, room)
		slow := join(t, ctx, q, room)
		m1 := send(t, ctx, q, room, 1, queue.AckDeadline(2*time.Second)) // a acks well before
		m2 := send(t, ctx, q, room, 2)
		m3 := send(t, ctx, q, room, 3)
		next(t, ctx, a)
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		ev := waitEvent(t, ctx, q, room, func(ev streams.Event) bool { return ev.Type == streams.Skipped })
		require.Equal(t, slow.ClientID(), ev.ClientID)
		require.Equal(t, m1, ev.MessageID)
		st := roomState(t, ctx, q, room)
		require.Len(t, st.Members, 2, "the straggler stays")
		require.Equal(t, []uint64{m2, m3}, inFlightSeqs(st), "1 skipped, 3 released; 2 waits for the straggler (no deadline of its own)")
		require.Equal(t, 2, lagOf(st, slow.ClientID()), "excused from the skipped message")
		late := next(t, ctx, slow)
		require.Equal(t, m1, late.ID, "the straggler still gets what it was sent")
		require.ErrorIs(t, late.Ack(ctx), queue.ErrStaleAck, "as in lock-step (rule 27)")
		for _, id := range []uint64{m2, m3} {
			require.Equal(t, id, next(t, ctx, slow).ID)
		}
	})
}

// TestWindow_PauseAndForceRelease: an operator's force release completes
// the oldest message of the window without the members that had not
// acked it, as a straggler skip does (they stay, excused from it), and a
// pause lets acks complete messages in flight while nothing new is
// released.
func TestWindow_PauseAndForceRelease(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-admin"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 2})
		a := join(t, ctx, q, room)
		slow := join(t, ctx, q, room)
		var ids []uint64
		for i := range 4 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		next(t, ctx, a)
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		missing, err := q.Admin("ops").Release(ctx, room, "stuck")
		require.NoError(t, err)
		require.Equal(t, []string{slow.ClientID()}, missing)
		st := roomState(t, ctx, q, room)
		require.Equal(t, ids[1:3], inFlightSeqs(st), "1 forced out, 3 released")
		require.Len(t, st.Members, 2, "the member behind stays")
		require.Equal(t, 2, lagOf(st, slow.ClientID()), "excused from the forced message")

		require.NoError(t, q.Admin("ops").Pause(ctx, room, "maintenance"))
		var m *queue.Message
		for range 3 {
			m = next(t, ctx, slow)
		}
		require.Equal(t, ids[2], m.ID)
		require.NoError(t, m.Ack(ctx))
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		st = roomState(t, ctx, q, room)
		require.Empty(t, st.Window, "acks complete what is in flight")
		require.Equal(t, 1, st.Pending, "but a paused room releases nothing")
		require.NoError(t, q.Admin("ops").Resume(ctx, room, "done"))
		require.Equal(t, ids[3:4], inFlightSeqs(roomState(t, ctx, q, room)))
	})
}

// TestWindow_ForceReleaseLikeSkip: an operator's force release of the
// oldest message in flight treats the members that had not acked it as a
// straggler skip does: they stay, excused from it, so it is not in their
// lag and their ack of it is stale once no other member is behind it.
func TestWindow_ForceReleaseLikeSkip(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-force-skip"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 2})
		a := join(t, ctx, q, room)
		slow := join(t, ctx, q, room)
		var ids []uint64
		for i := range 3 {
			ids = append(ids, send(t, ctx, q, room, i))
		}
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		missing, err := q.Admin("ops").Release(ctx, room, "stuck")
		require.NoError(t, err)
		require.Equal(t, []string{slow.ClientID()}, missing)
		st := roomState(t, ctx, q, room)
		require.Equal(t, ids[1:3], inFlightSeqs(st))
		require.Equal(t, 2, lagOf(st, slow.ClientID()), "the forced message is not in its lag")
		late := next(t, ctx, slow)
		require.Equal(t, ids[0], late.ID)
		require.ErrorIs(t, late.Ack(ctx), queue.ErrStaleAck, "as a skipped member's late ack")
		m := next(t, ctx, slow)
		require.NoError(t, m.Ack(ctx), "the next message waits for it as before")
		require.Equal(t, 1, lagOf(roomState(t, ctx, q, room), slow.ClientID()))
	})
}

// TestQuorum_DefaultMaxLag: a quorum room without a MaxLag still bounds
// its members' lag, at max(Window, DefaultMaxLag): a member that never
// acks, while the quorum moves on without it, is evicted for lag once it
// is more than DefaultMaxLag messages behind, so the messages the room
// tracks for it do not grow without bound.
func TestQuorum_DefaultMaxLag(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "quorum-default-maxlag"
		const w = 8
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: w, Quorum: 1})
		fast := join(t, ctx, q, room)
		// A member that heartbeats (ClientTimeout is far away) and never acks.
		silent := subscribe(t, ctx, q, room)
		batch := make([]any, w)
		for i := range batch {
			batch[i] = i
		}
		for sent := 0; sent < queue.DefaultMaxLag; sent += w {
			_, err := q.SendBatch(ctx, room, batch)
			require.NoError(t, err)
			var m *queue.Message
			for range w {
				m = next(t, ctx, fast)
			}
			require.NoError(t, m.Ack(ctx), "acks the window at once")
		}
		st := roomState(t, ctx, q, room)
		require.Len(t, st.Members, 2)
		require.Equal(t, queue.DefaultMaxLag, lagOf(st, silent), "at the limit, still a member")
		send(t, ctx, q, room, "one more")
		ev := waitEvent(t, ctx, q, room, isClientEvent(streams.Evict, silent))
		require.Equal(t, queue.EvictReasonMaxLag, ev.Reason)
		require.Len(t, roomState(t, ctx, q, room).Members, 1)
	})
}

// TestWindow_DeadlineIsTheOldestsOwn (rule 26): in a window, the ack
// deadline shown and enforced is the oldest message's own: one without a
// deadline does not inherit the one of the message before it.
func TestWindow_DeadlineIsTheOldestsOwn(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "win-deadline-own"
		setWindowPolicy(t, ctx, b, room, queue.Policy{Window: 3})
		a := join(t, ctx, q, room)
		m1 := send(t, ctx, q, room, 1, queue.AckDeadline(time.Hour))
		m2 := send(t, ctx, q, room, 2)
		m3 := send(t, ctx, q, room, 3, queue.AckDeadline(2*time.Hour))
		st := roomState(t, ctx, q, room)
		require.Equal(t, []uint64{m1, m2, m3}, inFlightSeqs(st))
		require.NotZero(t, st.InFlight.AckDeadline, "1's own")
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		st = roomState(t, ctx, q, room)
		require.Equal(t, m2, st.InFlight.Seq)
		require.Zero(t, st.InFlight.AckDeadline, "2 has none of its own")
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		st = roomState(t, ctx, q, room)
		require.Equal(t, m3, st.InFlight.Seq)
		require.WithinDuration(t, serverTime(t, ctx, b.Client).Add(2*time.Hour), st.InFlight.AckDeadline, time.Minute, "3's own, from when it became the oldest")
	})
}
