// Package exredis finds or starts the Redis server the example programs
// talk to, and gives them a context that ends on Ctrl-C.
package exredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/pidrecord"
	"github.com/syncfanout/syncfanout/internal/redisenv"
)

// DefaultAddr is where the examples look for Redis when neither a flag nor
// the environment names one.
const DefaultAddr = "127.0.0.1:6379"

// EnvAddr names a Redis server, host:port or URL; REDIS_URL, when set,
// wins over it (see internal/redisenv).
const EnvAddr = redisenv.EnvAddr

// InstallHint is the one line printed when no redis-server binary is found.
const InstallHint = "redis-server not found: install it (Debian/Ubuntu: sudo apt-get install -y redis-server) or point REDIS_ADDR at a running Redis"

// ErrNoRedisServer means redis-server is not on PATH; its text is InstallHint.
var ErrNoRedisServer = errors.New(InstallHint)

// quietLogger drops go-redis's own log lines (pool dial failures and the
// like): the examples report a failure once, in words, and the library
// logs what matters through slog.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietLogger{}) }

// EnvValue returns the server named by the environment: $REDIS_URL, else
// $REDIS_ADDR, else "".
func EnvValue() string {
	v, _ := redisenv.Lookup()
	return v
}

// AddrDefault is the default of the examples' -redis flag: $REDIS_URL,
// else $REDIS_ADDR, else DefaultAddr.
func AddrDefault() string {
	if v := EnvValue(); v != "" {
		return v
	}
	return DefaultAddr
}

// connectTimeout bounds the first PING.
const connectTimeout = 5 * time.Second

// Connect returns a client for addr (host:port or a URL; several
// comma-separated host:port are Redis Cluster seeds) once Redis has
// answered a PING. When it does not, the error is one line that says so
// and what to do, and the client is closed.
func Connect(ctx context.Context, addr string) (redis.UniversalClient, error) {
	var rdb redis.UniversalClient
	if seeds := strings.Split(addr, ","); len(seeds) > 1 {
		for i := range seeds {
			a, err := redisenv.Addr(seeds[i])
			if err != nil {
				return nil, err
			}
			seeds[i] = a
		}
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds, ContextTimeoutEnabled: true})
	} else {
		o, err := redisenv.Options(addr)
		if err != nil {
			return nil, err
		}
		// Without it go-redis ignores the context's deadline on reads.
		o.ContextTimeoutEnabled = true
		rdb = redis.NewClient(o)
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &UnreachableError{Addr: redisenv.Redact(addr), Err: err}
	}
	return rdb, nil
}

// UnreachableError is Connect's error when Redis did not answer.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach Redis at %s: %s (start one with `redis-server`, or set REDIS_ADDR or REDIS_URL)", e.Addr, cause(e.Err))
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// cause is the part of a dial or read error a person needs: "connection
// refused" rather than "dial tcp 127.0.0.1:6379: connect: connection
// refused".
func cause(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %v", connectTimeout)
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// RunContext returns a context that ends on SIGINT or SIGTERM and, when
// d > 0, after d. The returned stop function releases the signal handler.
func RunContext(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if d <= 0 {
		return ctx, stopSignals
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, func() { cancel(); stopSignals() }
}

// Server is a throwaway redis-server: loopback only, no persistence, its
// data in a temporary directory removed by Stop.
type Server struct {
	Addr string

	cmd    *exec.Cmd
	dir    string
	exited chan struct{}
}

// Start runs redis-server on a free loopback port and waits until it
// answers PING. It returns ErrNoRedisServer when the binary is missing.
// Call Stop when done; the server also dies with this process on Linux.
func Start(ctx context.Context) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	var errs []error
	// Another process can take the port between the probe and the bind:
	// try a few.
	for range 5 {
		s, err := start(ctx, bin)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func start(ctx context.Context, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "syncfanout-redis-")
	if err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--logfile", log,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
	)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, dir: dir, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	// Under .ci/run, the examples' tests start servers too.
	if err := pidrecord.Record(cmd.Process.Pid); err != nil {
		_ = s.Stop()
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		tail := logTail(log)
		_ = s.Stop()
		return nil, fmt.Errorf("redis-server on %s: %w%s", s.Addr, err, tail)
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.Ping(ctx).Err() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.exited:
			return errors.New("exited before answering PING")
		case <-deadline.C:
			return errors.New("no answer to PING within 10s")
		case <-tick.C:
		}
	}
}

// Stop terminates the server (SIGTERM, then SIGKILL after 5s), waits for
// it and removes its directory. It is safe to call twice.
func (s *Server) Stop() error {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	return os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "\n  " + strings.Join(lines, "\n  ")
}

// Redact hides the password of a Redis URL, for messages.
func Redact(addr string) string { return redisenv.Redact(addr) }

// IsTerminal reports whether f (os.Stdin, say) is an interactive terminal.
func IsTerminal(f *os.File) bool { return isTerminal(f) }

func charDevice(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && f.Name() != os.DevNull
}

// WaitForEnter returns when a line (or end of file) arrives on f, or when
// ctx ends (Ctrl-C).
func WaitForEnter(ctx context.Context, f *os.File) {
	line := make(chan struct{})
	go func() {
		// Left blocked on Ctrl-C: the program is about to exit.
		_, _ = bufio.NewReader(f).ReadString('\n')
		close(line)
	}()
	select {
	case <-ctx.Done():
	case <-line:
	}
}
