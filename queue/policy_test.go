package queue_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// fullPolicy sets every field, so round trips see each one.
var fullPolicy = queue.Policy{
	Window: 4, QuorumFraction: 0.5, MaxLag: 7, MaxPending: 100,
	Overflow: queue.DropLowestPriority, MaxPayloadBytes: 512, Straggler: queue.Skip,
}

// TestPolicyText: String and ParsePolicy are inverses for every field; the
// zero Policy is the empty text, and bad text is an ErrInvalidPolicy.
func TestPolicyText(t *testing.T) {
	for _, p := range []queue.Policy{
		{}, fullPolicy, {Quorum: 2}, {Overflow: queue.DropOldest}, {Window: 1, Straggler: queue.Evict},
	} {
		got, err := queue.ParsePolicy(p.String())
		require.NoError(t, err, p.String())
		require.Equal(t, p, got)
	}
	require.Equal(t, "", queue.Policy{}.String())
	require.Equal(t, "window=4,qfrac=0.5,maxlag=7,maxpending=100,overflow=drop-lowest-priority,maxpayload=512,straggler=skip", fullPolicy.String())
	for _, bad := range []string{"window", "window=x", "colour=red", "overflow=drop-newest", "straggler=wait", "qfrac=half"} {
		_, err := queue.ParsePolicy(bad)
		require.ErrorIs(t, err, queue.ErrInvalidPolicy, bad)
	}
}

// invalidPolicies are refused by SetPolicy and Options.DefaultPolicy.
var invalidPolicies = map[string]queue.Policy{
	"negative window":      {Window: -1},
	"huge window":          {Window: math.MaxInt32},
	"negative quorum":      {Quorum: -1},
	"fraction above 1":     {QuorumFraction: 1.5},
	"negative fraction":    {QuorumFraction: -0.1},
	"NaN fraction":         {QuorumFraction: math.NaN()},
	"quorum and fraction":  {Quorum: 2, QuorumFraction: 0.5},
	"negative max lag":     {MaxLag: -1},
	"negative max pending": {MaxPending: -1},
	"unknown overflow":     {Overflow: queue.OverflowPolicy(7)},
	"negative overflow":    {Overflow: queue.OverflowPolicy(-1)},
	"negative max payload": {MaxPayloadBytes: -1},
	"payload above global": {MaxPayloadBytes: 1<<20 + 1},
	"unknown straggler":    {Straggler: queue.StragglerPolicy(2)},
	"negative straggler":   {Straggler: queue.StragglerPolicy(-1)},
}

// TestSetPolicyInvalid (project rule 22, "Policies are validated"): every invalid policy
// is an ErrInvalidPolicy and changes nothing in Redis, not even for a room
// that has a policy already.
func TestSetPolicyInvalid(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "policy-invalid"
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{MaxPending: 3}))
		snapshot := snapshotter(t, ctx, b)
		before := snapshot()
		for name, p := range invalidPolicies {
			require.ErrorIs(t, q.SetPolicy(ctx, room, p), queue.ErrInvalidPolicy, name)
		}
		require.ErrorIs(t, q.SetPolicy(ctx, "bad{room}", queue.Policy{}), queue.ErrInvalidRoom)
		_, err := q.Policy(ctx, "")
		require.ErrorIs(t, err, queue.ErrInvalidRoom)
		require.Equal(t, before, snapshot(), "a refused policy writes nothing")
		got, err := q.Policy(ctx, room)
		require.NoError(t, err)
		require.Equal(t, queue.Policy{MaxPending: 3}, got)
	})
}

// TestDefaultPolicyInvalid: Options.DefaultPolicy is validated like
// SetPolicy's argument.
func TestDefaultPolicyInvalid(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		for name, p := range invalidPolicies {
			_, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, DefaultPolicy: p})
			require.ErrorIs(t, err, queue.ErrInvalidPolicy, name)
			require.ErrorIs(t, err, queue.ErrInvalidPolicy, name)
		}
		// The per-room payload limit is checked against this Queue's own.
		_, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, MaxPayloadBytes: 100, DefaultPolicy: queue.Policy{MaxPayloadBytes: 101}})
		require.ErrorIs(t, err, queue.ErrInvalidPolicy)
	})
}

// TestSetPolicy (project rule 21, "Policies live with the room"): a room's policy is stored with
// the room, replaced whole by SetPolicy, the same for every Queue whatever
// its DefaultPolicy, shown by Policy and RoomState, and each change is a
// policy event in the room's stream. A room without one follows the
// reading Queue's DefaultPolicy. Window, Quorum and MaxLag are stored like
// the rest.
func TestSetPolicy(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		def := queue.Policy{MaxPending: 9, Overflow: queue.DropOldest}
		q := setup(t, b, queue.Options{DefaultPolicy: def}).q
		other := setup(t, b, queue.Options{}).q
		const room = "policy-set"

		got, err := q.Policy(ctx, room)
		require.NoError(t, err)
		require.Equal(t, def, got, "a room without a stored policy follows DefaultPolicy")
		st := roomState(t, ctx, q, room)
		require.Equal(t, def, st.Policy)
		require.False(t, st.PolicyStored)
		got, err = other.Policy(ctx, room)
		require.NoError(t, err)
		require.Equal(t, queue.Policy{}, got)

		require.NoError(t, q.SetPolicy(ctx, room, fullPolicy))
		for _, qq := range []*queue.Queue{q, other} {
			got, err := qq.Policy(ctx, room)
			require.NoError(t, err)
			require.Equal(t, fullPolicy, got, "every Queue sees the stored policy")
			st := roomState(t, ctx, qq, room)
			require.Equal(t, fullPolicy, st.Policy)
			require.True(t, st.PolicyStored)
		}

		// Replacing it whole: fields left zero go back to their zero value,
		// not to the DefaultPolicy.
		next := queue.Policy{Quorum: 2, Window: 1}
		require.NoError(t, other.SetPolicy(ctx, room, next))
		got, err = q.Policy(ctx, room)
		require.NoError(t, err)
		require.Equal(t, next, got)
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{}))
		st = roomState(t, ctx, q, room)
		require.Equal(t, queue.Policy{}, st.Policy, "a stored zero policy is not the default")
		require.True(t, st.PolicyStored)

		evs := ofType(history(t, ctx, q, room), streams.Policy)
		require.Len(t, evs, 3)
		for i, want := range []queue.Policy{fullPolicy, next, {}} {
			p, err := queue.ParsePolicy(evs[i].Policy)
			require.NoError(t, err)
			require.Equal(t, want, p, "policy event %d", i)
		}
	})
}

// TestSetPolicyKeepsBarrier: changing the policy of a room in use keeps
// its members, backlog and message in flight, and its subscribers read
// the policy event without an error.
func TestSetPolicyKeepsBarrier(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "policy-live"
		a := join(t, ctx, q, room)
		first := send(t, ctx, q, room, "one")
		second := send(t, ctx, q, room, "two")
		before := view(t, ctx, q, room)
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{MaxPending: 5}))
		require.Equal(t, before, view(t, ctx, q, room))
		for _, id := range []uint64{first, second} {
			m := next(t, ctx, a)
			require.Equal(t, id, m.ID)
			require.NoError(t, m.Ack(ctx))
		}
		require.Zero(t, q.Stats().Invalid, "the policy event is a known event")
	})
}

// errorsAsRoomFull is errors.As for *queue.RoomFullError.
func errorsAsRoomFull(err error) (*queue.RoomFullError, bool) {
	var rf *queue.RoomFullError
	ok := errors.As(err, &rf)
	return rf, ok
}

// pendingIDs lists a room's pending message IDs in release order.
func pendingIDs(t *testing.T, ctx context.Context, q *queue.Queue, room string) []uint64 {
	t.Helper()
	ps, err := q.Peek(ctx, room, 0, 100)
	require.NoError(t, err)
	var ids []uint64
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return ids
}

// TestMaxPendingReject (project rule 23, "Backlog limit: Reject"): with
// MaxPending and Overflow Reject, a send that would take the backlog
// beyond the limit returns a *RoomFullError (errors.Is ErrRoomFull) with
// the limit, and writes nothing; a batch is refused whole. Once the
// backlog shrinks, sends go through again.
func TestMaxPendingReject(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "full-reject"
		a := join(t, ctx, q, room)
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{MaxPending: 3}))
		first := send(t, ctx, q, room, "in flight")
		for i := range 3 {
			send(t, ctx, q, room, fmt.Sprint("pending ", i))
		}
		snapshot := snapshotter(t, ctx, b)
		before := snapshot()
		_, err := q.Send(ctx, room, "one too many")
		require.ErrorIs(t, err, queue.ErrRoomFull)
		rf, ok := errorsAsRoomFull(err)
		require.True(t, ok, "%v is a *RoomFullError", err)
		require.Equal(t, queue.RoomFullError{Room: room, MaxPending: 3, Pending: 3, Sent: 1}, *rf)
		require.Equal(t, before, snapshot(), "a refused send writes nothing")

		m := next(t, ctx, a)
		require.Equal(t, first, m.ID)
		require.NoError(t, m.Ack(ctx)) // releases one: 2 pending
		_, err = q.SendBatch(ctx, room, []any{"x", "y"})
		require.ErrorIs(t, err, queue.ErrRoomFull, "2 pending + 2 > 3: the whole batch is refused")
		rf, _ = errorsAsRoomFull(err)
		require.Equal(t, 2, rf.Sent)
		st := roomState(t, ctx, q, room)
		require.Equal(t, 2, st.Pending)
		require.Equal(t, first+3, st.LastSeq, "no ID was used by the refused sends")
		id := send(t, ctx, q, room, "fits")
		require.Equal(t, first+4, id)
		require.Empty(t, ofType(history(t, ctx, q, room), streams.Dropped))
	})
}

// TestMaxPendingDropOldest (project rule 24, "Backlog limit: dropping"):
// with Overflow DropOldest, a send beyond MaxPending is enqueued and the
// pending messages with the lowest IDs, whatever their priority, are
// dropped until the backlog fits, each recorded as a drop event and
// counted.
func TestMaxPendingDropOldest(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "full-drop-oldest"
		join(t, ctx, q, room)
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{MaxPending: 2, Overflow: queue.DropOldest}))
		send(t, ctx, q, room, "in flight")
		m2 := send(t, ctx, q, room, "m2", queue.Priority(5), queue.Producer("p2"))
		m3 := send(t, ctx, q, room, "m3", queue.Priority(1))
		m4 := send(t, ctx, q, room, "m4", queue.Priority(5))
		require.Equal(t, []uint64{m3, m4}, pendingIDs(t, ctx, q, room), "m2 was the oldest")
		ids, err := q.SendBatch(ctx, room, []any{"m5", "m6", "m7"}, queue.Priority(7))
		require.NoError(t, err)
		require.Equal(t, ids[1:], pendingIDs(t, ctx, q, room), "m3, m4 and the batch's own first were the oldest")

		drops := ofType(history(t, ctx, q, room), streams.Dropped)
		require.Len(t, drops, 4)
		for i, want := range []uint64{m2, m3, m4, ids[0]} {
			require.Equal(t, want, drops[i].MessageID)
			require.Equal(t, "drop-oldest", drops[i].Reason)
		}
		require.Equal(t, "p2", drops[0].Producer)
		require.Equal(t, 5, drops[0].Priority)
		require.Equal(t, 1, drops[1].Priority)
		require.Positive(t, drops[0].Size)
		require.False(t, drops[0].Enqueued.IsZero())
		require.EqualValues(t, 4, q.Stats().Dropped)
		m, err := q.Metrics(ctx, 0)
		require.NoError(t, err)
		require.EqualValues(t, 4, m.Dropped)
		require.EqualValues(t, 2, m.Backlog, "the backlog counts what is left")
		require.Equal(t, 2, roomState(t, ctx, q, room).Pending)
	})
}

// TestMaxPendingDropLowestPriority (project rule 24): with Overflow
// DropLowestPriority, the message dropped is the one that would be
// released last: the newest of the lowest priority present, which may be
// the one just sent.
func TestMaxPendingDropLowestPriority(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "full-drop-lowest"
		join(t, ctx, q, room)
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{MaxPending: 2, Overflow: queue.DropLowestPriority}))
		send(t, ctx, q, room, "in flight")
		m2 := send(t, ctx, q, room, "m2", queue.Priority(5))
		m3 := send(t, ctx, q, room, "m3", queue.Priority(1))
		m4 := send(t, ctx, q, room, "m4", queue.Priority(5))
		require.Equal(t, []uint64{m3, m2}, pendingIDs(t, ctx, q, room), "m4, newest of priority 5, went")
		m5 := send(t, ctx, q, room, "m5", queue.Priority(9))
		require.Equal(t, []uint64{m3, m2}, pendingIDs(t, ctx, q, room), "m5 itself was the lowest")
		m6 := send(t, ctx, q, room, "m6", queue.Priority(0))
		require.Equal(t, []uint64{m6, m3}, pendingIDs(t, ctx, q, room), "then m2")

		drops := ofType(history(t, ctx, q, room), streams.Dropped)
		require.Len(t, drops, 3)
		for i, want := range []uint64{m4, m5, m2} {
			require.Equal(t, want, drops[i].MessageID)
			require.Equal(t, "drop-lowest-priority", drops[i].Reason)
		}
		require.Equal(t, 9, drops[1].Priority)
		require.EqualValues(t, 3, q.Stats().Dropped)
	})
}

// TestRoomMaxPayload (project rule 25, "Per-room payload limit"): a
// room's MaxPayloadBytes refuses larger payloads of Send, SendBatch and
// SendOutOfBand with ErrPayloadTooLarge, writing nothing; other rooms keep
// the Queue's limit.
func TestRoomMaxPayload(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "small-payloads"
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{MaxPayloadBytes: 10}))
		send(t, ctx, q, room, []byte("0123456789"))
		// Headers do not count, as for Options.MaxPayloadBytes.
		send(t, ctx, q, room, []byte("0123456789"), queue.Header("k", strings.Repeat("v", 50)))
		sendOOB(t, ctx, q, room, []byte("0123456789"), queue.Header("k", strings.Repeat("v", 50)))
		snapshot := snapshotter(t, ctx, b)
		before := snapshot()
		big := []byte("0123456789a")
		_, err := q.Send(ctx, room, big)
		require.ErrorIs(t, err, queue.ErrPayloadTooLarge)
		require.Contains(t, err.Error(), "limit 10")
		_, err = q.SendBatch(ctx, room, []any{[]byte("ok"), big})
		require.ErrorIs(t, err, queue.ErrPayloadTooLarge)
		require.Contains(t, err.Error(), "message 1")
		_, err = q.SendOutOfBand(ctx, room, big)
		require.ErrorIs(t, err, queue.ErrPayloadTooLarge)
		require.Equal(t, before, snapshot(), "refused payloads write nothing")
		send(t, ctx, q, "other-room", big)
	})
}

// TestAckDeadline (project rule 26, "Per-message ack deadline"): a message
// sent with AckDeadline has that ack timeout instead of the Queue's (here
// none); with the default straggler policy, members that did not ack it by
// then are evicted (reason ack-timeout). Messages without it keep the
// Queue's. A bad deadline is an ErrInvalidOption and sends nothing.
func TestAckDeadline(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, fast(queue.Options{})).q
		const room = "ack-deadline"
		a := join(t, ctx, q, room)
		slow := join(t, ctx, q, room)

		_, err := q.Send(ctx, room, "x", queue.AckDeadline(time.Millisecond))
		require.ErrorIs(t, err, queue.ErrInvalidOption)
		require.Zero(t, roomState(t, ctx, q, room).LastSeq)

		plain := send(t, ctx, q, room, "no deadline")
		st := roomState(t, ctx, q, room)
		require.True(t, st.InFlight.AckDeadline.IsZero(), "no AckTimeout, no AckDeadline: no deadline")
		// a must get and ack it in time, also on a loaded machine.
		const deadline = 2 * time.Second
		timed := send(t, ctx, q, room, "timed", queue.AckDeadline(deadline))
		for _, s := range []*queue.Subscription{a, slow} {
			m := next(t, ctx, s)
			require.Equal(t, plain, m.ID)
			require.NoError(t, m.Ack(ctx))
		}
		m := next(t, ctx, a)
		require.Equal(t, timed, m.ID)
		st = roomState(t, ctx, q, room)
		require.Equal(t, timed, st.InFlight.Seq)
		require.Equal(t, deadline, st.InFlight.AckDeadline.Sub(st.InFlight.ReleasedAt))
		require.NoError(t, m.Ack(ctx))
		ev := waitEvent(t, ctx, q, room, isClientEvent(streams.Evict, slow.ClientID()))
		require.Equal(t, "ack-timeout", ev.Reason)
		require.Nil(t, roomState(t, ctx, q, room).InFlight, "the message completed without the evicted member")
	})
}

// TestStragglerSkip (project rule 27, "Straggler policy"): with
// Straggler Skip, the members that did not ack a message by its ack
// deadline (AckDeadline, or Options.AckTimeout) are not evicted: the
// message completes without them, a skip event names each, and they stay
// members, receive the next messages and ack them; their late ack of the
// skipped message is stale.
func TestStragglerSkip(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		for _, tc := range []struct {
			name string
			opts queue.Options
			send []queue.SendOption
		}{
			// Long enough for a to ack the first message in time on a
			// loaded machine (with 300ms it could be skipped too).
			{"AckDeadline", queue.Options{}, []queue.SendOption{queue.AckDeadline(2 * time.Second)}},
			// Long enough for the members to ack the next message in time.
			{"AckTimeout", queue.Options{AckTimeout: 2 * time.Second}, nil},
		} {
			ctx := testContext(t)
			q := setup(t, b, fast(tc.opts)).q
			room := "straggler-skip-" + tc.name
			a := join(t, ctx, q, room)
			slow := join(t, ctx, q, room)
			require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{Straggler: queue.Skip}))
			first := send(t, ctx, q, room, "first", tc.send...)
			second := send(t, ctx, q, room, "second")
			m := next(t, ctx, a)
			require.Equal(t, first, m.ID)
			require.NoError(t, m.Ack(ctx))

			ev := waitEvent(t, ctx, q, room, func(ev streams.Event) bool { return ev.Type == streams.Skipped })
			require.Equal(t, slow.ClientID(), ev.ClientID, tc.name)
			require.Equal(t, first, ev.MessageID)
			require.Equal(t, "ack-deadline", ev.Reason)

			late := next(t, ctx, slow)
			require.Equal(t, first, late.ID, "the straggler still gets what it was sent")
			require.ErrorIs(t, late.Ack(ctx), queue.ErrStaleAck, "the message completed without it")
			for _, s := range []*queue.Subscription{a, slow} {
				m := next(t, ctx, s)
				require.Equal(t, second, m.ID)
				require.NoError(t, m.Ack(ctx))
			}
			st := roomState(t, ctx, q, room)
			require.Len(t, st.Members, 2, "nobody was evicted")
			require.Nil(t, st.InFlight)
			require.Empty(t, ofType(history(t, ctx, q, room), streams.Evict), tc.name)
		}
		mt, err := setup(t, b, queue.Options{}).q.Metrics(testContext(t), 0)
		require.NoError(t, err)
		require.EqualValues(t, 2, mt.Skipped)
	})
}

// TestAckDeadlineLeavesNothing (project rule 26): the per-message deadline
// kept for a pending message goes when the message is released (to
// members or into an empty room), dropped, or purged by an operator.
func TestAckDeadlineLeavesNothing(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{NumShards: defaultNumShards}).q
		meta := func(room string) map[string]string {
			t.Helper()
			m, err := b.Client.HGetAll(ctx, layoutOf(t, b, 0).RoomKeys(room)[0]).Result()
			require.NoError(t, err)
			return m
		}
		deadlineFields := func(m map[string]string) (n int) {
			for f := range m {
				if f == "dn" || strings.HasPrefix(f, "d:") {
					n++
				}
			}
			return n
		}

		send(t, ctx, q, "empty", "x", queue.AckDeadline(time.Minute))
		require.Zero(t, deadlineFields(meta("empty")), "released into an empty room at once")

		const room = "deadline-fields"
		a := join(t, ctx, q, room)
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{MaxPending: 1, Overflow: queue.DropOldest}))
		first := send(t, ctx, q, room, "in flight", queue.AckDeadline(time.Minute))
		_, err := q.SendBatch(ctx, room, []any{"dropped", "kept"}, queue.AckDeadline(time.Minute))
		require.NoError(t, err)
		m := meta(room)
		require.Equal(t, "1", m["dn"], "one pending message keeps its deadline: %v", m)
		require.Equal(t, 2, deadlineFields(m))
		for range 2 {
			msg := next(t, ctx, a)
			require.NotEqual(t, first+1, msg.ID, "the dropped one never comes")
			require.NoError(t, msg.Ack(ctx))
		}
		require.Zero(t, deadlineFields(meta(room)))

		// Purged by an operator: gone once nothing is pending.
		held := send(t, ctx, q, room, "in flight")
		send(t, ctx, q, room, "purged", queue.AckDeadline(time.Minute))
		require.Equal(t, 2, deadlineFields(meta(room)))
		n, err := q.Admin("ops").Purge(ctx, room, queue.PurgeFilter{}, "test")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Zero(t, deadlineFields(meta(room)))
		require.Equal(t, held, next(t, ctx, a).ID)
	})
}

// TestMaxPendingDropBounded (project rule 24): one send drops at most 1000
// messages more than it carries, so a limit lowered far below a room's
// backlog shrinks it over the next sends instead of blocking Redis.
func TestMaxPendingDropBounded(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{HoldWhenEmpty: true}).q
		const room = "drop-bounded"
		batch := make([]any, 1000)
		for i := range batch {
			batch[i] = []byte("x")
		}
		for range 2 {
			_, err := q.SendBatch(ctx, room, batch)
			require.NoError(t, err)
		}
		require.NoError(t, q.SetPolicy(ctx, room, queue.Policy{MaxPending: 3, Overflow: queue.DropOldest}))
		require.Equal(t, 2000, roomState(t, ctx, q, room).Pending, "a lower limit drops nothing by itself")
		send(t, ctx, q, room, []byte("y"))
		require.Equal(t, 2001-1001, roomState(t, ctx, q, room).Pending)
		send(t, ctx, q, room, []byte("z"))
		require.Equal(t, 3, roomState(t, ctx, q, room).Pending)
		require.EqualValues(t, 1999, q.Stats().Dropped)
	})
}
