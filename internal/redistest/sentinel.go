package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions configures a private Sentinel deployment started by
// NewSentinel.
type SentinelOptions struct {
	// MasterName is the name the Sentinels monitor the master under
	// (default "mymaster").
	MasterName string
	// Sentinels is the number of Sentinels (default 3); the quorum is a
	// majority of them.
	Sentinels int
	// DownAfter is the Sentinels' down-after-milliseconds: how long the
	// master must be silent before they start a failover (default 1s).
	DownAfter time.Duration
	// FailoverTimeout is the Sentinels' failover-timeout (default 2s): a
	// failover attempt that fails (the Sentinels' votes split) is retried
	// after twice this.
	FailoverTimeout time.Duration
}

// SentinelServers is a master, one replica and the Sentinels that monitor
// them, all redis-server processes started by the harness (a Sentinel is
// redis-server --sentinel). A fault test may kill the master and watch the
// Sentinels promote the replica.
type SentinelServers struct {
	name      string
	master    *Server
	replica   *Server
	sentinels []*Server
}

// NewSentinel starts a master, a replica of it and opts.Sentinels
// Sentinels monitoring it, and waits until every Sentinel knows the
// replica and the other Sentinels and the replica is in sync. Everything
// is killed and its data dirs removed at cleanup.
func NewSentinel(t testing.TB, opts SentinelOptions) *SentinelServers {
	t.Helper()
	skipWithoutServer(t)
	s, err := newSentinel(context.Background(), opts)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.destroy(); err != nil {
			t.Errorf("redistest: %v", err)
		}
	})
	return s
}

func newSentinel(ctx context.Context, opts SentinelOptions) (*SentinelServers, error) {
	if opts.MasterName == "" {
		opts.MasterName = "mymaster"
	}
	if opts.Sentinels == 0 {
		opts.Sentinels = 3
	}
	if opts.DownAfter == 0 {
		opts.DownAfter = time.Second
	}
	if opts.FailoverTimeout == 0 {
		opts.FailoverTimeout = 2 * time.Second
	}
	if opts.Sentinels < 1 {
		return nil, fmt.Errorf("redistest: %d Sentinels", opts.Sentinels)
	}
	s := &SentinelServers{name: opts.MasterName}
	var err error
	if s.master, err = newServer(ctx, serverConfig{name: "sentinel-master"}); err != nil {
		return nil, err
	}
	mhost, mport, _ := net.SplitHostPort(s.master.Addr())
	if s.replica, err = newServer(ctx, serverConfig{name: "sentinel-replica", args: []string{"--replicaof", mhost, mport}}); err != nil {
		return nil, errors.Join(err, s.destroy())
	}
	quorum := opts.Sentinels/2 + 1
	s.sentinels = make([]*Server, opts.Sentinels)
	errs := make([]error, opts.Sentinels)
	var wg sync.WaitGroup
	for i := range s.sentinels {
		wg.Go(func() {
			s.sentinels[i], errs[i] = newSentinelServer(ctx, func(port int, dir string) string {
				return fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nlogfile %s\n"+
					"sentinel monitor %s %s %s %d\n"+
					"sentinel down-after-milliseconds %s %d\n"+
					"sentinel failover-timeout %s %d\n"+
					"sentinel parallel-syncs %s 1\n",
					port, dir, filepath.Join(dir, "redis.log"),
					opts.MasterName, mhost, mport, quorum,
					opts.MasterName, opts.DownAfter.Milliseconds(),
					opts.MasterName, opts.FailoverTimeout.Milliseconds(),
					opts.MasterName)
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, s.destroy())
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.waitReady(wctx); err != nil {
		return nil, errors.Join(err, s.destroy())
	}
	return s, nil
}

// newSentinelServer starts redis-server --sentinel with the config conf
// writes for its port and data dir (a Sentinel rewrites its config file,
// so it lives in the data dir), trying other ports when one is taken.
func newSentinelServer(ctx context.Context, conf func(port int, dir string) string) (*Server, error) {
	bin, err := redisServerBin()
	if err != nil {
		return nil, err
	}
	base, err := baseDir()
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		port, err := pickPort(false)
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp(base, fmt.Sprintf("sentinel-%d-", port))
		if err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf(port, dir)), 0o644); err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		s := &Server{bin: bin, port: port, dir: dir, args: []string{path, "--sentinel"}}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		_ = os.RemoveAll(dir)
		if !errors.Is(err, errPortInUse) || attempt >= 5 {
			return nil, err
		}
	}
}

// waitReady waits until the replica is in sync and every Sentinel sees
// the master up, its replica and every other Sentinel: before that, a
// kill of the master would not be failed over.
func (s *SentinelServers) waitReady(ctx context.Context) error {
	var last error
	for {
		if last = s.ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: sentinels not ready: %w", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *SentinelServers) ready(ctx context.Context) error {
	repl, err := rawDo(ctx, s.replica.Addr(), "INFO", "replication")
	if err != nil {
		return err
	}
	if v := infoField(repl, "master_link_status"); v != "up" {
		return fmt.Errorf("replica link %q", v)
	}
	for _, sn := range s.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr()})
		m, err := c.Master(ctx, s.name).Result()
		_ = c.Close()
		if err != nil {
			return fmt.Errorf("%s: SENTINEL MASTER: %w", sn.Addr(), err)
		}
		if m["flags"] != "master" || m["num-slaves"] != "1" || m["num-other-sentinels"] != strconv.Itoa(len(s.sentinels)-1) {
			return fmt.Errorf("%s sees flags=%s replicas=%s other sentinels=%s", sn.Addr(), m["flags"], m["num-slaves"], m["num-other-sentinels"])
		}
	}
	return nil
}

// MasterName returns the name the Sentinels monitor the master under.
func (s *SentinelServers) MasterName() string { return s.name }

// Master returns the server started as the master.
func (s *SentinelServers) Master() *Server { return s.master }

// Replica returns the server started as the master's replica.
func (s *SentinelServers) Replica() *Server { return s.replica }

// SentinelAddrs returns the Sentinels' addresses.
func (s *SentinelServers) SentinelAddrs() []string {
	out := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		out[i] = sn.Addr()
	}
	return out
}

// Role returns what srv says it is in INFO replication: "master" or
// "slave".
func Role(ctx context.Context, srv *Server) (string, error) {
	info, err := rawDo(ctx, srv.Addr(), "INFO", "replication")
	if err != nil {
		return "", err
	}
	return infoField(info, "role"), nil
}

// Client returns a failover client (go-redis's, default options but the
// names) for the deployment, closed at cleanup.
func (s *SentinelServers) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	c := redis.NewUniversalClient(&redis.UniversalOptions{MasterName: s.name, Addrs: s.SentinelAddrs()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// destroy kills every server and removes their data dirs.
func (s *SentinelServers) destroy() error {
	var errs []error
	for _, srv := range append([]*Server{s.master, s.replica}, s.sentinels...) {
		if srv != nil {
			errs = append(errs, srv.destroy())
		}
	}
	return errors.Join(errs...)
}
