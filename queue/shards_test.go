package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// configKey returns the key of the deployment's config hash under prefix.
func configKey(t *testing.T, prefix string) string {
	t.Helper()
	l, err := keys.New(prefix, 1) // the config key does not depend on NumShards
	require.NoError(t, err)
	return l.Config()
}

// waitStored waits until the deployment's stored NumShards is want.
func waitStored(t *testing.T, ctx context.Context, rdb redis.UniversalClient, key, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		got, err := rdb.HGet(ctx, key, "numShards").Result()
		return err == nil && got == want
	}, waitLimit, 10*time.Millisecond, "numShards never became %s", want)
}

// TestShardCountReasserted (project rule 1): the stored NumShards deleted
// under a running Queue, as when Redis loses its data, is stored again by
// that Queue's housekeeping; a Queue with another NumShards is then
// refused with ErrShardMismatch and writes nothing, and housekeeping
// writes nothing to a deployment that agrees.
func TestShardCountReasserted(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{NumShards: 16, HousekeepingInterval: shortHousekeep}).q
		key := configKey(t, b.Prefix)
		require.NoError(t, b.Client.Del(ctx, key).Err())
		waitStored(t, ctx, b.Client, key, "16")
		// Counted once the script's reply is back, after the key is visible.
		require.Eventually(t, func() bool { return q.Stats().ConfigRestored == 1 }, waitLimit, time.Millisecond)

		snap := snapshotter(t, ctx, b)
		before := snap()
		_, err := queue.New(ctx, b.NewClient(t), queue.Options{Prefix: b.Prefix, NumShards: 8, Logger: discardLogger})
		require.ErrorIs(t, err, queue.ErrShardMismatch)
		// Nor does the running Queue's housekeeping write anything while
		// the deployment agrees: let a few of its rounds pass.
		time.Sleep(3 * shortHousekeep)
		require.Equal(t, before, snap())
		cfg, err := b.Client.HGetAll(ctx, key).Result()
		require.NoError(t, err)
		require.Equal(t, map[string]string{"numShards": "16"}, cfg)
		require.False(t, q.Stats().ShardConflict)
	})
}

// TestShardSplitDetected: a Queue with another NumShards that stored its
// count in the window between the loss and the running Queues' next round
// splits the deployment. Both sides then report it (Stats.ShardConflict),
// and any new Queue, of either count, is refused; once the wrong side has
// stopped and the key is deleted, the running Queues store their count
// again and the report clears.
func TestShardSplitDetected(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		// A round a second apart leaves the newcomer ample time to win.
		q16 := setup(t, b, queue.Options{NumShards: 16, HousekeepingInterval: time.Second}).q
		key := configKey(t, b.Prefix)
		var q8 *queue.Queue
		for range 5 {
			require.NoError(t, b.Client.Del(ctx, key).Err())
			var err error
			q8, err = queue.New(ctx, b.NewClient(t), queue.Options{Prefix: b.Prefix, NumShards: 8, HousekeepingInterval: shortHousekeep, Logger: discardLogger})
			if err == nil {
				break
			}
			require.ErrorIs(t, err, queue.ErrShardMismatch) // q16 was faster: try again
		}
		require.NotNil(t, q8, "the 8-shard Queue never won the race")
		defer func() { _ = q8.Close() }()

		require.Eventually(t, func() bool {
			return q16.Stats().ShardConflict && q8.Stats().ShardConflict
		}, waitLimit, 10*time.Millisecond, "the split went unnoticed")
		for _, n := range []int{16, 8} {
			_, err := queue.New(ctx, b.NewClient(t), queue.Options{Prefix: b.Prefix, NumShards: n, Logger: discardLogger})
			require.ErrorIs(t, err, queue.ErrShardMismatch, "NumShards %d", n)
			require.ErrorContains(t, err, "split", "NumShards %d", n)
		}

		require.NoError(t, q8.Close())
		require.NoError(t, b.Client.Del(ctx, key).Err())
		waitStored(t, ctx, b.Client, key, "16")
		require.Eventually(t, func() bool { return !q16.Stats().ShardConflict },
			waitLimit, 10*time.Millisecond, "the split is still reported")
		again, err := queue.New(ctx, b.NewClient(t), queue.Options{Prefix: b.Prefix, NumShards: 16, Logger: discardLogger})
		require.NoError(t, err)
		require.NoError(t, again.Close())
	})
}

// TestShardCountAfterRestart: a private Redis without persistence
// restarts under a running Queue; its housekeeping stores NumShards again,
// so a Queue with another NumShards is refused.
func TestShardCountAfterRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t, redistest.ServerOptions{})
	ctx := testContext(t)
	const prefix = "sftrestart"
	setupOn(t, srv.Client(t), prefix, queue.Options{NumShards: 16, HousekeepingInterval: shortHousekeep})
	key := configKey(t, prefix)
	probe := srv.Client(t)
	require.NoError(t, probe.Set(ctx, prefix+":marker", "1", 0).Err())

	require.NoError(t, srv.Restart())
	n, err := probe.Exists(ctx, prefix+":marker").Result()
	require.NoError(t, err)
	require.Zero(t, n, "the restart kept the data")
	waitStored(t, ctx, probe, key, "16")
	_, err = queue.New(ctx, srv.Client(t), queue.Options{Prefix: prefix, NumShards: 8, Logger: discardLogger})
	require.ErrorIs(t, err, queue.ErrShardMismatch)
}
