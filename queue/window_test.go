package queue_test

// Barrier policies Window and Quorum (docs/semantics.md, project rules
// "window-*" and "quorum-*"): each rule's named test, on both backends.

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// winPolicy is the window/quorum part of a room policy.
type winPolicy struct {
	Window, Quorum, MaxLag int
	QuorumFraction         float64
}

// setWindowPolicy sets a room's window/quorum policy.
func setWindowPolicy(t *testing.T, ctx context.Context, b *redistest.Backend, room string, p winPolicy) {
	t.Helper()
	l, err := keys.New(b.Prefix, 16)
	require.NoError(t, err)
	meta := l.RoomKeys(room)[keys.KMeta-1]
	set := func(f string, v int) {
		if v == 0 {
			require.NoError(t, b.Client.HDel(ctx, meta, f).Err())
		} else {
			require.NoError(t, b.Client.HSet(ctx, meta, f, v).Err())
		}
	}
	set("p:window", p.Window)
	set("p:quorum", p.Quorum)
	set("p:maxlag", p.MaxLag)
	if p.QuorumFraction > 0 {
		require.NoError(t, b.Client.HSet(ctx, meta, "p:qfrac", strconv.FormatFloat(p.QuorumFraction, 'g', -1, 64)).Err())
	} else {
		require.NoError(t, b.Client.HDel(ctx, meta, "p:qfrac").Err())
	}
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
		q := setup(t, b, queue.Options{})
		const room = "win-upto"
		setWindowPolicy(t, ctx, b, room, winPolicy{Window: 3})
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
		q := setup(t, b, queue.Options{})
		const room = "win-cumulative"
		setWindowPolicy(t, ctx, b, room, winPolicy{Window: 4})
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
