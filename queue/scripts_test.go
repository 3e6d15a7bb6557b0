package queue_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// scriptDeployment is a private standalone server or cluster: the test
// flushes its functions, resets its statistics and adds ACL users, which
// it must not do to the shared backends.
type scriptDeployment struct {
	masters []*redis.Client // default user, one per master
	connect func(user, password string) redis.UniversalClient
}

func newScriptDeployment(t *testing.T, name string) scriptDeployment {
	var d scriptDeployment
	var addrs []string
	if name == redistest.NameCluster {
		c := redistest.NewCluster(t, redistest.ClusterOptions{Masters: 3})
		addrs = c.Addrs()
		cc := c.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		var mu sync.Mutex
		require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			c := redis.NewClient(&redis.Options{Addr: m.Options().Addr})
			t.Cleanup(func() { _ = c.Close() })
			d.masters = append(d.masters, c)
			return nil
		}))
		d.connect = func(user, password string) redis.UniversalClient {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Username: user, Password: password})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
	} else {
		s := redistest.NewServer(t, redistest.ServerOptions{})
		d.masters = []*redis.Client{s.Client(t)}
		d.connect = func(user, password string) redis.UniversalClient {
			c := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: user, Password: password})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
	}
	return d
}

func (d scriptDeployment) do(t *testing.T, ctx context.Context, args ...any) {
	t.Helper()
	for _, m := range d.masters {
		require.NoError(t, m.Do(ctx, args...).Err(), "%v on %s", args, m.Options().Addr)
	}
}

// calls sums the calls of the script commands over the masters since the
// last CONFIG RESETSTAT.
func (d scriptDeployment) calls(t *testing.T, ctx context.Context) map[string]int64 {
	t.Helper()
	sum := map[string]int64{}
	for _, m := range d.masters {
		info, err := m.Info(ctx, "commandstats").Result()
		require.NoError(t, err)
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || !strings.HasPrefix(name, "cmdstat_") {
				continue
			}
			calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
			n, err := strconv.ParseInt(calls, 10, 64)
			require.NoError(t, err, line)
			sum[strings.TrimPrefix(name, "cmdstat_")] += n
		}
	}
	return sum
}

// libraries returns, per master, the names of the loaded libraries.
func (d scriptDeployment) libraries(t *testing.T, ctx context.Context) [][]string {
	t.Helper()
	var all [][]string
	for _, m := range d.masters {
		libs, err := m.FunctionList(ctx, redis.FunctionListQuery{}).Result()
		require.NoError(t, err)
		var names []string
		for _, l := range libs {
			names = append(names, l.Name)
		}
		all = append(all, names)
	}
	return all
}

// scriptWorkload runs a few rooms through join, send, delivery and ack,
// so that every script kind of the hot path runs (send, ack, heartbeat,
// due, reap) on several shards, and the state read (no-writes).
func scriptWorkload(t *testing.T, ctx context.Context, rdb redis.UniversalClient, prefix string, opts queue.Options) {
	t.Helper()
	q := setupOn(t, rdb, prefix, fast(opts))
	for i := range 6 {
		room := fmt.Sprintf("room-%d", i)
		s := join(t, ctx, q, room)
		for j := range 2 {
			send(t, ctx, q, room, fmt.Sprintf("m%d", j))
			m := next(t, ctx, s)
			require.Equal(t, fmt.Sprintf("m%d", j), text(t, m))
			require.NoError(t, m.Ack(ctx))
		}
		st := roomState(t, ctx, q, room)
		require.Zero(t, st.Pending)
		require.NoError(t, s.Close(ctx))
	}
	require.NoError(t, q.Close())
}

// syncBuffer is a log destination for a Queue's background goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestScriptLibrary: the scripts run as functions of one library (FCALL,
// no EVALSHA), loaded on every master on first use and again after the
// master lost it; another version of the library beside it changes
// nothing; ScriptsEval runs EVALSHA only; a Redis user refused FUNCTION
// LOAD or FCALL still works under ScriptsAuto (EVALSHA, one warning) and
// gets the refusal under ScriptsFunctions.
func TestScriptLibrary(t *testing.T) {
	t.Parallel()
	if lua.AutoIs != lua.ModeAuto {
		t.Skip("SYNCFANOUT_SCRIPTS chose one path for every Queue")
	}
	for _, name := range []string{redistest.NameStandalone, redistest.NameCluster} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			d := newScriptDeployment(t, name)
			admin := d.connect("", "")
			everyMasterHasIt := func(lib string) {
				t.Helper()
				require.Eventually(t, func() bool {
					for _, names := range d.libraries(t, ctx) {
						if !strings.Contains(strings.Join(names, " "), lib) {
							return false
						}
					}
					return true
				}, waitLimit, 50*time.Millisecond, "%s on every master: %v", lib, d.libraries(t, ctx))
			}

			t.Run("functions", func(t *testing.T) {
				d.do(t, ctx, "config", "resetstat")
				scriptWorkload(t, ctx, admin, "fn", queue.Options{})
				// Housekeeping's due read runs on every shard, so every
				// master has run a function by now.
				everyMasterHasIt(lua.LibraryName)
				calls := d.calls(t, ctx)
				require.Positive(t, calls["fcall"], "%v", calls)
				require.Zero(t, calls["evalsha"]+calls["eval"], "%v", calls)
			})

			t.Run("load on miss", func(t *testing.T) {
				d.do(t, ctx, "function", "flush")
				require.Equal(t, make([][]string, len(d.masters)), d.libraries(t, ctx))
				d.do(t, ctx, "config", "resetstat")
				scriptWorkload(t, ctx, admin, "miss", queue.Options{})
				everyMasterHasIt(lua.LibraryName)
				calls := d.calls(t, ctx)
				require.Positive(t, calls["function|load"], "%v", calls)
				require.Zero(t, calls["evalsha"]+calls["eval"], "%v", calls)
			})

			t.Run("concurrent loads", func(t *testing.T) {
				// Many calls miss at once, and each loads: the ones that
				// find the library loaded meanwhile go on.
				q := setupOn(t, admin, "race", fast(queue.Options{}))
				d.do(t, ctx, "function", "flush")
				d.do(t, ctx, "config", "resetstat")
				var wg sync.WaitGroup
				errs := make(chan error, 32)
				for i := range 32 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, err := q.Send(ctx, fmt.Sprintf("room-%d", i%4), []byte("x"))
						errs <- err
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					require.NoError(t, err)
				}
				calls := d.calls(t, ctx)
				require.Positive(t, calls["function|load"], "%v", calls)
				require.Zero(t, calls["evalsha"]+calls["eval"], "%v", calls)
			})

			t.Run("two versions", func(t *testing.T) {
				// An older process's library: another version, other
				// function names, loaded beside this one.
				const old = "syncfanout_0123456789ab"
				oldLib := strings.ReplaceAll(lua.Library, lua.LibraryName, old)
				d.do(t, ctx, "function", "load", oldLib)
				scriptWorkload(t, ctx, admin, "two", queue.Options{})
				everyMasterHasIt(old)
				everyMasterHasIt(lua.LibraryName)
				layout, err := keys.New("two", 16)
				require.NoError(t, err)
				for i := range layout.NumShards() {
					v, err := admin.FCall(ctx, old+"_due", []string{layout.ShardDue(i)}, 10).Slice()
					require.NoError(t, err)
					require.NotEmpty(t, v)
				}
				// What an operator does once no process of the old
				// version is left (docs/design.md).
				d.do(t, ctx, "function", "delete", old)
			})

			t.Run("eval forced", func(t *testing.T) {
				d.do(t, ctx, "config", "resetstat")
				scriptWorkload(t, ctx, admin, "ev", queue.Options{ScriptMode: queue.ScriptsEval})
				calls := d.calls(t, ctx)
				require.Positive(t, calls["evalsha"], "%v", calls)
				require.Zero(t, calls["fcall"]+calls["function|load"], "%v", calls)
			})

			for _, refused := range []string{"-function|load", "-fcall"} {
				t.Run("refused "+refused, func(t *testing.T) {
					user := "u" + strings.NewReplacer("-", "", "|", "").Replace(refused)
					const password = "correct-horse-battery"
					d.do(t, ctx, "acl", "setuser", user, "on", ">"+password, "~*", "&*", "+@all", refused)
					d.do(t, ctx, "function", "flush")
					rdb := d.connect(user, password)

					var log syncBuffer
					logger := slog.New(slog.NewTextHandler(&log, nil))
					d.do(t, ctx, "config", "resetstat")
					scriptWorkload(t, ctx, rdb, "acl", queue.Options{Logger: logger})
					calls := d.calls(t, ctx)
					require.Positive(t, calls["evalsha"], "%v", calls)
					require.Equal(t, 1, strings.Count(log.String(), "running the scripts with EVALSHA"), log.String())

					q, err := queue.New(ctx, rdb, queue.Options{Prefix: "acl", ScriptMode: queue.ScriptsFunctions, Logger: discardLogger})
					require.NoError(t, err)
					defer q.Close()
					_, err = q.Send(ctx, "refused", []byte("x"))
					require.ErrorContains(t, err, "NOPERM")
				})
			}
		})
	}
}

// TestScriptModeValidated: an unknown ScriptMode is refused.
func TestScriptModeValidated(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		_, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ScriptMode: queue.ScriptsEval + 1})
		require.ErrorIs(t, err, queue.ErrInvalidOption)
	})
}
