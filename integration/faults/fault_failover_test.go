package faults_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// waitCalls returns how many WAIT commands a server ran.
func waitCalls(ctx context.Context, t *testing.T, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(ctx, "commandstats").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_wait:calls="); ok {
			n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			require.NoError(t, err)
			return n
		}
	}
	return 0
}

// waitReplicaSynced returns once a write to master reached a replica.
func waitReplicaSynced(ctx context.Context, t *testing.T, master *redis.Client) {
	t.Helper()
	for {
		require.NoError(t, master.Set(ctx, "faults:sync", "1", 0).Err())
		n, err := master.Do(ctx, "wait", 1, 200).Int64()
		require.NoError(t, err)
		if n >= 1 {
			return
		}
		require.NoError(t, ctx.Err(), "the replica never synced")
	}
}

// TestWaitReplicas tests Options.WaitReplicas on a master with one
// replica: each state change is followed by a WAIT on the master that ran
// it, so what a call reported done is on the replica when it returns; with
// the replica down, calls fail with ErrNotReplicated after WaitTimeout
// (the change itself was applied by the master).
func TestWaitReplicas(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	master := redistest.NewServer(t, redistest.ServerOptions{})
	host, port, err := net.SplitHostPort(master.Addr())
	require.NoError(t, err)
	replica := redistest.NewServer(t, redistest.ServerOptions{Args: []string{"--replicaof", host, port}})
	mc, rc := master.Client(t), replica.Client(t)
	waitReplicaSynced(ctx, t, mc)

	const prefix, room = "wait", "room"
	const waitTimeout = 300 * time.Millisecond
	q := newQueue(t, mc, queue.Options{Prefix: prefix, ClientTimeout: 10 * time.Second, WaitReplicas: 1, WaitTimeout: waitTimeout})
	l, err := keys.New(prefix, 16)
	require.NoError(t, err)
	meta := l.Meta(room)

	calls := waitCalls(ctx, t, mc)
	sub, err := q.Join(ctx, room)
	require.NoError(t, err)
	for i := range 3 {
		id, err := q.Send(ctx, room, payload(0, i, 1))
		require.NoError(t, err)
		// WAIT returned 1: the replica has the send already.
		seq, err := rc.HGet(ctx, meta, "seq").Uint64()
		require.NoError(t, err)
		require.Equal(t, id, seq, "the replica must hold what Send reported")
	}
	for range 3 {
		m, err := sub.Next(ctx)
		require.NoError(t, err)
		require.NoError(t, m.Ack(ctx))
	}
	require.NoError(t, q.Ping(ctx, sub.ClientID()))
	// Join (script + room set), 3 sends, 3 acks and the ping's heartbeat at
	// least; background heartbeats may add more.
	require.GreaterOrEqual(t, waitCalls(ctx, t, mc)-calls, 9)
	st, err := q.RoomState(ctx, room) // read-only scripts do not WAIT
	require.NoError(t, err)
	require.Nil(t, st.InFlight)

	require.NoError(t, replica.Stop())
	began := time.Now()
	id, err := q.Send(ctx, room, payload(0, 3, 1))
	took := time.Since(began)
	require.ErrorIs(t, err, queue.ErrNotReplicated)
	require.Zero(t, id)
	require.GreaterOrEqual(t, took, waitTimeout, "WAIT must have waited")
	// The master applied it: the message is delivered.
	m, err := sub.Next(ctx)
	require.NoError(t, err)
	require.ErrorIs(t, m.Ack(ctx), queue.ErrNotReplicated)

	require.NoError(t, replica.Restart())
	waitReplicaSynced(ctx, t, mc)
	_, err = q.Send(ctx, room, payload(0, 4, 1))
	require.NoError(t, err)
	m, err = sub.Next(ctx)
	require.NoError(t, err)
	require.NoError(t, m.Ack(ctx))
	require.NoError(t, sub.Close(ctx))
	t.Logf("WaitReplicas=1: %d WAITs; with the replica down a Send returned ErrNotReplicated after %v", waitCalls(ctx, t, mc)-calls, took.Round(time.Millisecond))
}

// TestClusterFailover is F5: the master holding a room is killed on a
// cluster with one replica per master, the replica is promoted, and the
// clients follow the new topology: the in-flight message, the backlog and
// the members are still there and delivery continues, nothing lost or
// repeated. The Queue uses WaitReplicas=1, so everything it reported done
// was on the replica before the kill; docs/security.md describes the loss
// window without it.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cl := redistest.NewCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	const prefix, room = "failover", "room"
	logger, _ := newQuietLogger()
	q := newQueue(t, cl.Client(t), queue.Options{Prefix: prefix, ClientTimeout: 20 * time.Second, WaitReplicas: 1, Logger: logger})
	rec := newRecorder()
	a, err := q.Join(ctx, room)
	require.NoError(t, err)
	b, err := q.Join(ctx, room)
	require.NoError(t, err)
	subs := map[string]*queue.Subscription{"a": a, "b": b}
	var sent []uint64
	for i := range 20 {
		id, err := q.Send(ctx, room, payload(0, i, i%3))
		require.NoError(t, err)
		sent = append(sent, id)
	}
	var order []uint64
	var held map[string]*queue.Message
	for round := range 11 {
		held = lockstepRound(ctx, t, rec, subs, round < 10)
		order = append(order, held["a"].ID)
	}

	master, err := cl.MasterForSlot(ctx, roomSlot(t, prefix, room))
	require.NoError(t, err)
	require.NoError(t, master.Kill())
	killed := time.Now()
	require.NoError(t, cl.WaitHealthy(ctx))
	promoted := time.Since(killed)
	// The old master comes back as the new master's replica, so WAIT can
	// be satisfied again.
	require.NoError(t, master.Restart())
	require.NoError(t, cl.WaitHealthy(ctx))

	st, err := q.RoomState(ctx, room)
	require.NoError(t, err)
	require.NotNil(t, st.InFlight, "the in-flight message must survive the failover")
	require.Equal(t, held["a"].ID, st.InFlight.Seq)
	require.Equal(t, 9, st.Pending)
	require.Len(t, st.Members, 2)

	// Ack the held message (retrying while the client finds the new
	// master), then the rest in lock-step, then messages sent afterwards.
	for name, m := range held {
		rec.ackStarted(name, m.ID)
		require.NoError(t, retry(ctx, func() error { return m.Ack(ctx) }))
	}
	first := lockstepRound(ctx, t, rec, subs, true)
	resumed := time.Since(killed)
	order = append(order, first["a"].ID)
	for range 8 {
		order = append(order, lockstepRound(ctx, t, rec, subs, true)["a"].ID)
	}
	for i := range 5 {
		id, err := q.Send(ctx, room, payload(1, i, 0))
		require.NoError(t, err)
		sent = append(sent, id)
		order = append(order, lockstepRound(ctx, t, rec, subs, true)["a"].ID)
	}
	require.ElementsMatch(t, sent, order)
	rp, problems := rec.check([]string{"a", "b"}, order)
	require.Empty(t, problems)
	require.Equal(t, report{Messages: len(sent)}, rp)
	require.Zero(t, q.Stats().Reset, "nothing the readers had read may be lost with WaitReplicas")
	t.Logf("F5: replica promoted %v after kill -9 of the room's master; delivery resumed %v after the kill; %s",
		promoted.Round(time.Millisecond), resumed.Round(time.Millisecond), rp)
	require.NoError(t, a.Close(ctx))
	require.NoError(t, b.Close(ctx))
}
