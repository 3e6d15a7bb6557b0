package queue

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// waitClient makes every state change wait for replicas (Options.
// WaitReplicas): each write script, and each write to a client's room set,
// is sent in one pipeline with WAIT, on one connection to the master that
// runs it, so WAIT counts the replicas that received that very write.
// Everything else goes to the caller's client unchanged.
//
// Redis replication is asynchronous: a master that dies can take its last
// writes with it, and the replica promoted in its place never had them.
// WAIT does not make a write atomic across nodes (it is applied on the
// master whatever WAIT says) but it tells the caller whether the write
// reached enough replicas; when it did not, the call returns
// ErrNotReplicated and the write may be lost in a failover.
type waitClient struct {
	redis.UniversalClient
	replicas int
	timeout  time.Duration
	readOnly map[string]bool // SHA1s and function names of the scripts that never write
}

func newWaitClient(rdb redis.UniversalClient, replicas int, timeout time.Duration) (*waitClient, error) {
	var readTimeout time.Duration
	switch c := rdb.(type) {
	case *redis.Client:
		readTimeout = c.Options().ReadTimeout
	case *redis.ClusterClient:
		readTimeout = c.Options().ReadTimeout
	default:
		return nil, fmt.Errorf("%w: WaitReplicas needs a *redis.Client or *redis.ClusterClient, not %T", sferr.ErrInvalidOption, rdb)
	}
	// go-redis reads a pipeline's replies within the client's ReadTimeout
	// (3s when zero, none when negative), and WAIT blocks up to timeout.
	if readTimeout == 0 {
		readTimeout = 3 * time.Second
	}
	if readTimeout > 0 && timeout >= readTimeout {
		return nil, fmt.Errorf("%w: WaitTimeout=%v must be below the client's ReadTimeout %v", sferr.ErrInvalidOption, timeout, readTimeout)
	}
	w := &waitClient{UniversalClient: rdb, replicas: replicas, timeout: timeout, readOnly: map[string]bool{}}
	for _, s := range []*lua.Script{lua.Due, lua.Peek, lua.State} {
		w.readOnly[s.Hash()] = true
		w.readOnly[s.Function()] = true
	}
	return w, nil
}

// unwrapClient returns the caller's client behind a waitClient.
func unwrapClient(rdb redis.UniversalClient) redis.UniversalClient {
	if w, ok := rdb.(*waitClient); ok {
		return w.UniversalClient
	}
	return rdb
}

// node returns the client of the master that serves key.
func (w *waitClient) node(ctx context.Context, key string) (*redis.Client, error) {
	switch c := w.UniversalClient.(type) {
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	case *redis.Client:
		return c, nil
	}
	return nil, fmt.Errorf("%w: unsupported client %T", sferr.ErrInvalidOption, w.UniversalClient)
}

// withWait runs the command that build queues and WAIT in one pipeline on
// key's master. The command carries its own reply and error; withWait
// returns the error to add when the command succeeded but too few replicas
// acknowledged it (ErrNotReplicated), or when key's master is unknown.
func (w *waitClient) withWait(ctx context.Context, key string, build func(p redis.Pipeliner) redis.Cmder) error {
	node, err := w.node(ctx, key)
	if err != nil {
		return err
	}
	var cmd redis.Cmder
	var wait *redis.Cmd
	_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmd = build(p)
		wait = p.Do(ctx, "wait", w.replicas, w.timeout.Milliseconds())
		return nil
	})
	if err := cmd.Err(); err != nil {
		if cc, ok := w.UniversalClient.(*redis.ClusterClient); ok {
			// A slot moved (or a failover happened) since the client last
			// read the cluster's layout: have it read it again, so that a
			// retry (lua.Run retries these) finds the right master.
			_, moved := redis.IsMovedError(err)
			_, ask := redis.IsAskError(err)
			if moved || ask || redis.IsTryAgainError(err) || topologyError(err) {
				cc.ReloadState(ctx)
			}
		}
		return nil
	}
	n, err := wait.Int64()
	if err != nil {
		return fmt.Errorf("%w: WAIT %d: %v", sferr.ErrNotReplicated, w.replicas, err)
	}
	if n < int64(w.replicas) {
		return fmt.Errorf("%w: %d of %d replicas acknowledged within %v", sferr.ErrNotReplicated, n, w.replicas, w.timeout)
	}
	return nil
}

func firstKey(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

// EvalSha runs a script with WAIT unless it is read-only.
func (w *waitClient) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if w.readOnly[sha] {
		return w.UniversalClient.EvalSha(ctx, sha, keys, args...)
	}
	var cmd *redis.Cmd
	err := w.withWait(ctx, firstKey(keys), func(p redis.Pipeliner) redis.Cmder {
		cmd = p.EvalSha(ctx, sha, keys, args...)
		return cmd
	})
	return withErr(ctx, cmd, err)
}

// FCall runs a function of the script library with WAIT unless it is
// read-only.
func (w *waitClient) FCall(ctx context.Context, function string, keys []string, args ...any) *redis.Cmd {
	if w.readOnly[function] {
		return w.UniversalClient.FCall(ctx, function, keys, args...)
	}
	var cmd *redis.Cmd
	err := w.withWait(ctx, firstKey(keys), func(p redis.Pipeliner) redis.Cmder {
		cmd = p.FCall(ctx, function, keys, args...)
		return cmd
	})
	return withErr(ctx, cmd, err)
}

// Eval is the fallback go-redis uses when the script is not loaded yet.
func (w *waitClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	sum := sha1.Sum([]byte(script))
	if w.readOnly[hex.EncodeToString(sum[:])] {
		return w.UniversalClient.Eval(ctx, script, keys, args...)
	}
	var cmd *redis.Cmd
	err := w.withWait(ctx, firstKey(keys), func(p redis.Pipeliner) redis.Cmder {
		cmd = p.Eval(ctx, script, keys, args...)
		return cmd
	})
	return withErr(ctx, cmd, err)
}

func withErr(ctx context.Context, cmd *redis.Cmd, err error) *redis.Cmd {
	if cmd == nil {
		cmd = redis.NewCmd(ctx)
	}
	if err != nil {
		cmd.SetErr(err)
	}
	return cmd
}

// SAdd and SRem change a client's room set (Subscribe, Unsubscribe, Ping).
func (w *waitClient) SAdd(ctx context.Context, key string, members ...any) *redis.IntCmd {
	var cmd *redis.IntCmd
	err := w.withWait(ctx, key, func(p redis.Pipeliner) redis.Cmder { cmd = p.SAdd(ctx, key, members...); return cmd })
	return intWithErr(ctx, cmd, err)
}

func (w *waitClient) SRem(ctx context.Context, key string, members ...any) *redis.IntCmd {
	var cmd *redis.IntCmd
	err := w.withWait(ctx, key, func(p redis.Pipeliner) redis.Cmder { cmd = p.SRem(ctx, key, members...); return cmd })
	return intWithErr(ctx, cmd, err)
}

func intWithErr(ctx context.Context, cmd *redis.IntCmd, err error) *redis.IntCmd {
	if cmd == nil {
		cmd = redis.NewIntCmd(ctx)
	}
	if err != nil {
		cmd.SetErr(err)
	}
	return cmd
}
