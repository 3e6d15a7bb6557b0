package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/pidrecord"
	"github.com/syncfanout/syncfanout/queue"
)

// Env is the Redis server under test and the helpers every workload uses.
type Env struct {
	cfg          Config
	log          io.Writer
	addr         string
	source       string // "started by the benchmark" or "REDIS_ADDR"
	redisVersion string
	admin        *redis.Client // INFO, MEMORY USAGE, cleanup: never used by a workload
	proc         *exec.Cmd
	dir          string

	counter *cmdCounter // commands sent by workload connections

	mu      sync.Mutex
	clients []*redis.Client
}

func newEnv(ctx context.Context, cfg Config, log io.Writer) (*Env, error) {
	e := &Env{cfg: cfg, log: log, counter: newCmdCounter()}
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		e.addr, e.source = addr, "REDIS_ADDR, shared: CPU and memory figures include other traffic"
	} else {
		if err := e.startServer(ctx); err != nil {
			return nil, err
		}
		e.source = "started by the benchmark"
	}
	e.admin = redis.NewClient(&redis.Options{Addr: e.addr, PoolSize: 2})
	info, err := e.admin.Info(ctx, "server").Result()
	if err != nil {
		e.close()
		return nil, fmt.Errorf("redis at %s: %w", e.addr, err)
	}
	e.redisVersion = infoField(info, "redis_version")
	return e, nil
}

// startServer runs a private redis-server without persistence on a free
// loopback port.
func (e *Env) startServer(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found: install it (make ensure-redis) or set REDIS_ADDR")
	}
	if e.dir, err = os.MkdirTemp("", "syncfanout-bench-redis-"); err != nil {
		return err
	}
	for attempt := 0; attempt < 5; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		e.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", e.dir, "--logfile", filepath.Join(e.dir, "redis.log"),
			"--save", "", "--appendonly", "no", "--daemonize", "no",
			// Workloads keep tens of thousands of client sets and rooms.
			"--maxclients", "10000")
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting redis-server: %w", err)
		}
		// Under .ci/run, TestBenchShort starts one too.
		if err := pidrecord.Record(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return err
		}
		c := redis.NewClient(&redis.Options{Addr: e.addr, MaxRetries: -1})
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if err = c.Ping(ctx).Err(); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = c.Close()
		if err == nil {
			e.proc = cmd
			return nil
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	log, _ := os.ReadFile(filepath.Join(e.dir, "redis.log"))
	return fmt.Errorf("redis-server did not start: %s", lastLines(string(log), 5))
}

func (e *Env) close() {
	e.mu.Lock()
	for _, c := range e.clients {
		_ = c.Close()
	}
	e.clients = nil
	e.mu.Unlock()
	if e.admin != nil {
		_ = e.admin.Close()
	}
	if e.proc != nil {
		_ = e.proc.Process.Kill()
		_ = e.proc.Wait()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// client returns a new connection pool to the server, as a separate process
// would have. Env.closeClients closes them.
func (e *Env) client(poolSize int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: e.addr, PoolSize: poolSize, Dialer: e.counter.dialer()})
	e.mu.Lock()
	e.clients = append(e.clients, c)
	e.mu.Unlock()
	return c
}

// closeClients closes every client handed out since the last call.
func (e *Env) closeClients() {
	e.mu.Lock()
	cs := e.clients
	e.clients = nil
	e.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

// newPrefix returns a key prefix of its own for one run of a workload.
func newPrefix(what string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "bench-" + what + "-" + hex.EncodeToString(b[:])
}

// queueOptions are the options every workload starts from: a long client
// timeout (nobody is evicted while a workload sets up), housekeeping only
// where a workload turns it on, default stream retention.
func queueOptions(prefix string) queue.Options {
	return queue.Options{
		Prefix:              prefix,
		ClientTimeout:       10 * time.Minute,
		DisableHousekeeping: true,
	}
}

// cleanup deletes every key under prefix, so that the next workload starts
// from a server holding nothing but its own keys.
func (e *Env) cleanup(ctx context.Context, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := e.admin.Scan(ctx, cursor, prefix+":*", 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := e.admin.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// Snapshot is what INFO says at one moment, with the commands the
// workload connections sent so far.
type Snapshot struct {
	At         time.Time
	CPUMicros  float64          // used_cpu_sys + used_cpu_user
	SysMicros  float64          // used_cpu_sys: the kernel's part (sockets, mostly)
	UsedMemory int64            // used_memory
	Calls      map[string]int64 // commandstats calls by command (top-level and in scripts)
	Usec       map[string]int64 // commandstats usec by command: time spent executing it
	Sent       map[string]int64 // commands sent by workload connections, by name
	Writes     int64            // socket writes of workload connections (round trips)
}

func (e *Env) snapshot(ctx context.Context) (Snapshot, error) {
	sent, writes := e.counter.snapshot()
	info, err := e.admin.Info(ctx, "cpu", "memory", "commandstats").Result()
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{At: time.Now(), Calls: map[string]int64{}, Usec: map[string]int64{}, Sent: sent, Writes: writes}
	sys, _ := strconv.ParseFloat(infoField(info, "used_cpu_sys"), 64)
	user, _ := strconv.ParseFloat(infoField(info, "used_cpu_user"), 64)
	s.CPUMicros = (sys + user) * 1e6
	s.SysMicros = sys * 1e6
	s.UsedMemory, _ = strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				s.Calls[strings.TrimPrefix(name, "cmdstat_")] = n
			}
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				s.Usec[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return s, nil
}

func (e *Env) connectedClients(ctx context.Context) (int, error) {
	info, err := e.admin.Info(ctx, "clients").Result()
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(infoField(info, "connected_clients"))
}

// handshake are the commands a new connection sends before any work.
var handshake = map[string]bool{"hello": true, "client": true, "auth": true, "select": true}

// Cost is the Redis-side cost of a measured window.
type Cost struct {
	CPUMicros float64
	SysMicros float64
	// ScriptMicros is the time Redis spent running scripts (FCALL,
	// EVALSHA and EVAL, with the commands they call): the rest of CPUMicros is the
	// event loop, the protocol and the kernel's sockets.
	ScriptMicros float64
	TopLevel     int64            // commands sent by clients
	RoundTrips   int64            // socket writes by clients (a pipeline is one)
	Inner        int64            // commands run inside scripts
	ByCommand    map[string]int64 // top-level commands by name
}

func costBetween(a, b Snapshot) Cost {
	c := Cost{CPUMicros: b.CPUMicros - a.CPUMicros, SysMicros: b.SysMicros - a.SysMicros, RoundTrips: b.Writes - a.Writes, ByCommand: map[string]int64{}}
	for _, name := range []string{"fcall", "evalsha", "eval"} {
		c.ScriptMicros += float64(b.Usec[name] - a.Usec[name])
	}
	var sent int64
	for name, n := range b.Sent {
		d := n - a.Sent[name]
		if d <= 0 {
			continue
		}
		sent += d
		if !handshake[name] {
			c.TopLevel += d
			c.ByCommand[name] += d
		}
	}
	var served int64
	for name, n := range b.Calls {
		if d := n - a.Calls[name]; d > 0 && !strings.HasPrefix(name, "info") {
			served += d
		}
	}
	// Redis counts the commands scripts run as calls too.
	c.Inner = max(0, served-sent)
	return c
}

func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
