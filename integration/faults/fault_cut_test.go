package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestConnectionCut is F4: one subscriber's every connection to Redis goes
// through proxies that the test cuts.
//
//   - Cut for less than ClientTimeout: it stays a member, resumes reading
//     from its last stream ID and misses nothing (out-of-band messages sent
//     during the cut included); the other member waits for its ack.
//   - Cut for twice ClientTimeout: it is evicted, the room goes on without
//     it, and once the network is back it is told (ErrEvicted); joining
//     again works.
func TestConnectionCut(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		const room = "cut-room"
		const clientTimeout = 3 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		opts := queue.Options{Prefix: b.Prefix, ClientTimeout: clientTimeout, HeartbeatInterval: 400 * time.Millisecond}
		direct := newQueue(t, b.Client, opts)
		pc, proxies := proxiedClient(t, b)
		cutOff := newQueue(t, pc, opts)
		cut := func() {
			for _, p := range proxies {
				p.Cut()
			}
		}
		heal := func() {
			for _, p := range proxies {
				p.Heal()
			}
		}

		rec := newRecorder()
		cs, err := cutOff.Join(ctx, room)
		require.NoError(t, err)
		ds, err := direct.Join(ctx, room)
		require.NoError(t, err)
		cm := startMember(t, "cut", cs, rec)
		dm := startMember(t, "direct", ds, rec)
		var sent []uint64
		send := func(i int) uint64 {
			id, err := direct.Send(ctx, room, payload(0, i, queue.DefaultPriority))
			require.NoError(t, err)
			sent = append(sent, id)
			return id
		}
		for i := range 2 {
			id := send(i)
			require.Equal(t, id, cm.next(ctx, t).ID)
			require.Equal(t, id, dm.next(ctx, t).ID)
		}

		// Short cut: 1s, a third of ClientTimeout.
		cut()
		var oob []uint64
		for i := range 3 {
			send(2 + i)
			id, err := direct.SendOutOfBand(ctx, room, payload(1, i, 0))
			require.NoError(t, err)
			oob = append(oob, id)
		}
		time.Sleep(time.Second) // the outage itself
		heal()
		healed := time.Now()
		collect(ctx, t, cm, sent[2:], oob)
		caughtUp := time.Since(healed)
		collect(ctx, t, dm, sent[2:], oob)
		st, err := direct.RoomState(ctx, room)
		require.NoError(t, err)
		require.Len(t, st.Members, 2, "a short cut must not evict")
		rp, problems := rec.check([]string{"cut", "direct"}, sent)
		require.Empty(t, problems)
		require.Equal(t, report{Messages: len(sent)}, rp)
		t.Logf("F4 %s: cut 1s < ClientTimeout %v: caught up %v after the heal, the %d out-of-band messages of the cut received; %s",
			b.Name, clientTimeout, caughtUp.Round(time.Millisecond), len(oob), rp)

		// Long cut: twice ClientTimeout.
		cut()
		cutAt := time.Now()
		var during []uint64
		for i := range 3 {
			id, err := direct.Send(ctx, room, payload(2, i, queue.DefaultPriority))
			require.NoError(t, err)
			during = append(during, id)
		}
		for _, id := range during {
			require.Equal(t, id, dm.next(ctx, t).ID)
		}
		proceeded := time.Since(cutAt)
		time.Sleep(time.Until(cutAt.Add(2 * clientTimeout))) // the outage itself
		heal()
		require.ErrorIs(t, cm.ended(ctx, t), queue.ErrEvicted)
		told := time.Since(cutAt)
		rp2, problems := rec.check([]string{"direct"}, append(append([]uint64(nil), sent...), during...))
		require.Empty(t, problems)
		require.Equal(t, report{Messages: len(sent) + len(during)}, rp2)

		// Joining again works.
		cs2, err := cutOff.Join(ctx, room)
		require.NoError(t, err)
		cm2 := startMember(t, "cut again", cs2, rec)
		var after []uint64
		for i := range 3 {
			id, err := direct.Send(ctx, room, payload(3, i, queue.DefaultPriority))
			require.NoError(t, err)
			after = append(after, id)
		}
		for _, id := range after {
			require.Equal(t, id, cm2.next(ctx, t).ID)
			require.Equal(t, id, dm.next(ctx, t).ID)
		}
		rp3, problems := rec.check([]string{"cut again", "direct"}, after)
		require.Empty(t, problems)
		require.Equal(t, report{Messages: len(after)}, rp3)
		t.Logf("F4 %s: cut %v = 2x ClientTimeout: the room went on without it after %v (%s for the member that stayed), it was told ErrEvicted %v after the cut; rejoined: %s",
			b.Name, 2*clientTimeout, proceeded.Round(time.Millisecond), rp2, told.Round(time.Millisecond), rp3)
		cm2.stop()
		dm.stop()
	})
}

// collect receives, in any interleaving, the queued messages want and the
// out-of-band messages oob, each sequence in its order.
func collect(ctx context.Context, t *testing.T, m *member, want, oob []uint64) {
	t.Helper()
	var gotQueued, gotOOB []uint64
	for len(gotQueued) < len(want) || len(gotOOB) < len(oob) {
		msg := m.next(ctx, t)
		if msg.OutOfBand {
			gotOOB = append(gotOOB, msg.ID)
		} else {
			gotQueued = append(gotQueued, msg.ID)
		}
	}
	require.Equal(t, want, gotQueued, "queued messages received by %s", m.name)
	require.Equal(t, oob, gotOOB, "out-of-band messages received by %s", m.name)
}
