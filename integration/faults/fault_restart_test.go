package faults_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// restartTarget is a private Redis deployment whose node holding the test
// room can be killed and started again, with or without its data.
type restartTarget struct {
	name    string
	rdb     redis.UniversalClient
	dials   *atomic.Int64                   // connection attempts of rdb and of every client derived from it
	cmds    *atomic.Int64                   // commands sent through rdb
	kill    func(t *testing.T, room string) // kills the node holding room
	restart func(t *testing.T, wipe bool)   // restarts the killed node
}

// countingDialer counts every connection attempt, failed or not.
func countingDialer(n *atomic.Int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return d.DialContext(ctx, network, addr)
	}
}

// countingHook counts the commands (pipelined ones included) sent through
// a client, so a retry loop without backoff would show.
type countingHook struct{ n *atomic.Int64 }

func (h countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// wipeAOF removes a stopped server's append-only files: its next start
// finds no data, exactly like a restart without persistence.
func wipeAOF(t *testing.T, s *redistest.Server) {
	t.Helper()
	require.False(t, s.Running())
	require.NoError(t, os.RemoveAll(filepath.Join(s.Dir(), "appendonlydir")))
}

func standaloneTarget(t *testing.T) *restartTarget {
	srv := redistest.NewServer(t, redistest.ServerOptions{AOF: true})
	tg := &restartTarget{name: "standalone", dials: new(atomic.Int64), cmds: new(atomic.Int64)}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Dialer: countingDialer(tg.dials)})
	c.AddHook(countingHook{tg.cmds})
	t.Cleanup(func() { _ = c.Close() })
	tg.rdb = c
	tg.kill = func(t *testing.T, _ string) { require.NoError(t, srv.Kill()) }
	tg.restart = func(t *testing.T, wipe bool) {
		if wipe {
			wipeAOF(t, srv)
		}
		require.NoError(t, srv.Restart())
	}
	return tg
}

func clusterTarget(t *testing.T, prefix string) *restartTarget {
	cl := redistest.NewCluster(t, redistest.ClusterOptions{Masters: 3, Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	tg := &restartTarget{name: "cluster", dials: new(atomic.Int64), cmds: new(atomic.Int64)}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), Dialer: countingDialer(tg.dials)})
	c.AddHook(countingHook{tg.cmds})
	t.Cleanup(func() { _ = c.Close() })
	tg.rdb = c
	var node *redistest.Server
	tg.kill = func(t *testing.T, room string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		node, err = cl.MasterForSlot(ctx, roomSlot(t, prefix, room))
		require.NoError(t, err)
		require.NoError(t, node.Kill())
	}
	tg.restart = func(t *testing.T, wipe bool) {
		if wipe {
			wipeAOF(t, node)
		}
		require.NoError(t, node.Restart())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, cl.WaitHealthy(ctx))
	}
	return tg
}

// TestRedisRestart covers F3 then F2 on a private standalone server and on
// a private 3-master cluster, both with AOF (appendfsync always):
//
//   - F3: the node holding the room is killed (kill -9) and restarted with
//     its AOF: the queue, the members, the in-flight message and the stream
//     survive and delivery continues where it stopped, nothing lost or
//     delivered twice.
//   - F2: the node is killed and restarted without its data (its AOF
//     removed, which is a restart without persistence): the subscriptions
//     end with ErrRoomReset, an ack token from before is refused with
//     ErrRoomReset, the client library does not busy-loop while Redis is
//     down, and subscribing again gives normal service.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	for _, name := range []string{redistest.NameStandalone, redistest.NameCluster} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const prefix, room = "faults", "restart-room"
			var tg *restartTarget
			if name == redistest.NameCluster {
				tg = clusterTarget(t, prefix)
			} else {
				tg = standaloneTarget(t)
			}
			logger, logs := newQuietLogger()
			opts := queue.Options{Prefix: prefix, ClientTimeout: 5 * time.Second, Logger: logger}
			q := newQueue(t, tg.rdb, opts)
			t.Run("F3 restart with AOF", func(t *testing.T) { testRestartWithAOF(t, tg, q, room) })
			t.Run("F2 restart without data", func(t *testing.T) { testRestartWithoutData(t, tg, q, logs, room+"-2") })
		})
	}
}

func testRestartWithAOF(t *testing.T, tg *restartTarget, q *queue.Queue, room string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rec := newRecorder()
	a, err := q.Join(ctx, room)
	require.NoError(t, err)
	b, err := q.Join(ctx, room)
	require.NoError(t, err)
	subs := map[string]*queue.Subscription{"a": a, "b": b}
	var sent []uint64
	for i := range 10 {
		id, err := q.Send(ctx, room, payload(0, i, queue.DefaultPriority))
		require.NoError(t, err)
		sent = append(sent, id)
	}
	// Four lock-step rounds, then the fifth message is delivered and not acked.
	var held map[string]*queue.Message
	for round := range 5 {
		held = lockstepRound(ctx, t, rec, subs, round < 4)
	}
	before, err := q.RoomState(ctx, room)
	require.NoError(t, err)
	require.NotNil(t, before.InFlight)
	require.Equal(t, sent[4], before.InFlight.Seq)
	require.Equal(t, 5, before.Pending)

	tg.kill(t, room)
	tg.restart(t, false)
	restarted := time.Now()

	var after queue.RoomState
	require.NoError(t, retry(ctx, func() error { after, err = q.RoomState(ctx, room); return err }))
	require.NotNil(t, after.InFlight, "the in-flight message must survive")
	require.Equal(t, before.InFlight.Seq, after.InFlight.Seq)
	require.Equal(t, before.InFlight.StreamID, after.InFlight.StreamID)
	require.Equal(t, before.Pending, after.Pending)
	require.Equal(t, before.Epoch, after.Epoch)
	require.Equal(t, before.StreamLen, after.StreamLen)
	require.Equal(t, memberIDs(before), memberIDs(after))

	// Delivery continues where it stopped: ack the held message, then the
	// remaining five in lock-step.
	for name, m := range held {
		rec.ackStarted(name, m.ID)
		require.NoError(t, retry(ctx, func() error { return m.Ack(ctx) }))
	}
	first := lockstepRound(ctx, t, rec, subs, true)
	resumed := time.Since(restarted)
	require.Equal(t, sent[5], first["a"].ID)
	for range 4 {
		lockstepRound(ctx, t, rec, subs, true)
	}
	rp, problems := rec.check([]string{"a", "b"}, sent)
	require.Empty(t, problems)
	require.Equal(t, report{Messages: 10}, rp)
	t.Logf("F3 %s: in-flight message, %d pending, %d members and the stream survived; delivery resumed %v after the restart; %s",
		tg.name, after.Pending, len(after.Members), resumed.Round(time.Millisecond), rp)
	require.NoError(t, a.Close(ctx))
	require.NoError(t, b.Close(ctx))
}

func testRestartWithoutData(t *testing.T, tg *restartTarget, q *queue.Queue, logs *quietLogger, room string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rec := newRecorder()
	a, err := q.Join(ctx, room)
	require.NoError(t, err)
	b, err := q.Join(ctx, room)
	require.NoError(t, err)
	subs := map[string]*queue.Subscription{"a": a, "b": b}
	// A gateway's client in the room too: its worker acks every delivery.
	timeouts := make(chan string, 10)
	gotByWorker := make(chan uint64, 100)
	var w *queue.Worker
	w, err = q.NewWorker(queue.WorkerOptions{
		AutoHeartbeat: true,
		HandleMessage: func(ctx context.Context, c string, m *queue.Message) error {
			gotByWorker <- m.ID
			return w.Ack(ctx, c, m.AckToken)
		},
		HandleClientTimeout: func(_ context.Context, c, r string) error { timeouts <- c + " " + r; return nil },
	})
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Subscribe(ctx, "gateway-client", room))
	for i := range 3 {
		_, err := q.Send(ctx, room, payload(0, i, queue.DefaultPriority))
		require.NoError(t, err)
	}
	lockstepRound(ctx, t, rec, subs, true)
	held := lockstepRound(ctx, t, rec, subs, false)

	tg.kill(t, room)
	// While Redis is down the library retries with backoff: count the
	// connection attempts and commands over a fixed outage.
	const outage = 2 * time.Second
	dials0, cmds0, warns0 := tg.dials.Load(), tg.cmds.Load(), logs.count("syncfanout: stream reader")
	time.Sleep(outage) // the outage itself, not a wait for an event
	dials, cmds := tg.dials.Load()-dials0, tg.cmds.Load()-cmds0
	readerErrs := logs.count("syncfanout: stream reader") - warns0
	perSec := func(n int64) float64 { return float64(n) / outage.Seconds() }
	t.Logf("F2 %s: while Redis was down: %.1f connection attempts/s, %.1f commands/s, %.1f reader retries/s",
		tg.name, perSec(dials), perSec(cmds), perSec(int64(readerErrs)))
	require.Less(t, perSec(dials), 50.0, "connection attempts per second while Redis is down")
	require.Less(t, perSec(cmds), 100.0, "commands per second while Redis is down")
	require.Less(t, perSec(int64(readerErrs)), 25.0, "reader retries per second while Redis is down")

	tg.restart(t, true)
	restarted := time.Now()
	for name, sub := range subs {
		_, err := nextMessage(ctx, sub)
		require.ErrorIs(t, err, queue.ErrRoomReset, "subscription %s", name)
	}
	noticed := time.Since(restarted)
	for _, m := range held {
		err := retry(ctx, func() error { return m.Ack(ctx) })
		require.ErrorIs(t, err, queue.ErrRoomReset, "an ack token from before the reset")
	}
	// The gateway is told through HandleClientTimeout, once.
	select {
	case got := <-timeouts:
		require.Equal(t, "gateway-client "+room, got)
	case <-ctx.Done():
		t.Fatal("the worker's client was not reported")
	}
	require.GreaterOrEqual(t, q.Stats().Reset, uint64(3))
	for len(gotByWorker) > 0 {
		<-gotByWorker
	}

	// Subscribing again gives normal service.
	rec = newRecorder()
	a2, err := q.Join(ctx, room)
	require.NoError(t, err)
	b2, err := q.Join(ctx, room)
	require.NoError(t, err)
	subs = map[string]*queue.Subscription{"a": a2, "b": b2}
	require.NoError(t, w.Subscribe(ctx, "gateway-client", room))
	var sent []uint64
	for i := range 5 {
		id, err := q.Send(ctx, room, payload(1, i, queue.DefaultPriority))
		require.NoError(t, err)
		sent = append(sent, id)
	}
	for range 5 {
		lockstepRound(ctx, t, rec, subs, true)
	}
	for _, id := range sent {
		select {
		case got := <-gotByWorker:
			require.Equal(t, id, got, "the gateway's client after subscribing again")
		case <-ctx.Done():
			t.Fatal("the gateway's client got nothing after subscribing again")
		}
	}
	select {
	case got := <-timeouts:
		t.Fatalf("a second HandleClientTimeout: %s", got)
	default:
	}
	rp, problems := rec.check([]string{"a", "b"}, sent)
	require.Empty(t, problems)
	t.Logf("F2 %s: both subscriptions ended with ErrRoomReset %v after the restart, the worker's client was reported once; after subscribing again %s",
		tg.name, noticed.Round(time.Millisecond), rp)
	require.NoError(t, a2.Close(ctx))
	require.NoError(t, b2.Close(ctx))
}

// lockstepRound receives the next message on every subscription and, when
// ack is set, acks it on all of them; it returns what each received.
func lockstepRound(ctx context.Context, t *testing.T, rec *recorder, subs map[string]*queue.Subscription, ack bool) map[string]*queue.Message {
	t.Helper()
	got := map[string]*queue.Message{}
	for name, sub := range subs {
		m, err := nextMessage(ctx, sub)
		require.NoError(t, err, "subscription %s", name)
		rec.received(name, m)
		got[name] = m
	}
	if ack {
		for name, m := range got {
			rec.ackStarted(name, m.ID)
			err := retry(ctx, func() error { return m.Ack(ctx) })
			require.NoError(t, err, "ack of %d by %s", m.ID, name)
		}
	}
	return got
}

func memberIDs(st queue.RoomState) []string {
	var ids []string
	for _, m := range st.Members {
		ids = append(ids, m.ClientID)
	}
	return ids
}
