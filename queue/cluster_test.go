package queue_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestNumShardsMismatch: NumShards is stored on first use; a Queue
// configured otherwise for the same prefix is refused.
func TestNumShardsMismatch(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		setupOn(t, b.Client, b.Prefix, queue.Options{NumShards: 16})
		_, err := queue.New(ctx, b.NewClient(t), queue.Options{Prefix: b.Prefix, NumShards: 8, Logger: discardLogger})
		require.ErrorIs(t, err, queue.ErrShardMismatch)
		same, err := queue.New(ctx, b.NewClient(t), queue.Options{Prefix: b.Prefix, Logger: discardLogger}) // the default, 16
		require.NoError(t, err)
		require.NoError(t, same.Close())
	})
}

// TestClusterShardsSpread: with 16 shards, each of the harness cluster's
// three masters owns 5 or 6 of them (CLUSTER SLOTS against the slot of each
// shard's keys).
func TestClusterShardsSpread(t *testing.T) {
	t.Parallel()
	b := redistest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slots, err := b.Client.ClusterSlots(ctx).Result()
	require.NoError(t, err)
	layout, err := keys.New(b.Prefix, 16)
	require.NoError(t, err)
	owned := map[string]int{}
	for shard := range layout.NumShards() {
		slot := keys.Slot(layout.ShardRooms(shard))
		room := ""
		for i := 0; room == ""; i++ {
			if r := fmt.Sprintf("room-%d", i); layout.ShardOf(r) == shard {
				room = r
			}
		}
		for _, k := range layout.RoomKeys(room) {
			require.Equal(t, slot, keys.Slot(k), "key %s of shard %d", k, shard)
		}
		master := ""
		for _, s := range slots {
			if slot >= int(s.Start) && slot <= int(s.End) {
				master = s.Nodes[0].ID
			}
		}
		require.NotEmpty(t, master, "slot %d of shard %d is not served", slot, shard)
		owned[master]++
	}
	require.Len(t, owned, 3)
	for id, n := range owned {
		require.True(t, n == 5 || n == 6, "master %s owns %d shards", id, n)
	}
	t.Logf("shards per master: %v", owned)
}

// wkErrorHook counts the errors that reach the application, by kind.
type wkErrorHook struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *wkErrorHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *wkErrorHook) record(err error) {
	if err == nil || err == redis.Nil {
		return
	}
	kind := strings.Fields(err.Error())[0]
	h.mu.Lock()
	if h.counts == nil {
		h.counts = map[string]int{}
	}
	h.counts[kind]++
	h.mu.Unlock()
}

func (h *wkErrorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.record(err)
		return err
	}
}

func (h *wkErrorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			h.record(c.Err())
		}
		return err
	}
}

func (h *wkErrorHook) count(kind string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[kind]
}

// wkErrorStats sums, over every master, the counts of INFO errorstats.
func wkErrorStats(ctx context.Context, each func(context.Context, func(context.Context, *redis.Client) error) error) (map[string]int, error) {
	sum := map[string]int{}
	err := each(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "errorstats").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":count=")
			if !ok {
				continue
			}
			n, _ := strconv.Atoi(rest)
			sum[strings.TrimPrefix(name, "errorstat_")] += n
		}
		return nil
	})
	return sum, err
}

// wkMixedWorkload runs every call of the API over rooms spread over all
// shards: sends, out-of-band sends, joins, a worker with batched acks,
// pings, peeks, room states and leaves.
func wkMixedWorkload(ctx context.Context, t *testing.T, q *queue.Queue, rooms int) {
	t.Helper()
	names := wkRooms(rooms)
	in := wkInbox{}
	for _, r := range names {
		in[r] = make(chan wkDelivery, 64)
	}
	w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: in.handle, AutoHeartbeat: true})
	require.NoError(t, err)
	defer w.Close()
	clients := map[string][]string{}
	for _, r := range names {
		for range 2 {
			id, err := q.CreateClientID(ctx)
			require.NoError(t, err)
			require.NoError(t, w.Subscribe(ctx, id, r))
			clients[r] = append(clients[r], id)
		}
		sub, err := q.Join(ctx, r, queue.AsObserver())
		require.NoError(t, err)
		defer sub.Close(ctx)
		for k := range 2 {
			_, err := q.Send(ctx, r, k, queue.Priority(k))
			require.NoError(t, err)
		}
		pend, err := q.Peek(ctx, r, 0, 10)
		require.NoError(t, err)
		require.Len(t, pend, 1, "room %s: one message in flight, one pending", r)
		for _, c := range clients[r] {
			require.NoError(t, q.Ping(ctx, c))
		}
	}
	errs := make(chan error, rooms)
	for _, r := range names {
		go func() { errs <- wkLockStepRoom(ctx, q, w, r, clients[r], in[r], 2, nil) }()
	}
	for range names {
		require.NoError(t, <-errs)
	}
	for _, r := range names {
		for _, c := range clients[r] {
			require.NoError(t, w.Unsubscribe(ctx, c, r))
		}
		st, err := q.RoomState(ctx, r)
		require.NoError(t, err)
		require.Empty(t, st.Members)
	}
}

// TestClusterNoCrossSlot: a mixed workload on the harness cluster gets no
// CROSSSLOT error and no redirection that go-redis could not follow: none
// reaches the application (a go-redis hook), and the masters' INFO
// errorstats count no CROSSSLOT.
func TestClusterNoCrossSlot(t *testing.T) {
	t.Parallel()
	b := redistest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	before, err := wkErrorStats(ctx, b.ForEachMaster)
	require.NoError(t, err)
	hook := &wkErrorHook{}
	b.Client.AddHook(hook)
	q := setupOn(t, b.Client, b.Prefix, queue.Options{})
	wkMixedWorkload(ctx, t, q, 48)
	for _, kind := range []string{"CROSSSLOT", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"} {
		require.Zero(t, hook.count(kind), "%s errors reached the application", kind)
	}
	after, err := wkErrorStats(ctx, b.ForEachMaster)
	require.NoError(t, err)
	require.Equal(t, before["CROSSSLOT"], after["CROSSSLOT"], "CROSSSLOT errors on the masters")
	delta := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			delta[k] = d
		}
	}
	t.Logf("errorstats delta on the shared cluster (other tests run too): %v; errors seen by the client: %v", delta, hook.counts)
}

// wkMigrateSlot moves a slot from its master to another one as an operator
// would with redis-cli --cluster reshard: IMPORTING on the target,
// MIGRATING on the source, MIGRATE ... KEYS in small batches, then
// SETSLOT NODE on the target, the source and the other masters. It pauses
// between batches, as a migration of a large slot takes time: the window
// must outlast go-redis's own few retries. migrating, when not nil, runs
// once the slot is MIGRATING, before any key moves; its error stops the
// migration there.
func wkMigrateSlot(ctx context.Context, c *redistest.ClusterServers, slot int, batches *int, migrating func() error) (from, to string, err error) {
	src, err := c.MasterForSlot(ctx, slot)
	if err != nil {
		return "", "", err
	}
	var masters []*redis.Client
	var dst *redistest.Server
	for _, n := range c.Nodes() {
		cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
		defer cl.Close()
		role, err := cl.Do(ctx, "ROLE").Slice()
		if err != nil {
			return "", "", err
		}
		if role[0] != "master" {
			continue
		}
		masters = append(masters, cl)
		if dst == nil && n != src {
			dst = n
		}
	}
	sc := redis.NewClient(&redis.Options{Addr: src.Addr()})
	defer sc.Close()
	dc := redis.NewClient(&redis.Options{Addr: dst.Addr()})
	defer dc.Close()
	srcID, err := sc.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return "", "", err
	}
	dstID, err := dc.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return "", "", err
	}
	if err := dc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		return "", "", err
	}
	if err := sc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		return "", "", err
	}
	if migrating != nil {
		if err := migrating(); err != nil {
			return "", "", err
		}
	}
	host, port, _ := strings.Cut(dst.Addr(), ":")
	for {
		ks, err := sc.ClusterGetKeysInSlot(ctx, slot, 5).Result()
		if err != nil {
			return "", "", err
		}
		if len(ks) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range ks {
			args = append(args, k)
		}
		if err := sc.Do(ctx, args...).Err(); err != nil && err.Error() != "NOKEY" {
			return "", "", fmt.Errorf("MIGRATE: %w", err)
		}
		*batches++
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := dc.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
		return "", "", err
	}
	if err := sc.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
		return "", "", err
	}
	for _, m := range masters {
		if m.Options().Addr == src.Addr() || m.Options().Addr == dst.Addr() {
			continue
		}
		if err := m.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
			return "", "", err
		}
	}
	return src.Addr(), dst.Addr(), nil
}

// TestClusterSlotMigrationUnderLoad moves the slot of a busy shard to
// another master while producers send and a worker delivers and acks:
// nothing is lost, nothing is duplicated, and the barrier always holds.
// Room scripts get TRYAGAIN for the whole migration (their KEYS include
// keys that do not exist, such as empty priority lists), which the engine
// retries.
func TestClusterSlotMigrationUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cluster := redistest.NewCluster(t, redistest.ClusterOptions{Masters: 3})
	const prefix, shards, msgs, perRoom = "mig", 16, 24, 3
	layout, err := keys.New(prefix, shards)
	require.NoError(t, err)
	busy := layout.ShardOf("busy")
	var lockStep, oobRooms, elsewhere []string
	for i := 0; len(lockStep) < 6 || len(oobRooms) < 2 || len(elsewhere) < 3; i++ {
		r := fmt.Sprintf("room-%d", i)
		switch {
		case layout.ShardOf(r) != busy:
			if len(elsewhere) < 3 {
				elsewhere = append(elsewhere, r)
			}
		case len(lockStep) < 6:
			lockStep = append(lockStep, r)
		case len(oobRooms) < 2:
			oobRooms = append(oobRooms, r)
		}
	}
	lockStep = append(lockStep, elsewhere...)

	hook := &wkErrorHook{}
	gatewayClient := cluster.Client(t)
	gatewayClient.AddHook(hook)
	producerClient := cluster.Client(t)
	producerClient.AddHook(hook)
	q := setupOn(t, gatewayClient, prefix, queue.Options{NumShards: shards})
	producer := setupOn(t, producerClient, prefix, queue.Options{NumShards: shards})
	in := wkInbox{}
	for _, r := range append(append([]string{}, lockStep...), oobRooms...) {
		in[r] = make(chan wkDelivery, 4*msgs*perRoom)
	}
	w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: in.handle, AutoHeartbeat: true})
	require.NoError(t, err)
	defer w.Close()
	clients := map[string][]string{}
	for _, r := range lockStep {
		for i := range perRoom {
			c := fmt.Sprintf("%s-c%d", r, i)
			require.NoError(t, w.Subscribe(ctx, c, r))
			clients[r] = append(clients[r], c)
		}
	}
	for _, r := range oobRooms {
		require.NoError(t, w.Subscribe(ctx, r+"-reader", r))
	}

	// Producers send while the coordinators deliver and ack. Once a third
	// of the lock-step messages are acked, the rooms wait for the slot to
	// be MIGRATING, and the migration waits for a room script refused
	// beyond go-redis's retries before it moves a key: on a loaded machine
	// the migration could otherwise start after the last ack, and the
	// test would not test a migration under load.
	var done atomic.Int64 // lock-step messages fully acked, all rooms
	third, migrating := make(chan struct{}), make(chan struct{})
	var thirdOnce sync.Once
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(lockStep)+len(oobRooms)+1)
	for _, r := range lockStep {
		wg.Go(func() {
			for k := range msgs {
				if _, err := producer.Send(ctx, r, k); err != nil {
					errs <- fmt.Errorf("send to %s: %w", r, err)
					return
				}
			}
		})
		wg.Go(func() {
			errs <- wkLockStepRoom(ctx, q, w, r, clients[r], in[r], msgs, func() {
				if done.Add(1) >= int64(len(lockStep)*msgs/3) {
					thirdOnce.Do(func() { close(third) })
				}
				select {
				case <-third:
					select {
					case <-migrating:
					case <-ctx.Done():
					}
				default:
				}
			})
		})
	}
	for _, r := range oobRooms {
		wg.Go(func() {
			for i := range 3 * msgs {
				if _, err := producer.SendOutOfBand(ctx, r, i); err != nil {
					errs <- fmt.Errorf("out-of-band to %s: %w", r, err)
					return
				}
			}
			for want := range 3 * msgs {
				select {
				case d := <-in[r]:
					if v, err := wkDecodeInt(d.msg); err != nil || v != want {
						errs <- fmt.Errorf("room %s: got %d (%v), want %d", r, v, err, want)
						return
					}
				case <-ctx.Done():
					errs <- fmt.Errorf("room %s: got %d of %d out-of-band messages", r, want, 3*msgs)
					return
				}
			}
			errs <- nil
		})
	}
	slot := keys.Slot(layout.ShardRooms(busy))
	var batches int
	var movedTo string
	wg.Go(func() {
		select {
		case <-third:
		case <-ctx.Done():
			errs <- fmt.Errorf("the workload did not reach a third: %w", ctx.Err())
			return
		}
		from, to, err := wkMigrateSlot(ctx, cluster, slot, &batches, func() error {
			close(migrating)
			return wkWaitFor(ctx, "a room script refused while the slot is MIGRATING", func() (bool, error) {
				return hook.count("TRYAGAIN") > 0, nil
			})
		})
		if err != nil {
			errs <- fmt.Errorf("migrating slot %d: %w", slot, err)
			return
		}
		movedTo = to
		t.Logf("slot %d (shard %d) moved from %s to %s in %d MIGRATE batches, after %d of %d messages", slot, busy, from, to, batches, done.Load(), len(lockStep)*msgs)
		errs <- nil
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Positive(t, batches)
	owner, err := cluster.MasterForSlot(ctx, slot)
	require.NoError(t, err)
	require.Equal(t, movedTo, owner.Addr(), "the busy shard's new master")
	for _, r := range append(append([]string{}, lockStep...), oobRooms...) {
		require.Len(t, in[r], 0, "room %s: extra deliveries", r)
	}
	stats, err := wkErrorStats(ctx, func(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
		for _, n := range cluster.Nodes() {
			if err := fn(ctx, n.Client(t)); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Zero(t, stats["CROSSSLOT"])
	require.Positive(t, hook.count("TRYAGAIN"), "the migration refused scripts beyond go-redis's retries, and the engine retried them")
	t.Logf("errorstats %v; errors seen by the clients %v; worker %+v", stats, hook.counts, w.Stats())
}
