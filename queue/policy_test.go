package queue_test

import (
	"context"
	"errors"
	"math"
	"testing"

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

// TestSetPolicyInvalid (project rule 12, "Policies are validated"): every invalid policy
// is an ErrInvalidPolicy and changes nothing in Redis, not even for a room
// that has a policy already.
func TestSetPolicyInvalid(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{})
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

// TestSetPolicy (project rule 11, "Policies live with the room"): a room's policy is stored with
// the room, replaced whole by SetPolicy, the same for every Queue whatever
// its DefaultPolicy, shown by Policy and RoomState, and each change is a
// policy event in the room's stream. A room without one follows the
// reading Queue's DefaultPolicy. Window, Quorum and MaxLag are stored like
// the rest.
func TestSetPolicy(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		def := queue.Policy{MaxPending: 9, Overflow: queue.DropOldest}
		q := setup(t, b, queue.Options{DefaultPolicy: def})
		other := setup(t, b, queue.Options{})
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
		q := setup(t, b, queue.Options{})
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

var _ = context.Background
