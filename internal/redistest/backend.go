package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/redisenv"
)

// Backend names, as Backend.Name and as the subtest names of Backends.
const (
	NameStandalone = "standalone"
	NameCluster    = "cluster"
)

// Environment variables that select existing servers instead of starting
// redis-server processes.
const (
	// EnvStandalone names a standalone server, host:port or URL. REDIS_URL
	// is read too, and wins when both are set (internal/redisenv).
	EnvStandalone = redisenv.EnvAddr
	// EnvCluster names cluster seeds, comma-separated host:port.
	EnvCluster = "REDIS_CLUSTER_ADDRS"
)

// Backend is one Redis deployment as seen by one test: its own client and
// key prefix on a server shared with the other tests of the binary.
type Backend struct {
	Name   string                // NameStandalone or NameCluster
	Client redis.UniversalClient // a fresh go-redis client for this test, closed at cleanup
	Prefix string                // unique per test, [a-z0-9] only: "sft" and 8 random characters
	Addrs  []string              // the server address (standalone) or the cluster seeds
}

// Backends runs fn as two parallel subtests, "standalone" and "cluster",
// each with its own Backend. Each subtest calls t.Parallel(). At cleanup,
// after the test's own cleanups, every key starting with b.Prefix is
// deleted (SCAN MATCH on every master, UNLINK); nothing else is touched.
func Backends(t *testing.T, fn func(t *testing.T, b *Backend)) {
	t.Helper()
	runBackends(t, true, fn)
}

// BackendsSerial is Backends without t.Parallel() in the subtests.
func BackendsSerial(t *testing.T, fn func(t *testing.T, b *Backend)) {
	t.Helper()
	runBackends(t, false, fn)
}

func runBackends(t *testing.T, parallel bool, fn func(t *testing.T, b *Backend)) {
	t.Helper()
	for _, name := range []string{NameStandalone, NameCluster} {
		t.Run(name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			skipUnlessOnly(t, name)
			fn(t, newBackend(t, name))
		})
	}
}

// Standalone returns a Backend on the shared standalone server for t, with
// the same cleanup as in Backends; it creates no subtest.
func Standalone(t testing.TB) *Backend {
	t.Helper()
	return newBackend(t, NameStandalone)
}

// Cluster returns a Backend on the shared cluster for t, with the same
// cleanup as in Backends; it creates no subtest.
func Cluster(t testing.TB) *Backend {
	t.Helper()
	return newBackend(t, NameCluster)
}

func newBackend(t testing.TB, name string) *Backend {
	t.Helper()
	skipUnlessOnly(t, name)
	sh := sharedStandalone
	if name == NameCluster {
		skipWithoutServer(t)
		sh = sharedCluster
	}
	addrs, err := sh.get(t)
	if err != nil {
		t.Fatalf("%v", err)
	}
	b := &Backend{Name: name, Prefix: newPrefix(), Addrs: addrs}
	b.Client = b.NewClient(t) // closed after the keys are deleted: cleanups run last-in first-out
	t.Cleanup(func() {
		if err := b.deleteKeys(); err != nil {
			t.Errorf("redistest: delete keys of prefix %q: %v", b.Prefix, err)
		}
	})
	return b
}

// prefixAlphabet is what prefixes are made of: safe in key names, glob
// patterns and hash tags.
const prefixAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newPrefix returns "sft" and 8 random characters. All prefixes have the
// same length, so one can never be the start of another.
func newPrefix() string {
	b := []byte("sft")
	for range 8 {
		b = append(b, prefixAlphabet[rand.IntN(len(prefixAlphabet))])
	}
	return string(b)
}

// NewClient returns another client for the same backend, closed at cleanup,
// for example to play another process.
func (b *Backend) NewClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	if b.Name == NameCluster {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: b.Addrs})
	} else {
		c = redis.NewClient(&redis.Options{Addr: b.Addrs[0]})
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// MasterAddrs returns the address of every master: the server itself for
// standalone, the masters serving slots for a cluster (from CLUSTER NODES of
// the first seed that answers).
func (b *Backend) MasterAddrs(ctx context.Context) ([]string, error) {
	if b.Name != NameCluster {
		return []string{b.Addrs[0]}, nil
	}
	var errs []error
	for _, seed := range b.Addrs {
		entries, err := clusterNodes(ctx, seed)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var addrs []string
		for _, e := range entries {
			if e.isMaster() && !e.failing() && len(e.slots) > 0 {
				addrs = append(addrs, e.addr)
			}
		}
		return addrs, nil
	}
	return nil, errors.Join(errs...)
}

// ForEachMaster calls fn, one master after the other, with a client
// connected to that master only (one for standalone), for raw per-node
// commands: INFO, CLIENT LIST, SCAN... The client is closed when fn
// returns. It stops at the first error.
func (b *Backend) ForEachMaster(ctx context.Context, fn func(ctx context.Context, c *redis.Client) error) error {
	addrs, err := b.MasterAddrs(ctx)
	if err != nil {
		return err
	}
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		err := fn(ctx, c)
		_ = c.Close()
		if err != nil {
			return fmt.Errorf("master %s: %w", addr, err)
		}
	}
	return nil
}

// deleteKeys unlinks every key starting with b.Prefix, on every master.
func (b *Backend) deleteKeys() error {
	// The test's context is already canceled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return b.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		return deleteMatching(ctx, c, b.Prefix+"*")
	})
}

// deleteMatching unlinks every key of one node that matches pattern, in
// batches. Each key has its own UNLINK: keys of a cluster node may be in
// different slots.
func deleteMatching(ctx context.Context, c *redis.Client, pattern string) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			pipe := c.Pipeline()
			for _, k := range keys {
				pipe.Unlink(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// StandaloneStarter starts a standalone Redis server by other means than a
// local redis-server binary (a container, say) and returns its address and
// a function that stops it.
type StandaloneStarter func(ctx context.Context) (addr string, stop func(), err error)

var standaloneStarter struct {
	sync.Mutex
	fn StandaloneStarter
}

// RegisterStandaloneStarter sets the starter used for the standalone backend
// when REDIS_ADDR is unset and redis-server is not on PATH. Call it from
// TestMain before Main. The server it starts is shared by the binary's
// tests and stopped by Main. It does not cover the cluster backend.
func RegisterStandaloneStarter(start StandaloneStarter) {
	standaloneStarter.Lock()
	defer standaloneStarter.Unlock()
	standaloneStarter.fn = start
}

// sharedServer is one backend's server, started at most once per test
// binary, on first use.
type sharedServer struct {
	name  string
	start func(ctx context.Context) (addrs []string, how string, stop func() error, err error)

	once  sync.Once
	addrs []string
	how   string // how it was had, for the log and the tests
	err   error

	mu   sync.Mutex
	stop func() error
}

var (
	sharedStandalone = &sharedServer{name: NameStandalone, start: startStandalone}
	sharedCluster    = &sharedServer{name: NameCluster, start: startCluster}
)

// get returns the server's addresses, starting it on first use.
func (s *sharedServer) get(t testing.TB) ([]string, error) {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		begin := time.Now()
		addrs, how, stop, err := s.start(ctx)
		s.addrs, s.how, s.err = addrs, how, err
		s.mu.Lock()
		s.stop = stop
		s.mu.Unlock()
		if err == nil {
			t.Logf("redistest: %s backend: %s %s (%v)", s.name, how, strings.Join(addrs, ","), time.Since(begin).Round(time.Millisecond))
		}
	})
	return s.addrs, s.err
}

// shutdown stops the server if the harness started it.
func (s *sharedServer) shutdown() error {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop == nil {
		return nil
	}
	return stop()
}

// splitAddrs splits a comma-separated address list.
func splitAddrs(v string) []string {
	var out []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func startStandalone(ctx context.Context) ([]string, string, func() error, error) {
	if v, name := redisenv.Lookup(); v != "" {
		addr, err := redisenv.Addr(v)
		if err != nil {
			return nil, "", nil, fmt.Errorf("redistest: %s: %w", name, err)
		}
		if _, err := rawDo(ctx, addr, "PING"); err != nil {
			return nil, "", nil, fmt.Errorf("redistest: %s=%s: PING: %w", name, redisenv.Redact(v), err)
		}
		return []string{addr}, "using " + name, nil, nil
	}
	mode, err := currentMode()
	if err != nil {
		return nil, "", nil, err
	}
	switch mode {
	case modeContainer:
		return startContainer(ctx)
	case modeStarter:
		standaloneStarter.Lock()
		start := standaloneStarter.fn
		standaloneStarter.Unlock()
		addr, stop, err := start(ctx)
		if err != nil {
			return nil, "", nil, fmt.Errorf("redistest: standalone starter: %w", err)
		}
		return []string{addr}, "started by the registered starter", func() error {
			if stop != nil {
				stop()
			}
			return nil
		}, nil
	}
	s, err := newServer(ctx, serverConfig{name: "shared-standalone"})
	if err != nil {
		return nil, "", nil, err
	}
	return []string{s.Addr()}, "started redis-server", s.destroy, nil
}

func startCluster(ctx context.Context) ([]string, string, func() error, error) {
	if v := os.Getenv(EnvCluster); strings.TrimSpace(v) != "" {
		addrs := splitAddrs(v)
		info, err := rawDo(ctx, addrs[0], "CLUSTER", "INFO")
		if err != nil {
			return nil, "", nil, fmt.Errorf("redistest: %s=%s: CLUSTER INFO: %w", EnvCluster, v, err)
		}
		if st := infoField(info, "cluster_state"); st != "ok" {
			return nil, "", nil, fmt.Errorf("redistest: %s=%s: cluster_state:%s", EnvCluster, v, st)
		}
		return addrs, "using " + EnvCluster, nil, nil
	}
	c, err := newCluster(ctx, "shared-cluster", ClusterOptions{Masters: 3})
	if err != nil {
		return nil, "", nil, err
	}
	return c.Addrs(), "started a 3-master cluster (" + c.timing + ")", c.destroy, nil
}
