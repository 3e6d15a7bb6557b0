package queue_test

// Idle rooms (no members, observers, backlog or message in flight) are
// deleted, history included, IdleRoomTTL after they became idle; their
// streams keep to StreamMaxAge meanwhile; they stay listed until then.
// See docs/semantics.md, project rule "Idle rooms".

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

const (
	idleTTL    = time.Second
	idleShards = 4
	idleRooms  = 240 // churned rooms: a quarter of each kind
)

// idleOptions expire idle rooms and age their streams as fast as the
// options allow.
func idleOptions() queue.Options {
	return queue.Options{
		NumShards: idleShards,
		// Members that die go 2s after their last beat; live ones beat
		// every 100ms, so that a loaded machine's stalls evict none.
		ClientTimeout:        2 * time.Second,
		HeartbeatInterval:    100 * time.Millisecond,
		HousekeepingInterval: 50 * time.Millisecond,
		IdleRoomTTL:          idleTTL,
		StreamMaxAge:         time.Second,
		Logger:               discardLogger,
	}
}

// prefixKeys lists every key under prefix on every master (a test may
// SCAN; the library never does).
func prefixKeys(ctx context.Context, masters func(context.Context, func(context.Context, *redis.Client) error) error, prefix string) ([]string, error) {
	var out []string
	err := masters(ctx, func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			out = append(out, iter.Val())
		}
		return iter.Err()
	})
	return out, err
}

// leftover keeps the keys that are neither deployment-wide (config,
// clientseq) nor a shard's totals (stats, which count expired rooms).
func leftover(keys []string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasSuffix(k, "{global}:config") || strings.HasSuffix(k, "{global}:clientseq") || strings.HasSuffix(k, "}:stats") {
			continue
		}
		out = append(out, k)
	}
	return out
}

// churn runs idleRooms short-lived rooms through q: producers without
// members, in-process members that read, ack and leave, members that die
// (nobody pings them: housekeeping evicts them with a message in flight),
// and observers and members that unsubscribe. Nobody is left at the end.
func churn(t *testing.T, ctx context.Context, q *queue.Queue) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, idleRooms)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < idleRooms; i += 8 {
				if err := churnRoom(ctx, q, i); err != nil {
					errs <- fmt.Errorf("room %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func churnRoom(ctx context.Context, q *queue.Queue, i int) error {
	room := "churn-" + strconv.Itoa(i)
	payload := strings.Repeat("x", 100)
	switch i % 4 {
	case 0: // producers only
		for range 3 {
			if _, err := q.Send(ctx, room, payload); err != nil {
				return err
			}
		}
		_, err := q.SendOutOfBand(ctx, room, payload)
		return err
	case 1: // a member that reads, acks and leaves
		s, err := q.Join(ctx, room)
		if err != nil {
			return err
		}
		for range 2 {
			if _, err := q.Send(ctx, room, payload); err != nil {
				return err
			}
		}
		for range 2 {
			m, err := s.Next(ctx)
			if err != nil {
				return err
			}
			if err := m.Ack(ctx); err != nil {
				return err
			}
		}
		return s.Close(ctx)
	case 2: // a member that dies with a message in flight
		id, err := q.CreateClientID(ctx)
		if err != nil {
			return err
		}
		if err := q.Subscribe(ctx, id, room); err != nil {
			return err
		}
		_, err = q.Send(ctx, room, payload)
		return err
	default: // an observer and a member that unsubscribe
		obs, err := q.CreateClientID(ctx)
		if err != nil {
			return err
		}
		mem, err := q.CreateClientID(ctx)
		if err != nil {
			return err
		}
		if err := q.SubscribeObserver(ctx, obs, room); err != nil {
			return err
		}
		if err := q.Subscribe(ctx, mem, room); err != nil {
			return err
		}
		if _, err := q.Send(ctx, room, payload); err != nil {
			return err
		}
		if err := q.Unsubscribe(ctx, mem, room); err != nil {
			return err
		}
		return q.Unsubscribe(ctx, obs, room)
	}
}

// roomIs reports whether room's state satisfies ok; false on error, so
// it can run inside require.Eventually.
func roomIs(ctx context.Context, q *queue.Queue, room string, ok func(queue.RoomState) bool) bool {
	st, err := q.RoomState(ctx, room)
	return err == nil && ok(st)
}

func gone(st queue.RoomState) bool        { return st.LastSeq == 0 && st.StreamLen == 0 }
func streamEmpty(st queue.RoomState) bool { return st.StreamLen == 0 }

// waitKeys polls the keys under prefix until only deployment-wide keys and
// shard totals are left, and returns them.
func waitKeys(t *testing.T, ctx context.Context, masters func(context.Context, func(context.Context, *redis.Client) error) error, prefix string, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ks, err := prefixKeys(ctx, masters, prefix)
		require.NoError(t, err)
		left := leftover(ks)
		if len(left) == 0 {
			return ks
		}
		if time.Now().After(deadline) {
			sample := left[:min(len(left), 10)]
			t.Fatalf("%d keys of dead rooms and clients still under the prefix after %v, e.g. %q", len(left), within, sample)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIdleRooms_ChurnLeavesNothing: after hundreds of short-lived rooms and
// everyone gone, the keys under the prefix come back to the deployment's
// own (config, clientseq, one stats hash per shard) once the rooms have
// been idle for IdleRoomTTL; every room is counted as expired.
func TestIdleRooms_ChurnLeavesNothing(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, idleOptions()).q
		base, err := prefixKeys(ctx, b.ForEachMaster, b.Prefix)
		require.NoError(t, err)
		require.Len(t, base, 1, "a new deployment holds its config: %q", base)

		churn(t, ctx, q)
		mid, err := prefixKeys(ctx, b.ForEachMaster, b.Prefix)
		require.NoError(t, err)
		end := waitKeys(t, ctx, b.ForEachMaster, b.Prefix, 15*time.Second)
		t.Logf("keys under the prefix: %d before, %d after the churn, %d once idle rooms expired", len(base), len(mid), len(end))
		require.LessOrEqual(t, len(end), len(base)+1+idleShards, "%q", end)

		m, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.Zero(t, m.KnownRooms)
		require.Zero(t, m.IdleRooms)
		require.Empty(t, m.TopRooms)
		require.Zero(t, m.Members)
		require.Zero(t, m.Observers)
		require.EqualValues(t, idleRooms, m.ExpiredRooms)
		// The process's own count follows the last room's deletion a
		// moment later (after its script answers).
		require.Eventually(t, func() bool { return q.Stats().ExpiredRooms >= idleRooms }, 10*time.Second, 10*time.Millisecond)
		require.EqualValues(t, idleRooms, q.Stats().ExpiredRooms)
	})
}

// TestIdleRooms_ChurnMemoryReturns runs the churn on a private server, so
// that used_memory is the deployment's alone: once the rooms expired it is
// back to what it was before, give or take the few keys that stay.
func TestIdleRooms_ChurnMemoryReturns(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	// Redis 7 allocates a latency histogram (tens of KB) per command name
	// on its first use, and the slow log keeps the arguments of up to 128
	// commands slower than 10ms (on a loaded machine, tens of KB): neither
	// is what this test measures.
	srv := redistest.NewServer(t, redistest.ServerOptions{Args: []string{"--latency-tracking", "no", "--slowlog-max-len", "0"}})
	// One connection measures, and sends nothing bigger than SCAN and
	// INFO: the scripts are loaded through another one, whose query
	// buffer (the size of the scripts, freed by the server's cron a while
	// later) would otherwise be in the baseline or not, depending on
	// timing.
	probe := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1})
	t.Cleanup(func() { _ = probe.Close() })
	masters := func(ctx context.Context, fn func(context.Context, *redis.Client) error) error { return fn(ctx, probe) }
	usedMemory := func() int64 {
		info, err := probe.InfoMap(ctx, "memory").Result()
		require.NoError(t, err)
		n, err := strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
		require.NoError(t, err)
		return n
	}
	// The server frees a closed connection's buffers when it notices the
	// close: measure only once the probe is the only client left.
	probeAlone := func(within time.Duration) {
		t.Helper()
		require.Eventually(t, func() bool {
			info, err := probe.InfoMap(ctx, "clients").Result()
			return err == nil && info["Clients"]["connected_clients"] == "1"
		}, within, 20*time.Millisecond, "connections other than the probe's stay open")
	}
	const prefix = "sfmem"
	opts := idleOptions()
	opts.Prefix = prefix
	// The baseline holds what any deployment holds: its config and the
	// scripts.
	loader := srv.Client(t)
	q0, err := queue.New(ctx, loader, opts)
	require.NoError(t, err)
	require.NoError(t, q0.Close())
	for _, s := range []*lua.Script{lua.Send, lua.OOB, lua.Join, lua.Leave, lua.Ack, lua.Heartbeat, lua.Reap, lua.Due, lua.Peek, lua.State, lua.AckBatch} {
		require.NoError(t, s.Eval().Load(ctx, loader).Err())
	}
	require.NoError(t, lua.Load(ctx, loader))
	require.NoError(t, loader.Close())
	probeAlone(10 * time.Second)
	baseKeys, err := prefixKeys(ctx, masters, prefix)
	require.NoError(t, err)
	base := usedMemory()

	rdb := srv.Client(t)
	q, err := queue.New(ctx, rdb, opts)
	require.NoError(t, err)
	churn(t, ctx, q)
	midKeys, err := prefixKeys(ctx, masters, prefix)
	require.NoError(t, err)
	mid := usedMemory()
	end := waitKeys(t, ctx, masters, prefix, 15*time.Second)
	require.NoError(t, q.Close())
	require.NoError(t, rdb.Close())
	probeAlone(10 * time.Second)

	// Redis shrinks its key tables and the probe's reply buffer (grown
	// by the SCANs) in its cron, a little later: a generous deadline, as
	// the cron runs late on a loaded machine.
	const slack = 16 << 10
	var after int64
	for deadline := time.Now().Add(10 * time.Second); ; {
		after = usedMemory()
		if after-base <= slack || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("keys: %d before, %d after the churn, %d once expired; used_memory: %d before, %d after the churn (+%d), %d once expired (%+d)",
		len(baseKeys), len(midKeys), len(end), base, mid, mid-base, after, after-base)
	require.LessOrEqual(t, after-base, int64(slack), "used_memory %d, baseline %d", after, base)
}

// TestIdleRooms_JoinOrSendFirstKeepsRoom: the expiry runs in the room's
// own script, so a send or a join that gets there first keeps the room,
// history, message IDs and epoch included; a send racing the expiry either
// continues the room or starts a new one, never anything in between.
func TestIdleRooms_JoinOrSendFirstKeepsRoom(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		// One shard: housekeeping finds every due room in one list, in
		// deadline order, so once "z-ctl" is gone it has seen the others.
		// A TTL long enough that housekeeping starts well within it after
		// the send below, even on a loaded machine.
		const ttl = 2 * time.Second
		// b-joined's member beats every 100ms against a 2s deadline while
		// hk's housekeeping runs: a stall of the machine does not evict it.
		opts := queue.Options{NumShards: 1, ClientTimeout: 2 * time.Second, HeartbeatInterval: 100 * time.Millisecond, IdleRoomTTL: ttl, DisableHousekeeping: true}
		q := setup(t, b, opts).q
		send(t, ctx, q, "a-sent", "before")
		s := join(t, ctx, q, "b-joined")
		send(t, ctx, q, "b-joined", "before")
		require.NoError(t, next(t, ctx, s).Ack(ctx))
		require.NoError(t, s.Close(ctx))
		time.Sleep(5 * time.Millisecond)
		send(t, ctx, q, "z-ctl", "x")
		epochs := map[string]string{}
		for _, room := range []string{"a-sent", "b-joined"} {
			epochs[room] = roomState(t, ctx, q, room).Epoch
		}
		m, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.EqualValues(t, 3, m.IdleRooms)

		// Their expiry passes while no housekeeping runs; then a send and
		// a join get to two of them before housekeeping does.
		time.Sleep(ttl + 200*time.Millisecond)
		require.EqualValues(t, 2, send(t, ctx, q, "a-sent", "after"))
		member := join(t, ctx, q, "b-joined")

		hopts := opts
		hopts.DisableHousekeeping = false
		hopts.HousekeepingInterval = 20 * time.Millisecond
		hk := setup(t, b, hopts).q
		require.Eventually(t, func() bool { return roomIs(ctx, q, "z-ctl", gone) }, 10*time.Second, 20*time.Millisecond, "the untouched room never expired")
		for room, ids := range map[string][]uint64{"a-sent": {1, 2}, "b-joined": {1}} {
			st := roomState(t, ctx, q, room)
			require.Equal(t, epochs[room], st.Epoch, room)
			require.Equal(t, ids, messageIDs(history(t, ctx, q, room)), room)
		}
		require.Len(t, roomState(t, ctx, q, "b-joined").Members, 1)
		// Housekeeping counts an expiry once the room's script has
		// answered, a moment after the room is gone: wait for the count,
		// then require it exact.
		expiredAtLeast := func(n uint64) func() bool {
			return func() bool { return hk.Stats().ExpiredRooms >= n }
		}
		require.Eventually(t, expiredAtLeast(1), 10*time.Second, 10*time.Millisecond)
		require.EqualValues(t, 1, hk.Stats().ExpiredRooms)

		// Both go IdleRoomTTL after their last event.
		require.NoError(t, member.Close(ctx))
		require.Eventually(t, func() bool {
			return roomIs(ctx, q, "a-sent", gone) && roomIs(ctx, q, "b-joined", gone)
		}, 10*time.Second, 20*time.Millisecond)
		require.Eventually(t, expiredAtLeast(3), 10*time.Second, 10*time.Millisecond)
		require.EqualValues(t, 3, hk.Stats().ExpiredRooms)

		// Sends racing housekeeping around the deadline: each second send
		// either finds the room (ID 2, same epoch, both messages) or a new
		// one (ID 1, new epoch, only itself).
		const racers = 16
		type outcome struct {
			room   string
			epoch  string
			second uint64
		}
		results := make(chan outcome, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				room := fmt.Sprint("race-", i)
				if _, err := q.Send(ctx, room, "first"); err != nil {
					t.Error(err)
					return
				}
				st, err := q.RoomState(ctx, room)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(ttl + time.Duration(rand.IntN(120)-60)*time.Millisecond)
				id, err := q.Send(ctx, room, "second")
				if err != nil {
					t.Error(err)
					return
				}
				results <- outcome{room, st.Epoch, id}
			}()
		}
		wg.Wait()
		close(results)
		// No more expiry while the outcomes are read (q has none).
		require.NoError(t, hk.Close())
		kept := 0
		for r := range results {
			st := roomState(t, ctx, q, r.room)
			var texts []string
			for _, ev := range ofType(history(t, ctx, q, r.room), streams.Message) {
				m, err := queue.MessageFromEvent(ev)
				require.NoError(t, err)
				texts = append(texts, text(t, m))
			}
			switch r.second {
			case 2:
				kept++
				require.Equal(t, r.epoch, st.Epoch, r.room)
				require.Equal(t, []string{"first", "second"}, texts, r.room)
			case 1:
				require.NotEqual(t, r.epoch, st.Epoch, r.room)
				require.Equal(t, []string{"second"}, texts, r.room)
			default:
				t.Fatalf("room %s: second send got ID %d", r.room, r.second)
			}
		}
		t.Logf("racing sends: %d of %d rooms kept, the others expired first", kept, racers)
	})
}

// TestIdleRooms_KeepForever: with IdleRoomTTL set to KeepIdleRooms, idle
// rooms and their history stay (listed as idle, with no expiry), while a
// deployment with a TTL loses its own in the same time.
func TestIdleRooms_KeepForever(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		for _, bad := range []time.Duration{time.Millisecond, 999 * time.Millisecond} {
			_, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, IdleRoomTTL: bad})
			require.ErrorIs(t, err, queue.ErrInvalidOption, "IdleRoomTTL=%v", bad)
		}
		opts := queue.Options{ClientTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond, HousekeepingInterval: 20 * time.Millisecond, IdleRoomTTL: queue.KeepIdleRooms}
		q := setup(t, b, opts).q
		send(t, ctx, q, "kept", "one")
		s := join(t, ctx, q, "kept")
		send(t, ctx, q, "kept", "two")
		require.NoError(t, next(t, ctx, s).Ack(ctx))
		require.NoError(t, s.Close(ctx))
		before := history(t, ctx, q, "kept")

		opts.IdleRoomTTL = idleTTL
		other := setupOn(t, b.Client, b.Prefix+"ttl", opts)
		send(t, ctx, other, "gone", "one")
		require.Eventually(t, func() bool { return roomIs(ctx, other, "gone", gone) }, 5*time.Second, 20*time.Millisecond)
		time.Sleep(200 * time.Millisecond) // a few more housekeeping rounds

		require.Equal(t, before, history(t, ctx, q, "kept"))
		require.EqualValues(t, 2, roomState(t, ctx, q, "kept").LastSeq)
		m, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.Zero(t, m.KnownRooms)
		require.EqualValues(t, 1, m.IdleRooms)
		require.Equal(t, []queue.RoomBacklog{{Room: "kept", Idle: true}}, m.TopRooms)
		require.Zero(t, q.Stats().ExpiredRooms)
	})
}

// TestIdleRooms_StreamMaxAgeHolds: an idle room's stream is trimmed to
// StreamMaxAge by housekeeping, though nothing is appended to it any more;
// the room itself waits for its IdleRoomTTL (the default, 24h).
func TestIdleRooms_StreamMaxAgeHolds(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{ClientTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond, HousekeepingInterval: 20 * time.Millisecond, StreamMaxAge: time.Second}).q
		s := join(t, ctx, q, "emptied")
		for i := range 3 {
			send(t, ctx, q, "emptied", i)
			require.NoError(t, next(t, ctx, s).Ack(ctx))
		}
		require.NoError(t, s.Close(ctx))
		send(t, ctx, q, "sent-to", "nobody listens")
		for _, room := range []string{"emptied", "sent-to"} {
			require.NotZero(t, roomState(t, ctx, q, room).StreamLen, room)
		}
		// A tenth of StreamMaxAge of trim granularity, housekeeping rounds
		// and a loaded machine: generous.
		require.Eventually(t, func() bool {
			return roomIs(ctx, q, "emptied", streamEmpty) && roomIs(ctx, q, "sent-to", streamEmpty)
		}, 6*time.Second, 20*time.Millisecond, "idle rooms keep events older than StreamMaxAge")

		now := serverTime(t, ctx, b.Client)
		m, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.EqualValues(t, 2, m.IdleRooms)
		require.Len(t, m.TopRooms, 2)
		for _, r := range m.TopRooms {
			require.True(t, r.Idle, r.Room)
			between(t, r.Expires, now.Add(queue.DefaultIdleRoomTTL-time.Minute), now.Add(queue.DefaultIdleRoomTTL), r.Room+" expiry")
		}
		require.EqualValues(t, 3, roomState(t, ctx, q, "emptied").LastSeq, "the room outlives its history")
		// History that comes later ages out the same way.
		send(t, ctx, q, "sent-to", "later")
		require.EqualValues(t, 1, roomState(t, ctx, q, "sent-to").StreamLen)
		require.Eventually(t, func() bool { return roomIs(ctx, q, "sent-to", streamEmpty) }, 6*time.Second, 20*time.Millisecond)
	})
}

// TestIdleRooms_Listed: a room that only received sends, without members,
// is listed (as idle, after the live rooms) until it expires; follow-all
// discovery and the live-room count leave it out.
func TestIdleRooms_Listed(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		send(t, ctx, q, "room-a", "hello")
		s := join(t, ctx, q, "live")
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		now := serverTime(t, ctx, b.Client)
		m, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.EqualValues(t, 1, m.KnownRooms)
		require.EqualValues(t, 1, m.IdleRooms)
		require.Len(t, m.TopRooms, 2)
		require.Equal(t, queue.RoomBacklog{Room: "live"}, m.TopRooms[0])
		require.Equal(t, "room-a", m.TopRooms[1].Room)
		require.True(t, m.TopRooms[1].Idle)
		between(t, m.TopRooms[1].Expires, now.Add(queue.DefaultIdleRoomTTL-time.Minute), now.Add(queue.DefaultIdleRoomTTL), "expiry")
		m, err = q.Metrics(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, []queue.RoomBacklog{{Room: "live"}}, m.TopRooms)
	})
}
