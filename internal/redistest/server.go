package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/pidrecord"
)

// installHint is the one-line message for a machine without Redis.
const installHint = "redis-server not found: install it (apt-get install -y redis-server) or set REDIS_ADDR (or REDIS_URL) / REDIS_CLUSTER_ADDRS"

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 20 * time.Second

// errPortInUse means redis-server could not bind its port (or its cluster
// bus port): another process took it between the check and the bind.
var errPortInUse = errors.New("redistest: port already in use")

// ServerOptions configures a private standalone server started by NewServer.
type ServerOptions struct {
	// AOF turns on the append-only file with appendfsync always, so that
	// every acknowledged write survives Kill and Restart.
	AOF bool
	// Args are extra redis-server arguments, appended after the harness's
	// own (for example "--maxmemory", "10mb").
	Args []string
}

// Server is one redis-server process started by the harness, on a fixed
// loopback port and data dir that stay the same across Restart.
type Server struct {
	bin  string
	port int
	dir  string
	aof  bool
	args []string

	mu      sync.Mutex
	proc    *process
	logFrom map[string]int64 // log sizes when the current process started
}

// logNames are the server's log files in its data dir.
var logNames = []string{"stdout.log", "redis.log"}

// serverConfig describes a server to start.
type serverConfig struct {
	name    string // data dir name prefix
	cluster bool   // cluster-enabled node (its bus port, port+10000, must be free too)
	// nodeTimeout is a cluster node's cluster-node-timeout, in ms.
	nodeTimeout int
	aof         bool
	args        []string
}

// NewServer starts a private standalone redis-server for t: only this test
// uses it, so it may stop, kill and restart it. It is killed and its data
// dir removed at cleanup. NewServer fails the test when redis-server is not
// on PATH (REDIS_ADDR cannot stand in for a server the test must kill).
func NewServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	skipWithoutServer(t)
	s, err := newServer(context.Background(), serverConfig{name: "server", aof: opts.AOF, args: opts.Args})
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

// redisServerBin returns the path of redis-server, or the install hint.
func redisServerBin() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New(installHint)
	}
	return bin, nil
}

// newServer starts a server on a free port, trying other ports when another
// process wins the race for one.
func newServer(ctx context.Context, cfg serverConfig) (*Server, error) {
	bin, err := redisServerBin()
	if err != nil {
		return nil, err
	}
	base, err := baseDir()
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		port, err := pickPort(cfg.cluster)
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp(base, fmt.Sprintf("%s-%d-", cfg.name, port))
		if err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		s := &Server{bin: bin, port: port, dir: dir, aof: cfg.aof}
		s.args = serverArgs(port, dir, cfg)
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

// serverArgs returns the redis-server command line for cfg.
func serverArgs(port int, dir string, cfg serverConfig) []string {
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"),
		"--daemonize", "no",
		"--save", "",
		"--enable-debug-command", "local",
		// A replica's full sync starts at once, not after 5 s.
		"--repl-diskless-sync-delay", "0",
	}
	if cfg.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if cfg.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.Itoa(cfg.nodeTimeout),
		)
	}
	return append(args, cfg.args...)
}

// usedPorts are the ports handed out by this test binary, so that two
// servers started at once never pick the same one.
var usedPorts struct {
	sync.Mutex
	m map[int]bool
}

// FreePort returns a free loopback port that no other server of this test
// binary was given, for an extra listener such as a redis-server tls-port
// (ServerOptions.Args).
func FreePort() (int, error) { return pickPort(false) }

// pickPort returns a free loopback port below Linux's ephemeral range
// (32768+), where no outgoing connection can take it; for a cluster node its
// bus port (port+10000) is free as well.
func pickPort(bus bool) (int, error) {
	usedPorts.Lock()
	defer usedPorts.Unlock()
	if usedPorts.m == nil {
		usedPorts.m = make(map[int]bool)
	}
	for range 1000 {
		p := 10000 + rand.IntN(12768) // 10000..22767, bus port 20000..32767
		if usedPorts.m[p] || !portFree(p) || (bus && !portFree(p+10000)) {
			continue
		}
		usedPorts.m[p] = true
		return p, nil
	}
	return 0, errors.New("redistest: no free loopback port found")
}

// portFree reports whether 127.0.0.1:port can be listened on.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// Addr returns the server's address, 127.0.0.1:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Dir returns the server's data dir (AOF and cluster config live there).
func (s *Server) Dir() string { return s.dir }

// PID returns the pid of the running redis-server, or 0 when it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.pid
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool { return s.PID() != 0 }

// start starts the process and waits until it answers PING as itself.
func (s *Server) start(ctx context.Context) error {
	from := make(map[string]int64)
	for _, name := range logNames {
		if fi, err := os.Stat(filepath.Join(s.dir, name)); err == nil {
			from[name] = fi.Size()
		}
	}
	s.mu.Lock()
	s.logFrom = from
	s.mu.Unlock()

	out, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout = out
	cmd.Stderr = out
	p, err := startProcess(cmd)
	_ = out.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	// .ci/run judges only the servers its tests started.
	if err := pidrecord.Record(p.pid); err != nil {
		_ = p.kill()
		return fmt.Errorf("redistest: %w", err)
	}
	if err := s.waitReady(ctx, p); err != nil {
		_ = p.kill()
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady waits until the server answers PING and INFO reports the pid
// of p: a PONG from another process that took the port does not count.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	want := strconv.Itoa(p.pid)
	for {
		if p.exited() {
			tail := s.logTail()
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("%w: %s", errPortInUse, s.Addr())
			}
			return fmt.Errorf("redistest: redis-server on %s exited at start (%v): %s", s.Addr(), p.err, tail)
		}
		if pong, err := rawDo(ctx, s.Addr(), "PING"); err == nil && pong == "PONG" {
			info, err := rawDo(ctx, s.Addr(), "INFO", "server")
			if err == nil && infoField(info, "process_id") == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: redis-server on %s not ready after %v: %s", s.Addr(), startTimeout, s.logTail())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// logTail returns the end of what the current process wrote to its logs,
// for error messages.
func (s *Server) logTail() string {
	s.mu.Lock()
	from := s.logFrom
	s.mu.Unlock()
	var b strings.Builder
	for _, name := range logNames {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			continue
		}
		if off := from[name]; off > 0 && off <= int64(len(data)) {
			data = data[off:]
		}
		text := strings.TrimSpace(string(data))
		if len(text) > 1500 {
			text = "..." + text[len(text)-1500:]
		}
		if text != "" {
			b.WriteString(text)
			b.WriteString("\n")
		}
	}
	return strings.TrimSpace(b.String())
}

// current returns the server's current process, nil before the first start.
func (s *Server) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Stop shuts the server down gracefully and waits for it to exit: SHUTDOWN
// NOSAVE NOW (SHUTDOWN NOW with AOF, which flushes the append-only file),
// then SIGTERM, then SIGKILL if it still runs. Stopping a stopped server is
// a no-op.
func (s *Server) Stop() error {
	p := s.current()
	if p == nil || p.exited() {
		return nil
	}
	args := []string{"SHUTDOWN", "NOSAVE", "NOW"}
	if s.aof {
		args = []string{"SHUTDOWN", "NOW"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = rawDo(ctx, s.Addr(), args...) // on success the server just closes the connection
	if p.wait(10 * time.Second) {
		return nil
	}
	p.signal(syscall.SIGTERM)
	if p.wait(10 * time.Second) {
		return nil
	}
	return p.kill()
}

// Kill kills the server with SIGKILL (kill -9) and waits for it to exit.
// Killing a stopped server is a no-op.
func (s *Server) Kill() error {
	p := s.current()
	if p == nil {
		return nil
	}
	return p.kill()
}

// Restart starts the server again on the same port and data dir and waits
// until it answers PING (after loading its AOF, if any). A server that is
// still running is stopped gracefully first.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := s.start(ctx)
		if !errors.Is(err, errPortInUse) {
			return err
		}
		// Someone holds the port; it may be released soon.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Client returns a new client for this server, closed at cleanup. It is
// closed before the server is killed, since cleanups run last-in first-out.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// destroy kills the server and removes its data dir.
func (s *Server) destroy() error {
	err := s.Kill()
	return errors.Join(err, os.RemoveAll(s.dir))
}
