package redistest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func TestPing(t *testing.T) {
	t.Parallel()
	Backends(t, func(t *testing.T, b *Backend) {
		require.Equal(t, "PONG", b.Client.Ping(t.Context()).Val())
		require.Regexp(t, `^sft[a-z0-9]{8}$`, b.Prefix)
		require.NotEmpty(t, b.Addrs)

		other := b.NewClient(t)
		require.NoError(t, b.Client.Set(t.Context(), b.Prefix+":k", "v", 0).Err())
		require.Equal(t, "v", other.Get(t.Context(), b.Prefix+":k").Val())
	})
}

func TestTopology(t *testing.T) {
	t.Parallel()
	Backends(t, func(t *testing.T, b *Backend) {
		ctx := t.Context()
		masters := 0
		require.NoError(t, b.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			masters++
			return c.Ping(ctx).Err()
		}))

		if b.Name == NameStandalone {
			require.Equal(t, 1, masters)
			_, ok := b.Client.(*redis.Client)
			require.True(t, ok, "standalone client is a *redis.Client")
			return
		}

		require.Equal(t, 3, masters)
		_, ok := b.Client.(*redis.ClusterClient)
		require.True(t, ok, "cluster client is a *redis.ClusterClient")

		info, err := b.Client.ClusterInfo(ctx).Result()
		require.NoError(t, err)
		require.Equal(t, "ok", infoField(info, "cluster_state"))
		require.Equal(t, "16384", infoField(info, "cluster_slots_assigned"))
		require.Equal(t, "16384", infoField(info, "cluster_slots_ok"))

		slots, err := b.Client.ClusterSlots(ctx).Result()
		require.NoError(t, err)
		covered := 0
		owners := map[string]bool{}
		for _, s := range slots {
			covered += s.End - s.Start + 1
			owners[s.Nodes[0].Addr] = true
		}
		require.Equal(t, clusterSlots, covered)
		require.Len(t, owners, 3)
	})
}

func TestHashTagServedByOwner(t *testing.T) {
	t.Parallel()
	Backends(t, func(t *testing.T, b *Backend) {
		ctx := t.Context()
		key := b.Prefix + ":{room-7}:state"
		require.NoError(t, b.Client.Set(ctx, key, "here", 0).Err())

		owner := b.Addrs[0]
		if b.Name == NameCluster {
			slot, err := b.Client.ClusterKeySlot(ctx, key).Result()
			require.NoError(t, err)
			tagSlot, err := b.Client.ClusterKeySlot(ctx, "{room-7}").Result()
			require.NoError(t, err)
			require.Equal(t, tagSlot, slot, "the hash tag alone decides the slot")

			slots, err := b.Client.ClusterSlots(ctx).Result()
			require.NoError(t, err)
			owner = ""
			for _, s := range slots {
				if int64(s.Start) <= slot && slot <= int64(s.End) {
					owner = s.Nodes[0].Addr
				}
			}
			require.NotEmpty(t, owner, "slot %d has an owner", slot)
		}

		// A plain client on the owner: a redirect would be a MOVED error.
		direct := redis.NewClient(&redis.Options{Addr: owner, MaxRetries: -1})
		defer direct.Close()
		require.Equal(t, "here", direct.Get(ctx, key).Val())
	})
}

func TestCleanupDeletesOnlyPrefix(t *testing.T) {
	t.Parallel()
	Backends(t, func(t *testing.T, b *Backend) {
		ctx := t.Context()
		var innerPrefix string
		var gone, survivors []string
		t.Cleanup(func() { // in case an assertion below fails first
			for _, k := range survivors {
				b.Client.Del(context.Background(), k)
			}
		})

		t.Run("inner", func(t *testing.T) {
			inner := Standalone(t)
			if b.Name == NameCluster {
				inner = Cluster(t)
			}
			innerPrefix = inner.Prefix
			// Keys the inner cleanup must leave alone: one outside any
			// prefix of this test's, one that is a strict start of the
			// inner prefix ("-" never occurs in a prefix).
			survivors = []string{
				b.Prefix + "-outside",
				inner.Prefix[:len(inner.Prefix)-1] + "-near-miss",
			}
			for _, k := range survivors {
				require.NoError(t, inner.Client.Set(ctx, k, "keep", 0).Err())
			}
			for i := range 300 { // spread over every master of the cluster
				k := fmt.Sprintf("%s:key-%d", inner.Prefix, i)
				gone = append(gone, k)
				require.NoError(t, inner.Client.Set(ctx, k, i, 0).Err())
			}
			k := inner.Prefix + ":{tagged}:list"
			gone = append(gone, k)
			require.NoError(t, inner.Client.RPush(ctx, k, "a", "b").Err())
		})
		// The inner test is over: its cleanup has run.

		n := 0
		require.NoError(t, b.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			found, _, err := c.Scan(ctx, 0, innerPrefix+"*", 100000).Result()
			n += len(found)
			return err
		}))
		require.Zero(t, n, "keys of prefix %s left", innerPrefix)
		for _, k := range gone {
			require.Zero(t, b.Client.Exists(ctx, k).Val(), k)
		}
		for _, k := range survivors {
			require.Equal(t, "keep", b.Client.Get(ctx, k).Val(), "%s survives", k)
			require.NoError(t, b.Client.Del(ctx, k).Err())
		}
	})
}

func TestServerKillRestart(t *testing.T) {
	t.Parallel()
	s := NewServer(t, ServerOptions{})
	ctx := t.Context()
	addr, pid := s.Addr(), s.PID()
	require.NotZero(t, pid)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	require.NoError(t, s.Kill())
	require.False(t, s.Running())
	require.False(t, pidAlive(pid), "pid %d is gone", pid)
	require.Error(t, c.Ping(ctx).Err())

	require.NoError(t, s.Restart())
	require.Equal(t, addr, s.Addr())
	require.NotEqual(t, pid, s.PID())
	require.Equal(t, "PONG", c.Ping(ctx).Val())
	require.Equal(t, redis.Nil, c.Get(ctx, "k").Err(), "no persistence without AOF")

	// Graceful stop, then restart.
	require.NoError(t, s.Stop())
	require.False(t, s.Running())
	require.NoError(t, s.Stop(), "Stop is idempotent")
	require.NoError(t, s.Restart())
	require.Equal(t, "PONG", s.Client(t).Ping(ctx).Val())
}

func TestServerAOFKeepsDataAcrossKill(t *testing.T) {
	t.Parallel()
	s := NewServer(t, ServerOptions{AOF: true, Args: []string{"--maxmemory", "64mb"}})
	ctx := t.Context()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	require.Equal(t, "64mb", func() string {
		v, _ := c.ConfigGet(ctx, "maxmemory").Result()
		n, _ := strconv.Atoi(v["maxmemory"])
		return strconv.Itoa(n>>20) + "mb"
	}())
	for i := range 100 {
		require.NoError(t, c.RPush(ctx, "list", i).Err())
	}

	require.NoError(t, s.Kill())
	require.NoError(t, s.Restart())
	require.Equal(t, int64(100), c.LLen(ctx, "list").Val())

	require.NoError(t, c.RPush(ctx, "list", "after").Err())
	require.NoError(t, s.Stop())
	require.NoError(t, s.Restart())
	require.Equal(t, int64(101), c.LLen(ctx, "list").Val())
}

func TestProxyCutHeal(t *testing.T) {
	t.Parallel()
	s := NewServer(t, ServerOptions{})
	p := NewProxy(t, s.Addr())
	ctx := t.Context()
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, PoolSize: 1, DialTimeout: time.Second})
	defer c.Close()

	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	p.Cut()
	require.Error(t, c.Get(ctx, "k").Err(), "the open connection is cut")
	require.Error(t, c.Get(ctx, "k").Err(), "new connections are refused")
	p.Heal()
	require.Equal(t, "v", c.Get(ctx, "k").Val(), "a new connection works")

	// Cut while a blocking command waits on the connection.
	errc := make(chan error, 1)
	go func() { errc <- c.BLPop(ctx, 10*time.Second, "never").Err() }()
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(clientList(t, s), func(l string) bool { return strings.Contains(l, "cmd=blpop") })
	}, 5*time.Second, 5*time.Millisecond)
	p.Cut()
	select {
	case err := <-errc:
		require.Error(t, err)
		require.NotEqual(t, redis.Nil, err)
	case <-time.After(5 * time.Second):
		t.Fatal("BLPOP was not interrupted by Cut")
	}
	p.Heal()
	require.Equal(t, "PONG", c.Ping(ctx).Val())
}

// clientList returns the CLIENT LIST lines of s (the probe's own
// connection among them).
func clientList(t *testing.T, s *Server) []string {
	out, err := rawDo(t.Context(), s.Addr(), "CLIENT", "LIST")
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(out), "\n")
}

func TestPrivateClusterFailover(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	ctx := t.Context()
	require.Len(t, c.Nodes(), 6)
	t.Logf("cluster started: %s", c.timing)
	client := c.Client(t)
	require.NoError(t, client.Ping(ctx).Err())

	key := "{fault}:k"
	require.NoError(t, client.Set(ctx, key, "v", 0).Err())
	slot, err := client.ClusterKeySlot(ctx, key).Result()
	require.NoError(t, err)
	master, err := c.MasterForSlot(ctx, int(slot))
	require.NoError(t, err)
	direct := redis.NewClient(&redis.Options{Addr: master.Addr(), MaxRetries: -1})
	defer direct.Close()
	require.Equal(t, "v", direct.Get(ctx, key).Val(), "the owner serves the key without redirect")
	require.Equal(t, "master", infoField(direct.Info(ctx, "replication").Val(), "role"))

	// Kill the master: its replica takes over once the node timeout passes.
	require.NoError(t, master.Kill())
	killed := time.Now()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, c.WaitHealthy(wctx))
	promoted, err := c.MasterForSlot(ctx, int(slot))
	require.NoError(t, err)
	require.NotSame(t, master, promoted)
	t.Logf("failover took %v", time.Since(killed).Round(time.Millisecond))
	// A new client sees the new topology at once (an old one refreshes its
	// slot map on go-redis's own schedule).
	require.Equal(t, "v", c.Client(t).Get(ctx, key).Val())

	// The old master comes back as a replica of the new one.
	require.NoError(t, master.Restart())
	restarted := time.Now()
	require.NoError(t, c.WaitHealthy(wctx))
	t.Logf("rejoin took %v", time.Since(restarted).Round(time.Millisecond))
	now, err := c.MasterForSlot(ctx, int(slot))
	require.NoError(t, err)
	require.Same(t, promoted, now)
	require.Equal(t, "slave", infoField(direct.Info(ctx, "replication").Val(), "role"))
}
