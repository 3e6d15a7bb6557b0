// Command rediscontainer runs one standalone redis-server in a Docker
// container, through testcontainers-go, for the test harness
// (internal/redistest) on machines that have Docker but no redis-server, or
// when SYNCFANOUT_REDIS_BACKEND=testcontainers asks for it.
//
// It is a module of its own so that the Docker client and the rest of
// testcontainers-go's dependency tree never reach the root go.mod, and so
// never reach the build or the module graph of the library's users. The
// harness builds it with the go command and talks to it over stdin/stdout:
//
//	rediscontainer -port 12345
//
// prints one JSON line, {"addr":"127.0.0.1:12345","pid":...,"id":...,
// "image":...}, once the server accepts connections, then waits. When its
// standard input reaches EOF (the harness closed it, or the test binary died
// and the pipe went with it) or it gets SIGTERM/SIGINT/SIGHUP (the harness
// starts it with a parent-death signal), it removes the container and
// exits. That is the job Ryuk would do, done without pulling Ryuk's image.
//
// The container uses the host's network and binds redis-server to
// 127.0.0.1:port: the tests reach only loopback addresses, and the daemon
// may have no bridge at all (dockerd --bridge=none).
//
// The image is, in order: -image (or $SYNCFANOUT_REDIS_IMAGE), pulled if
// missing; else, on Linux, an image FROM scratch built locally from this
// machine's redis-server and the shared libraries ldd lists, so no registry
// is needed; else redis:7, pulled.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Labels on every container, so that leftovers can be found (.ci/run
// fails on any) and told apart by the test binary that owns them.
const (
	labelHarness = "org.syncfanout.redistest"
	labelOwner   = "org.syncfanout.redistest.owner"
)

// defaultImage is used where no local redis-server can be packed: a laptop
// with Docker and a registry, without redis-server.
const defaultImage = "redis:7"

// ready is the line printed once the server is up.
type ready struct {
	Addr  string `json:"addr"`
	PID   int    `json:"pid"` // the container's redis-server as the daemon's pid namespace sees it
	ID    string `json:"id"`
	Image string `json:"image"`
}

func main() {
	port := flag.Int("port", 0, "loopback port for redis-server (required)")
	image := flag.String("image", os.Getenv("SYNCFANOUT_REDIS_IMAGE"), "image to run instead of one built from the local redis-server")
	bin := flag.String("redis-server", "", "redis-server to pack into the image (default: PATH, then the usual install dirs)")
	owner := flag.String("owner", strconv.Itoa(os.Getppid()), "value of the owner label (the test binary's pid)")
	startTimeout := flag.Duration("start-timeout", 60*time.Second, "how long the build, start and first accept may take")
	flag.Parse()
	if err := run(*port, *image, *bin, *owner, *startTimeout); err != nil {
		fmt.Fprintf(os.Stderr, "rediscontainer: %v\n", err)
		os.Exit(1)
	}
}

func run(port int, image, bin, owner string, startTimeout time.Duration) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("-port %d: want 1..65535", port)
	}
	// Ryuk is a container pulled from a registry: none may be reachable, and
	// this process does its job (see the package doc).
	if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
		return err
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(eof)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	go func() {
		// A harness that gives up during the start must not leave the
		// container behind: cancel, and let the cleanup below run.
		select {
		case <-stop:
		case <-eof:
		case <-ctx.Done():
		}
		cancel()
	}()

	req, err := request(port, image, bin, owner)
	if err != nil {
		return err
	}
	// The provider's default network would be the daemon's "bridge"; with
	// none (dockerd --bridge=none) it would create one. Naming "host" as the
	// default keeps it from attaching the container to any network beyond
	// the host's own.
	provider, err := testcontainers.NewDockerProvider(testcontainers.WithDefaultBridgeNetwork(network.NetworkHost))
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	defer func() { _ = provider.Close() }()

	c, err := provider.CreateContainer(ctx, req)
	if c != nil {
		defer func() {
			// A fresh context: ctx may be canceled by now, which is why we
			// are cleaning up.
			if err := removeContainer(c); err != nil {
				fmt.Fprintf(os.Stderr, "rediscontainer: remove container %s: %v\n", c.GetContainerID(), err)
			}
		}()
	}
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		return fmt.Errorf("start container: %w%s", err, logTail(c))
	}
	st, err := c.State(ctx)
	if err != nil {
		return fmt.Errorf("inspect container: %w", err)
	}
	line, err := json.Marshal(ready{
		Addr:  "127.0.0.1:" + strconv.Itoa(port),
		PID:   st.Pid,
		ID:    c.GetContainerID(),
		Image: imageName(req),
	})
	if err != nil {
		return err
	}
	if _, err := fmt.Println(string(line)); err != nil {
		return err
	}
	// The start is over: from now on only EOF or a signal ends the wait.
	<-ctx.Done()
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		select {
		case <-stop:
		case <-eof:
		}
	}
	return nil
}

// request describes the container: host network, redis-server on
// 127.0.0.1:port with the harness's usual settings, ready when it logs that
// it accepts connections.
func request(port int, image, bin, owner string) (testcontainers.ContainerRequest, error) {
	req := testcontainers.ContainerRequest{
		Cmd: []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--enable-debug-command", "local",
			"--repl-diskless-sync-delay", "0",
		},
		Labels: map[string]string{labelHarness: "1", labelOwner: owner},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = network.NetworkHost
		},
		// A port already taken makes redis-server exit at once, which ends
		// the wait with an error instead of at the timeout.
		WaitingFor: wait.ForLog("Ready to accept connections"),
	}
	if image != "" {
		req.Image = image
		return req, nil
	}
	ctxTar, tag, err := buildContext(bin)
	switch {
	case err == nil:
		req.FromDockerfile = testcontainers.FromDockerfile{
			ContextArchive: ctxTar,
			Repo:           "syncfanout-redistest/redis-server",
			Tag:            tag,
			// Tagged by content: other test binaries may be running it.
			KeepImage: true,
		}
	case errors.Is(err, errNoLocalServer):
		req.Image = defaultImage
	default:
		return req, err
	}
	return req, nil
}

// imageName names the image the container runs.
func imageName(req testcontainers.ContainerRequest) string {
	if req.Image != "" {
		return req.Image
	}
	return req.FromDockerfile.Repo + ":" + req.FromDockerfile.Tag
}

// removeContainer stops and removes c, with its anonymous volumes.
func removeContainer(c testcontainers.Container) error {
	return testcontainers.TerminateContainer(c, testcontainers.StopTimeout(5*time.Second))
}

// logTail returns the end of the container's log, for an error message.
func logTail(c testcontainers.Container) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Logs(ctx)
	if err != nil {
		return ""
	}
	defer func() { _ = r.Close() }()
	b, _ := io.ReadAll(r)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	if len(b) == 0 {
		return ""
	}
	return "; container log: " + string(b)
}
