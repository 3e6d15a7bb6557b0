package redistest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syncfanout/syncfanout/internal/pidrecord"
	"github.com/syncfanout/syncfanout/internal/redisenv"
)

// Environment variables that choose how the shared servers are had.
const (
	// EnvBackend chooses how the shared standalone server is started when
	// REDIS_ADDR/REDIS_URL name none: "process" (a redis-server process),
	// "testcontainers" (redis-server in a Docker container, through
	// testcontainers-go), or unset: a process when redis-server is on PATH,
	// else a registered starter, else a container when a Docker daemon
	// answers.
	EnvBackend = "SYNCFANOUT_REDIS_BACKEND"
	// EnvOnly, "standalone" or "cluster", makes Backends run that subtest
	// only (the other one skips, saying why) and Standalone or Cluster skip
	// when they name the other: a second pass over a package, through
	// another backend, need not repeat the cluster runs.
	EnvOnly = "SYNCFANOUT_REDIS_ONLY"
	// EnvContainerHelper names a prebuilt internal/rediscontainer binary;
	// unset, the harness builds it with the go command (once per source
	// version, cached under the user cache dir).
	EnvContainerHelper = "SYNCFANOUT_REDIS_CONTAINER_HELPER"
)

// Values of EnvBackend.
const (
	BackendProcess        = "process"
	BackendTestcontainers = "testcontainers"
)

// standaloneMode is how the shared standalone server is had when no
// address is given.
type standaloneMode string

const (
	modeProcess   standaloneMode = BackendProcess
	modeStarter   standaloneMode = "starter"
	modeContainer standaloneMode = BackendTestcontainers
)

// chooseStandalone decides between a redis-server process, a registered
// starter and a container. dockerAnswers is called only when nothing else
// fits, since it dials the daemon.
func chooseStandalone(backend string, haveServer, haveStarter bool, dockerAnswers func() bool) (standaloneMode, error) {
	switch backend {
	case BackendTestcontainers:
		return modeContainer, nil
	case BackendProcess:
		if !haveServer {
			return "", fmt.Errorf("redistest: %s=%s: %s", EnvBackend, backend, installHint)
		}
		return modeProcess, nil
	case "":
	default:
		return "", fmt.Errorf("redistest: %s=%q: want %q or %q, or leave it unset", EnvBackend, backend, BackendProcess, BackendTestcontainers)
	}
	switch {
	case haveServer:
		return modeProcess, nil
	case haveStarter:
		return modeStarter, nil
	case dockerAnswers():
		return modeContainer, nil
	}
	return "", fmt.Errorf("%s; or start Docker (no daemon answered at $DOCKER_HOST or the usual sockets; %s=%s makes the harness try anyway)",
		installHint, EnvBackend, BackendTestcontainers)
}

// currentMode is chooseStandalone for this process, decided once: the
// docker probe is not repeated by every test that asks.
var currentMode = sync.OnceValues(func() (standaloneMode, error) {
	_, serverErr := redisServerBin()
	standaloneStarter.Lock()
	haveStarter := standaloneStarter.fn != nil
	standaloneStarter.Unlock()
	return chooseStandalone(strings.TrimSpace(os.Getenv(EnvBackend)), serverErr == nil, haveStarter, func() bool {
		_, ok := findDocker()
		return ok
	})
})

// SkipWithoutServer is for tests that start redis-server themselves (an
// example program's throwaway server): see skipWithoutServer.
func SkipWithoutServer(t testing.TB) {
	t.Helper()
	skipWithoutServer(t)
}

// skipWithoutServer is for what needs redis-server processes (the cluster
// backend, private servers): on a machine without redis-server whose
// standalone server runs in a container, the test skips, saying why,
// rather than fail. Not under CI, which must run everything: there the
// start fails with the install hint.
func skipWithoutServer(t testing.TB) {
	t.Helper()
	if _, err := redisServerBin(); err == nil || os.Getenv("CI") != "" {
		return
	}
	if mode, err := currentMode(); err == nil && mode == modeContainer {
		t.Skipf("redistest: redis-server not found; the standalone server runs in a container (testcontainers), but this test needs redis-server processes (cluster or private servers): install redis-server to run it")
	}
}

// startContainerEarly starts the shared standalone server before the
// tests run when it is to be a container, so that its start (a second or
// so; minutes when the helper must first be compiled) is not charged to
// whichever test asks first, inside that test's deadlines, while the
// package's other tests run on. A redis-server process starts in
// milliseconds and stays lazy. A binary that never uses the server pays
// the start for nothing.
func startContainerEarly() {
	if v, _ := redisenv.Lookup(); v != "" {
		return
	}
	if mode, err := currentMode(); err != nil || mode != modeContainer {
		return
	}
	begin := time.Now()
	addrs, err := sharedStandalone.getUntested()
	if err != nil {
		return // the tests that use the server fail with err
	}
	fmt.Printf("redistest: %s backend: %s %s (%v)\n", NameStandalone, sharedStandalone.how, strings.Join(addrs, ","), time.Since(begin).Round(time.Millisecond))
}

// skipUnlessOnly skips t when EnvOnly names another backend than name.
func skipUnlessOnly(t testing.TB, name string) {
	t.Helper()
	switch only := strings.TrimSpace(os.Getenv(EnvOnly)); only {
	case "", name:
	case NameStandalone, NameCluster:
		t.Skipf("redistest: %s=%s", EnvOnly, only)
	default:
		t.Fatalf("redistest: %s=%q: want %q or %q", EnvOnly, only, NameStandalone, NameCluster)
	}
}

// dockerSockets are where a daemon is looked for when DOCKER_HOST is unset:
// the system socket, rootless Docker, Docker Desktop.
func dockerSockets() []string {
	socks := []string{"/var/run/docker.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		socks = append(socks, filepath.Join(d, "docker.sock"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		socks = append(socks, filepath.Join(h, ".docker", "run", "docker.sock"), filepath.Join(h, ".docker", "desktop", "docker.sock"))
	}
	return socks
}

// findDocker returns the DOCKER_HOST of a daemon that answers /_ping:
// $DOCKER_HOST when set (and then only it), else the first of the usual
// sockets.
func findDocker() (string, bool) {
	if h := strings.TrimSpace(os.Getenv("DOCKER_HOST")); h != "" {
		return h, dockerPing(h) == nil
	}
	for _, s := range dockerSockets() {
		h := "unix://" + s
		if dockerPing(h) == nil {
			return h, true
		}
	}
	return "", false
}

// dockerClient returns an HTTP client for the Engine API at host
// (unix:///path or tcp://host:port; no TLS) and the URL prefix to use.
func dockerClient(host string) (*http.Client, string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, "", err
	}
	tr := &http.Transport{DisableKeepAlives: true}
	switch u.Scheme {
	case "unix":
		path := u.Path
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}, "http://docker", nil
	case "tcp":
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}, "http://" + u.Host, nil
	}
	return nil, "", fmt.Errorf("DOCKER_HOST=%s: only unix:// and tcp:// are probed", host)
}

// dockerPing asks the daemon at host for GET /_ping, which answers "OK".
func dockerPing(host string) error {
	c, base, err := dockerClient(host)
	if err != nil {
		return err
	}
	resp, err := c.Get(base + "/_ping")
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "OK" {
		return fmt.Errorf("docker %s: /_ping answered %d %q", host, resp.StatusCode, body)
	}
	return nil
}

// containerReady is the helper's line once its server accepts connections.
type containerReady struct {
	Addr  string `json:"addr"`
	PID   int    `json:"pid"`
	ID    string `json:"id"`
	Image string `json:"image"`
}

// startContainer runs the shared standalone server in a container, through
// the internal/rediscontainer helper, on a free loopback port (another one
// when the port is taken before the server binds it).
func startContainer(ctx context.Context) ([]string, string, func() error, error) {
	bin, err := containerHelper()
	if err != nil {
		return nil, "", nil, err
	}
	// The first build of the helper may have used up most of ctx: the
	// container gets a bound of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for attempt := 0; ; attempt++ {
		port, err := pickPort(false)
		if err != nil {
			return nil, "", nil, err
		}
		c, err := startContainerOnce(ctx, bin, port)
		if err == nil {
			return []string{c.ready.Addr}, fmt.Sprintf("started redis-server in a container (testcontainers, image %s, container %.12s)", c.ready.Image, c.ready.ID), c.stop, nil
		}
		if !errors.Is(err, errPortInUse) || attempt >= 5 {
			return nil, "", nil, err
		}
	}
}

// containerServer is a helper process and the container it owns.
type containerServer struct {
	proc  *process
	stdin *os.File // closing it asks the helper to remove the container and exit
	log   string   // the helper's stderr
	ready containerReady
}

func startContainerOnce(ctx context.Context, bin string, port int) (*containerServer, error) {
	base, err := baseDir()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(base, fmt.Sprintf("rediscontainer-%d.log", port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	defer func() { _ = logFile.Close() }() // the child has its own copy
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("redistest: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = inR.Close()
		_ = inW.Close()
		return nil, fmt.Errorf("redistest: %w", err)
	}
	cmd := exec.Command(bin, "-port", strconv.Itoa(port), "-owner", strconv.Itoa(os.Getpid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, logFile
	if h, ok := findDocker(); ok {
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+h)
	}
	// SIGTERM, not SIGKILL, when the harness dies: the helper must live long
	// enough to remove its container.
	cmd.SysProcAttr = helperProcAttr()
	p, err := startProcess(cmd)
	_ = inR.Close()
	_ = outW.Close()
	if err != nil {
		_ = inW.Close()
		_ = outR.Close()
		return nil, fmt.Errorf("redistest: start %s: %w", bin, err)
	}
	c := &containerServer{proc: p, stdin: inW, log: logPath}

	lines := make(chan string, 1)
	go func() {
		defer func() { _ = outR.Close() }()
		line, _ := bufio.NewReader(outR).ReadString('\n')
		lines <- line // "" when the helper exited first
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
	}
	if line == "" || json.Unmarshal([]byte(line), &c.ready) != nil || c.ready.Addr == "" {
		stopErr := c.stop()
		tail := c.logTail()
		if strings.Contains(tail, "Address already in use") {
			return nil, fmt.Errorf("%w: 127.0.0.1:%d", errPortInUse, port)
		}
		return nil, errors.Join(fmt.Errorf("redistest: redis-server container did not start (%v): %s", context.Cause(ctx), tail), stopErr)
	}
	// .ci/run judges the servers its tests started: this one too, as long
	// as the daemon shares our pid namespace (it does not in a VM, where the
	// pid would name some other process).
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.ready.PID)); err == nil && strings.TrimSpace(string(comm)) == "redis-server" {
		if err := pidrecord.Record(c.ready.PID); err != nil {
			return nil, errors.Join(fmt.Errorf("redistest: %w", err), c.stop())
		}
	}
	if _, err := rawDo(ctx, c.ready.Addr, "PING"); err != nil {
		return nil, errors.Join(fmt.Errorf("redistest: container %.12s on %s: PING: %w", c.ready.ID, c.ready.Addr, err), c.stop())
	}
	return c, nil
}

// stop closes the helper's stdin, upon which it removes the container and
// exits, and waits for that; then SIGTERM, then SIGKILL. An error from the
// helper (it could not remove the container) is returned.
func (c *containerServer) stop() error {
	_ = c.stdin.Close()
	p := c.proc
	if !p.wait(30 * time.Second) {
		p.signal(syscall.SIGTERM)
		if !p.wait(10 * time.Second) {
			return errors.Join(fmt.Errorf("redistest: container helper pid %d did not exit: %s", p.pid, c.logTail()), p.kill())
		}
	}
	if p.err != nil {
		return fmt.Errorf("redistest: container helper: %v: %s", p.err, c.logTail())
	}
	return nil
}

func (c *containerServer) logTail() string {
	data, _ := os.ReadFile(c.log)
	text := strings.TrimSpace(string(data))
	if len(text) > 2000 {
		text = "..." + text[len(text)-2000:]
	}
	return text
}

// helperSource is where the helper's module lives, from the repository
// root.
const helperSource = "internal/rediscontainer"

// helperBuild builds the helper at most once per test binary.
var helperBuild = sync.OnceValues(buildContainerHelper)

// containerHelper returns the path of the helper binary: $EnvContainerHelper,
// or one built from the repository's source.
func containerHelper() (string, error) {
	if p := strings.TrimSpace(os.Getenv(EnvContainerHelper)); p != "" {
		return p, nil
	}
	return helperBuild()
}

// buildContainerHelper builds the helper into the user cache dir, under a
// name that hashes its source, so that test binaries share one build and a
// changed source gets a new one. A file lock keeps the test binaries of
// one `go test ./...` from building it side by side.
func buildContainerHelper() (string, error) {
	src, err := findHelperSource()
	if err != nil {
		return "", err
	}
	sum, err := hashSource(src)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "syncfanout-redistest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("redistest: %w", err)
	}
	bin := filepath.Join(dir, "rediscontainer-"+sum)
	unlock, err := lockFile(filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", fmt.Errorf("redistest: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	// Its own bound, not the server start's: a first build compiles the
	// Docker client and takes a while.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tmp := bin + ".tmp" + strconv.Itoa(os.Getpid())
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-buildvcs=false", "-o", tmp, ".")
	cmd.Dir = src
	// No cgo: no C compiler needed, and PATH may be bare.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("redistest: building the container helper (%s): %v: %s", src, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("redistest: %w", err)
	}
	return bin, nil
}

// findHelperSource looks for the helper's module from the working
// directory up: go test runs a package's tests in its own directory,
// somewhere in the repository.
func findHelperSource() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		src := filepath.Join(dir, filepath.FromSlash(helperSource))
		if _, err := os.Stat(filepath.Join(src, "go.mod")); err == nil {
			return src, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("redistest: %s not found above the working directory; set %s to a built helper", helperSource, EnvContainerHelper)
		}
		dir = parent
	}
}

// hashSource hashes the helper's go.mod, go.sum and Go files.
func hashSource(src string) (string, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go")) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", n, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
