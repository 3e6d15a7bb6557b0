package queue

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Every Queue of a deployment must use the same NumShards: a room's keys
// depend on it, so two counts on one prefix are two deployments that never
// see each other's messages. The count is stored in the config hash on
// first use, but Redis can lose that hash (a restart without persistence,
// an eviction, a DEL), and the next New would then store its own count,
// whatever the running Queues use. So housekeeping, once a round, stores
// the count again if it is gone (config.lua). A Queue that started in the
// window before that, with another count, wins the key: the running Queues
// then find another count stored, and stamp their own count live in the
// same hash while that lasts, so the newcomer learns of them, and New
// refuses every count, the stored one included, while another one is live.
// A deployment that agrees never has stamps, so housekeeping writes nothing
// to it.

// liveField is the config hash field stamping a shard count as running.
const liveField = "live:"

// minConfigEvery bounds how often one Queue runs the config check, however
// short its HousekeepingInterval: every Queue of the deployment hits the
// same key.
const minConfigEvery = 100 * time.Millisecond

// configEvery is how often a Queue checks the config hash, and liveFor how
// long its live stamp lasts: several rounds, so that a slow round (CPU
// starvation, a Redis blip) does not make the count look gone.
func configEvery(housekeeping time.Duration) time.Duration {
	return max(housekeeping, minConfigEvery)
}

func liveFor(housekeeping time.Duration) time.Duration {
	return max(5*configEvery(housekeeping), 3*time.Second)
}

// shardConfig is what the config hash says about shard counts.
type shardConfig struct {
	stored string // the numShards field; "" when missing
	live   []int  // shard counts whose live stamp has not expired, ascending
}

// parseShardConfig reads the fields of the config hash, given as
// alternating names and values, at the server time now (ms).
func parseShardConfig(now int64, pairs []string) shardConfig {
	var c shardConfig
	for i := 0; i+1 < len(pairs); i += 2 {
		f, v := pairs[i], pairs[i+1]
		switch {
		case f == "numShards":
			c.stored = v
		case strings.HasPrefix(f, liveField):
			n, err := strconv.Atoi(f[len(liveField):])
			until, terr := strconv.ParseInt(v, 10, 64)
			if err == nil && terr == nil && until > now && !slices.Contains(c.live, n) {
				c.live = append(c.live, n)
			}
		}
	}
	slices.Sort(c.live)
	return c
}

// others returns the live shard counts other than n.
func (c shardConfig) others(n int) []int {
	return slices.DeleteFunc(slices.Clone(c.live), func(v int) bool { return v == n })
}

// mismatch returns the ErrShardMismatch of a Queue with n shards, or nil.
func (c shardConfig) mismatch(n int, prefix string) error {
	others := c.others(n)
	switch {
	case c.stored != "" && c.stored != strconv.Itoa(n):
		split := ""
		if slices.ContainsFunc(c.live, func(v int) bool { return strconv.Itoa(v) != c.stored }) {
			split = fmt.Sprintf(" (Queues running with NumShards %v: the deployment is split)", c.live)
		}
		return fmt.Errorf("%w: configured %d, stored %s under prefix %q%s", sferr.ErrShardMismatch, n, c.stored, prefix, split)
	case len(others) > 0:
		return fmt.Errorf("%w: configured %d, but Queues with NumShards %v are running under prefix %q: the deployment is split (stored %q)",
			sferr.ErrShardMismatch, n, others, prefix, c.stored)
	}
	return nil
}

// readShardConfig reads the config hash and the server clock, with plain
// reads, so a read-only Redis user can run it.
func readShardConfig(ctx context.Context, rdb redis.UniversalClient, key string) (shardConfig, error) {
	var all *redis.MapStringStringCmd
	var now *redis.TimeCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, key)
		now = p.Time(ctx)
		return nil
	})
	if err != nil {
		return shardConfig{}, err
	}
	pairs := make([]string, 0, 2*len(all.Val()))
	for f, v := range all.Val() {
		pairs = append(pairs, f, v)
	}
	return parseShardConfig(now.Val().UnixMilli(), pairs), nil
}

// checkShards is New's check. On a deployment that already has a stored
// count it writes nothing, so a Redis user without write permissions (the
// CLI's) can open a Queue; a refused Queue writes nothing either.
func checkShards(ctx context.Context, rdb redis.UniversalClient, layout *keys.Layout) error {
	key := layout.Config()
	n := layout.NumShards()
	cfg, err := readShardConfig(ctx, rdb, key)
	if err != nil {
		return fmt.Errorf("syncfanout: reading the deployment's NumShards: %w", err)
	}
	if err := cfg.mismatch(n, layout.Prefix()); err != nil {
		return err
	}
	if cfg.stored != "" {
		return nil
	}
	if err := rdb.HSetNX(ctx, key, "numShards", strconv.Itoa(n)).Err(); err != nil {
		return fmt.Errorf("syncfanout: storing the deployment's NumShards: %w", err)
	}
	// Another Queue may have stored its own count since the read.
	if cfg, err = readShardConfig(ctx, rdb, key); err != nil {
		return fmt.Errorf("syncfanout: reading the deployment's NumShards: %w", err)
	}
	return cfg.mismatch(n, layout.Prefix())
}

// checkConfig is housekeeping's round of the config check: it stores the
// count if the hash lost it, stamps it live if the deployment is split, and
// records whether it is (Stats.ShardConflict), logging each change once.
// The script runs on the caller's own client, never through WaitReplicas'
// WAIT: a count lost in a failover is stored again next round. Its error
// is the caller's to log.
func (q *Queue) checkConfig(ctx context.Context) error {
	n := q.layout.NumShards()
	res, err := q.engine.Run(ctx, unwrapClient(q.rdb), lua.Config, []string{q.layout.Config()},
		n, liveFor(q.opts.HousekeepingInterval).Milliseconds()).Slice()
	if err != nil {
		return err
	}
	cfg, restored, err := parseConfigReply(res)
	if err != nil {
		return err
	}
	if restored {
		q.stats.ConfigRestored.Add(1)
		q.opts.Logger.Warn("syncfanout: the deployment's NumShards was gone from Redis (restart without persistence, eviction or deletion): stored it again",
			"numShards", n, "key", q.layout.Config())
	}
	merr := cfg.mismatch(n, q.layout.Prefix())
	was := q.stats.ShardConflict.Swap(merr != nil)
	switch {
	case merr != nil && !was:
		q.opts.Logger.Error("syncfanout: the deployment is split: Queues with different NumShards do not see each other's rooms; stop the wrong ones, then DEL the config key if it holds the wrong count",
			"numShards", n, "stored", cfg.stored, "live", cfg.live, "key", q.layout.Config(), "err", merr)
	case merr == nil && was:
		q.opts.Logger.Info("syncfanout: the deployment's NumShards agrees again", "numShards", n)
	}
	return nil
}

// parseConfigReply reads config.lua's reply.
func parseConfigReply(res []any) (shardConfig, bool, error) {
	if len(res) < 2 {
		return shardConfig{}, false, fmt.Errorf("syncfanout: config script returned %d values", len(res))
	}
	now, ok1 := res[0].(int64)
	stored, ok2 := res[1].(int64)
	if !ok1 || !ok2 {
		return shardConfig{}, false, fmt.Errorf("syncfanout: config script returned %T, %T", res[0], res[1])
	}
	pairs := make([]string, 0, len(res)-2)
	for _, v := range res[2:] {
		s, _ := v.(string)
		pairs = append(pairs, s)
	}
	return parseShardConfig(now, pairs), stored == 1, nil
}
