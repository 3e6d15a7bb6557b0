package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/metrics"
	"github.com/syncfanout/syncfanout/queue"
)

func newQueue(t *testing.T, rdb redis.UniversalClient, opts queue.Options) *queue.Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := queue.New(ctx, rdb, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// value returns the value of the one sample of name whose labels include
// want; histograms give their sample count.
func value(t *testing.T, reg *prometheus.Registry, name string, want ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(want); i += 2 {
				if labels[want[i]] != want[i+1] {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no sample %s%v", name, want)
	return 0
}

func TestCollectorCountsTheQueuesActivity(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
		c := metrics.NewCollector(q, metrics.Options{})
		reg := prometheus.NewRegistry()
		require.NoError(t, reg.Register(c))

		// Nothing happened yet: every series is there, at zero.
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP syncfanout_acks_rejected_total Acks of this process that were refused, by reason: stale (message no longer in flight), invalid (malformed, altered or foreign token), not-member (the client is not a voting member).
# TYPE syncfanout_acks_rejected_total counter
syncfanout_acks_rejected_total{reason="invalid"} 0
syncfanout_acks_rejected_total{reason="not-member"} 0
syncfanout_acks_rejected_total{reason="stale"} 0
# HELP syncfanout_messages_sent_total Messages this process enqueued with Send.
# TYPE syncfanout_messages_sent_total counter
syncfanout_messages_sent_total 0
# HELP syncfanout_rooms Rooms with members, observers, a backlog or a message in flight (whole deployment).
# TYPE syncfanout_rooms gauge
syncfanout_rooms 0
# HELP syncfanout_redis_up 1 if the last scrape read the deployment gauges from Redis, 0 if it failed.
# TYPE syncfanout_redis_up gauge
syncfanout_redis_up 1
# HELP syncfanout_shard_conflict 1 while this process's housekeeping finds the deployment split: another NumShards stored, or Queues with another NumShards running on the prefix.
# TYPE syncfanout_shard_conflict gauge
syncfanout_shard_conflict 0
`), "syncfanout_acks_rejected_total", "syncfanout_messages_sent_total", "syncfanout_rooms", "syncfanout_redis_up", "syncfanout_shard_conflict"))

		a, err := q.Join(ctx, "lobby", queue.WithClientID("alice"))
		require.NoError(t, err)
		bob, err := q.Join(ctx, "lobby", queue.WithClientID("bob"))
		require.NoError(t, err)
		obs, err := q.Join(ctx, "lobby", queue.AsObserver())
		require.NoError(t, err)
		for i := range 3 {
			_, err := q.Send(ctx, "lobby", i)
			require.NoError(t, err)
		}
		_, err = q.SendOutOfBand(ctx, "lobby", "hello")
		require.NoError(t, err)

		// The first message is in flight; two wait behind it.
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP syncfanout_backlog_messages Pending messages over all rooms, in-flight ones excluded (whole deployment).
# TYPE syncfanout_backlog_messages gauge
syncfanout_backlog_messages 2
# HELP syncfanout_members Voting memberships over all rooms (whole deployment).
# TYPE syncfanout_members gauge
syncfanout_members 2
# HELP syncfanout_observers Observer memberships over all rooms (whole deployment).
# TYPE syncfanout_observers gauge
syncfanout_observers 1
# HELP syncfanout_room_backlog_messages Pending messages of the rooms with the largest backlog (the TopRooms first).
# TYPE syncfanout_room_backlog_messages gauge
syncfanout_room_backlog_messages{room="lobby"} 2
# HELP syncfanout_rooms Rooms with members, observers, a backlog or a message in flight (whole deployment).
# TYPE syncfanout_rooms gauge
syncfanout_rooms 1
`), "syncfanout_backlog_messages", "syncfanout_members", "syncfanout_observers", "syncfanout_room_backlog_messages", "syncfanout_rooms"))

		// Both members read and ack the three messages (and the OOB one,
		// which needs no ack); the observer reads all four.
		var first *queue.Message
		for range 4 {
			for _, s := range []*queue.Subscription{a, bob} {
				m, err := s.Next(ctx)
				require.NoError(t, err)
				if first == nil {
					first = m
				}
				require.NoError(t, m.Ack(ctx))
			}
		}
		for range 4 {
			_, err := obs.Next(ctx)
			require.NoError(t, err)
		}
		// Refused acks, one per reason.
		require.ErrorIs(t, first.Ack(ctx), queue.ErrStaleAck)
		require.ErrorIs(t, q.Ack(ctx, "alice", "made-up"), queue.ErrInvalidToken)
		require.ErrorIs(t, q.Ack(ctx, "carol", first.AckToken), queue.ErrInvalidToken)
		require.NoError(t, q.Subscribe(ctx, "dave", "elsewhere"))
		require.NoError(t, q.Unsubscribe(ctx, "dave", "elsewhere"))

		require.Equal(t, 3.0, value(t, reg, "syncfanout_messages_sent_total"))
		require.Equal(t, 3.0, value(t, reg, "syncfanout_messages_released_total"))
		require.Equal(t, 1.0, value(t, reg, "syncfanout_oob_messages_sent_total"))
		require.Equal(t, 12.0, value(t, reg, "syncfanout_messages_delivered_total"))
		require.Equal(t, 6.0, value(t, reg, "syncfanout_acks_total"))
		require.Equal(t, 1.0, value(t, reg, "syncfanout_acks_rejected_total", "reason", "stale"))
		require.Equal(t, 2.0, value(t, reg, "syncfanout_acks_rejected_total", "reason", "invalid"))
		require.Equal(t, 0.0, value(t, reg, "syncfanout_acks_rejected_total", "reason", "not-member"))
		// Every delivery has an end-to-end latency; queued ones a release
		// latency; each message completed by an ack a barrier wait.
		require.Equal(t, 12.0, value(t, reg, "syncfanout_end_to_end_latency_seconds"))
		require.Equal(t, 9.0, value(t, reg, "syncfanout_release_latency_seconds"))
		require.Equal(t, 3.0, value(t, reg, "syncfanout_barrier_wait_seconds"))
		require.Equal(t, 0.0, value(t, reg, "syncfanout_backlog_messages"))

		// An ack from a client that left the room.
		tok := first.AckToken
		require.NoError(t, a.Close(ctx))
		require.ErrorIs(t, q.Ack(ctx, "alice", tok), queue.ErrNotMember)
		require.Equal(t, 1.0, value(t, reg, "syncfanout_acks_rejected_total", "reason", "not-member"))
		require.Equal(t, 1.0, value(t, reg, "syncfanout_members"))

		problems, err := testutil.CollectAndLint(c)
		require.NoError(t, err)
		require.Empty(t, problems)
	})
}

func TestCollectorEvictions(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Members beat every 100ms against 2s, so that no stall of a loaded
		// machine adds a "timeout" eviction to the ones counted below.
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: 2 * time.Second, HeartbeatInterval: 100 * time.Millisecond, AckTimeout: 200 * time.Millisecond})
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.NewCollector(q, metrics.Options{Namespace: "app"}))

		// A member that does not ack in time is evicted for ack-timeout.
		slow, err := q.Join(ctx, "r1")
		require.NoError(t, err)
		_, err = q.Send(ctx, "r1", "x")
		require.NoError(t, err)
		_, err = slow.Next(ctx)
		require.NoError(t, err)
		_, err = slow.Next(ctx)
		require.ErrorIs(t, err, queue.ErrEvicted)

		// A member removed by another process's Unsubscribe.
		gone, err := q.Join(ctx, "r2")
		require.NoError(t, err)
		other := newQueue(t, b.NewClient(t), queue.Options{Prefix: b.Prefix, ClientTimeout: 2 * time.Second, HeartbeatInterval: 100 * time.Millisecond, AckTimeout: 200 * time.Millisecond})
		require.NoError(t, other.Unsubscribe(ctx, gone.ClientID(), "r2"))
		_, err = gone.Next(ctx)
		require.ErrorIs(t, err, queue.ErrNotMember)

		require.Equal(t, 1.0, value(t, reg, "app_evictions_total", "reason", "ack-timeout"))
		require.Equal(t, 1.0, value(t, reg, "app_evictions_total", "reason", "leave"))
		require.Equal(t, 0.0, value(t, reg, "app_evictions_total", "reason", "timeout"))
	})
}

// TestCollectorAdminActions: every operator's transition is counted under
// its action, and a kicked subscriber under evictions_total{reason="kick"}.
func TestCollectorAdminActions(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix})
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.NewCollector(q, metrics.Options{Namespace: "app"}))
		s, err := q.Join(ctx, "r")
		require.NoError(t, err)
		_, err = q.Send(ctx, "r", "x")
		require.NoError(t, err)
		adm := q.Admin("ops")
		require.NoError(t, adm.Pause(ctx, "r", ""))
		require.NoError(t, adm.Resume(ctx, "r", ""))
		_, err = adm.Purge(ctx, "r", queue.PurgeFilter{}, "")
		require.NoError(t, err)
		_, err = adm.Release(ctx, "r", "")
		require.NoError(t, err)
		require.NoError(t, adm.Kick(ctx, "r", s.ClientID(), ""))
		for {
			if _, err = s.Next(ctx); err != nil {
				break
			}
		}
		require.ErrorIs(t, err, queue.ErrKicked)
		require.NoError(t, adm.DeleteRoom(ctx, "r", ""))
		for _, action := range []string{metrics.ActionPause, metrics.ActionResume, metrics.ActionPurge, metrics.ActionRelease, metrics.ActionKick, metrics.ActionDelete} {
			require.Equal(t, 1.0, value(t, reg, "app_admin_actions_total", "action", action), action)
		}
		require.Equal(t, 1.0, value(t, reg, "app_evictions_total", "reason", metrics.ReasonKick))
	})
}

// TestCollectorIdleRooms: idle rooms are a deployment gauge, left out of
// the per-room backlog series, and the rooms this process's housekeeping
// deletes are counted.
func TestCollectorIdleRooms(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix, IdleRoomTTL: time.Second, HousekeepingInterval: 50 * time.Millisecond})
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.NewCollector(q, metrics.Options{}))

		_, err := q.Send(ctx, "idle", "nobody listens")
		require.NoError(t, err)
		require.Equal(t, 1.0, value(t, reg, "syncfanout_idle_rooms"))
		require.Equal(t, 0.0, value(t, reg, "syncfanout_rooms"))
		require.Equal(t, 0.0, value(t, reg, "syncfanout_rooms_expired_total"))
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(""), "syncfanout_room_backlog_messages"))

		require.Eventually(t, func() bool { return q.Stats().ExpiredRooms == 1 }, 10*time.Second, 20*time.Millisecond)
		require.Equal(t, 1.0, value(t, reg, "syncfanout_rooms_expired_total"))
		require.Equal(t, 0.0, value(t, reg, "syncfanout_idle_rooms"))
	})
}

func TestCollectorWithoutRedis(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rdb := b.NewClient(t)
		q := newQueue(t, rdb, queue.Options{Prefix: b.Prefix})
		_, err := q.Send(ctx, "r", "x")
		require.NoError(t, err)
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.NewCollector(q, metrics.Options{ScrapeTimeout: time.Second}))
		require.Equal(t, 1.0, value(t, reg, "syncfanout_redis_up"))
		require.NoError(t, rdb.Close())
		// The scrape still succeeds: counters stay, gauges go, redis_up says why.
		require.Equal(t, 0.0, value(t, reg, "syncfanout_redis_up"))
		require.Equal(t, 1.0, value(t, reg, "syncfanout_messages_sent_total"))
		n, err := testutil.GatherAndCount(reg, "syncfanout_rooms")
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

func TestCollectorOptions(t *testing.T) {
	t.Parallel()
	b := redistest.Standalone(t)
	q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix})
	// A namespace Prometheus rejects is an error at registration, not a panic.
	require.Error(t, prometheus.NewRegistry().Register(metrics.NewCollector(q, metrics.Options{Namespace: "bad\xffname"})))
	// Two collectors on one registry need telling apart.
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(metrics.NewCollector(q, metrics.Options{ConstLabels: prometheus.Labels{"queue": "a"}})))
	require.NoError(t, reg.Register(metrics.NewCollector(q, metrics.Options{ConstLabels: prometheus.Labels{"queue": "b"}})))
	require.Error(t, reg.Register(metrics.NewCollector(q, metrics.Options{ConstLabels: prometheus.Labels{"queue": "a"}})))
	require.Equal(t, 1.0, value(t, reg, "syncfanout_redis_up", "queue", "b"))
}

// TestScrapeCostIsPerShard counts the Redis commands of one scrape: it
// depends on the number of shards and on TopRooms, not on the number of
// rooms.
func TestScrapeCostIsPerShard(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		const shards = 16
		opts := queue.Options{Prefix: b.Prefix, NumShards: shards, HoldWhenEmpty: true}
		producer := newQueue(t, b.Client, opts)

		counted := b.NewClient(t)
		var cmds atomic.Int64
		counted.AddHook(countHook{&cmds})
		// Housekeeping rounds (reaps, the NumShards check) would land in
		// some scrapes' counts and not others: the producer does them.
		counting := opts
		counting.DisableHousekeeping = true
		q := newQueue(t, counted, counting)
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.NewCollector(q, metrics.Options{TopRooms: 20}))

		scrape := func() int64 {
			before := cmds.Load()
			_, err := reg.Gather()
			require.NoError(t, err)
			return cmds.Load() - before
		}
		fill := func(from, to int) {
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := from + w; i < to; i += 8 {
						// Held messages keep each room in the index.
						if _, err := producer.Send(ctx, fmt.Sprint("room-", i), i); err != nil {
							errs <- err
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

		// More rooms than TopRooms from the start: each exported top room
		// costs one read of its in-flight message.
		fill(0, 30)
		small := scrape()
		fill(30, 10000)
		large := scrape()
		require.Equal(t, 10000.0, value(t, reg, "syncfanout_rooms"))
		require.Equal(t, 10000.0, value(t, reg, "syncfanout_backlog_messages"))
		t.Logf("commands per scrape: %d with 30 rooms, %d with 10000 rooms (%d shards, 20 top rooms)", small, large, shards)
		require.Equal(t, small, large, "a scrape must cost the same whatever the number of rooms")
		require.LessOrEqual(t, large, int64(4*shards+20), "a scrape must cost O(shards + TopRooms)")
	})
}

// countHook counts the commands sent through a client, leaving out the
// ones a new connection sends to set itself up.
type countHook struct{ n *atomic.Int64 }

func counts(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select", "readonly":
		return false
	}
	return true
}

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if counts(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if counts(cmd) {
				h.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// TestCollectorInFlightAge: the top rooms with a message in flight export
// how long it has waited, the others nothing; the age grows while a member
// holds the barrier and the series goes when the message completes.
func TestCollectorInFlightAge(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.NewCollector(q, metrics.Options{TopRooms: 1}))
		count := func() int {
			n, err := testutil.GatherAndCount(reg, "syncfanout_room_inflight_age_seconds")
			require.NoError(t, err)
			return n
		}

		alice, err := q.Join(ctx, "stuck", queue.WithClientID("alice"))
		require.NoError(t, err)
		bob, err := q.Join(ctx, "stuck", queue.WithClientID("bob"))
		require.NoError(t, err)
		require.Zero(t, count(), "no message in flight, no age")

		for i := range 3 {
			_, err := q.Send(ctx, "stuck", i)
			require.NoError(t, err)
		}
		// A room with a smaller backlog is not among the TopRooms=1: its
		// message in flight is not read.
		_, err = q.Join(ctx, "small", queue.WithClientID("carol"))
		require.NoError(t, err)
		_, err = q.Send(ctx, "small", "y")
		require.NoError(t, err)

		m, err := alice.Next(ctx)
		require.NoError(t, err)
		require.NoError(t, m.Ack(ctx))
		held, err := bob.Next(ctx) // bob holds the room: read, not acked
		require.NoError(t, err)
		require.Equal(t, 1, count())
		first := value(t, reg, "syncfanout_room_inflight_age_seconds", "room", "stuck")
		require.GreaterOrEqual(t, first, 0.0)
		time.Sleep(50 * time.Millisecond)
		require.Greater(t, value(t, reg, "syncfanout_room_inflight_age_seconds", "room", "stuck"), first)

		// Bob acks: the next message is in flight.
		require.NoError(t, held.Ack(ctx))
		require.Equal(t, 1, count())
		for range 2 {
			for _, s := range []*queue.Subscription{alice, bob} {
				m, err := s.Next(ctx)
				require.NoError(t, err)
				require.NoError(t, m.Ack(ctx))
			}
		}
		require.Zero(t, count(), "every message completed")
	})
}
