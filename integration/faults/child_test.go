package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/queue"
)

// The child subscriber is this test binary started again with childEnv
// set: TestMain then runs runChild instead of the tests. It joins a room,
// prints one line per event on stdout and acks the first childAcks
// messages; the next one it prints as "holding" and never acks, so the
// parent can kill it between delivery and ack.
const (
	childEnv     = "SYNCFANOUT_FAULT_CHILD"
	childAddrs   = "SYNCFANOUT_FAULT_ADDRS"   // comma-separated
	childCluster = "SYNCFANOUT_FAULT_CLUSTER" // "1" for a cluster client
	childPrefix  = "SYNCFANOUT_FAULT_PREFIX"
	childRoom    = "SYNCFANOUT_FAULT_ROOM"
	childTimeout = "SYNCFANOUT_FAULT_TIMEOUT" // ClientTimeout, a time.Duration
	childAcks    = "SYNCFANOUT_FAULT_ACKS"
	childMode    = "SYNCFANOUT_FAULT_MODE"    // "subscriber" (default), "gateway" or "endclient"
	childClients = "SYNCFANOUT_FAULT_CLIENTS" // gateway and endclient: comma-separated client IDs
)

func runChild() int {
	// The parent holds our stdin: when it goes away, so do we.
	if os.Getenv(childMode) != "endclient" {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(3)
		}()
	}
	fail := func(err error) int {
		fmt.Printf("error %v\n", err)
		return 2
	}
	addrs := strings.Split(os.Getenv(childAddrs), ",")
	var rdb redis.UniversalClient
	if os.Getenv(childCluster) == "1" {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: addrs[0]})
	}
	timeout, err := time.ParseDuration(os.Getenv(childTimeout))
	if err != nil {
		return fail(err)
	}
	acks, err := strconv.Atoi(os.Getenv(childAcks))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	switch os.Getenv(childMode) {
	case "gateway":
		return runGateway(ctx, rdb, timeout, acks)
	case "endclient":
		return runEndClient(ctx, rdb, timeout)
	}
	q, err := queue.New(ctx, rdb, queue.Options{
		Prefix:        os.Getenv(childPrefix),
		ClientTimeout: timeout,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return fail(err)
	}
	var jopts []queue.JoinOption
	if id := os.Getenv(childClients); id != "" {
		jopts = append(jopts, queue.WithClientID(id))
	}
	sub, err := q.Join(ctx, os.Getenv(childRoom), jopts...)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("joined %s\n", sub.ClientID())
	for {
		m, err := nextMessage(ctx, sub)
		if err != nil {
			return fail(err)
		}
		if acks == 0 {
			fmt.Printf("holding %d\n", m.ID)
			select {} // killed by the parent
		}
		if err := m.Ack(ctx); err != nil {
			return fail(err)
		}
		acks--
		fmt.Printf("acked %d\n", m.ID)
	}
}

// runGateway is a gateway process: a Worker hosting the clients of
// childClients in the room, beating for them; each client acks its first
// acks deliveries and holds the next one ("holding <client> <id>").
func runGateway(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration, acks int) int {
	q, err := queue.New(ctx, rdb, queue.Options{
		Prefix:        os.Getenv(childPrefix),
		ClientTimeout: timeout,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 2
	}
	var mu sync.Mutex
	left := map[string]int{}
	var w *queue.Worker
	w, err = q.NewWorker(queue.WorkerOptions{
		AutoHeartbeat: true,
		HandleMessage: func(ctx context.Context, client string, m *queue.Message) error {
			mu.Lock()
			hold := acks >= 0 && left[client] >= acks
			left[client]++
			mu.Unlock()
			if hold {
				fmt.Printf("holding %s %d\n", client, m.ID)
				return nil
			}
			if err := w.Ack(ctx, client, m.AckToken); err != nil {
				fmt.Printf("error ack %s %d: %v\n", client, m.ID, err)
				return err
			}
			fmt.Printf("acked %s %d\n", client, m.ID)
			return nil
		},
	})
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 2
	}
	for _, c := range strings.Split(os.Getenv(childClients), ",") {
		if err := w.Subscribe(ctx, c, os.Getenv(childRoom)); err != nil {
			fmt.Printf("error %v\n", err)
			return 2
		}
	}
	fmt.Println("ready")
	select {} // killed by the parent
}

// runEndClient is the end client of a gateway: it pings for its client ID
// (the heartbeat a gateway relays) and acks the tokens the parent writes
// on its stdin, one a line, answering "acked <token prefix>".
func runEndClient(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration) int {
	q, err := queue.New(ctx, rdb, queue.Options{
		Prefix:              os.Getenv(childPrefix),
		ClientTimeout:       timeout,
		DisableHousekeeping: true,
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Printf("error %v\n", err)
		return 2
	}
	client := os.Getenv(childClients)
	go func() {
		for {
			_ = q.Ping(ctx, client)
			time.Sleep(timeout / 5) // the heartbeat period
		}
	}()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if err := q.Ack(ctx, client, sc.Text()); err != nil {
			fmt.Printf("error %v\n", err)
			continue
		}
		fmt.Println("acked")
	}
	os.Exit(3) // stdin closed: the parent is gone
	return 3
}

// child is a running child subscriber.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, one line each; closed at exit
}

// startChild starts a child subscriber of room on backend addrs; it is
// killed at cleanup if the test did not kill it.
func startChild(t *testing.T, addrs []string, cluster bool, prefix, room string, timeout time.Duration, acks int, env ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cl := "0"
	if cluster {
		cl = "1"
	}
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		childAddrs+"="+strings.Join(addrs, ","),
		childCluster+"="+cl,
		childPrefix+"="+prefix,
		childRoom+"="+room,
		childTimeout+"="+timeout.String(),
		childAcks+"="+strconv.Itoa(acks),
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = stdin.Close()
		<-done
		_ = cmd.Wait()
	})
	return c
}

// expect waits for the child's next line and checks its first word.
func (c *child) expect(ctx context.Context, t *testing.T, word string) string {
	t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			t.Fatalf("child exited while the test waited for %q", word)
		}
		if w, rest, _ := strings.Cut(line, " "); w == word {
			return rest
		}
		t.Fatalf("child said %q, want %q", line, word)
	case <-ctx.Done():
		t.Fatalf("child: no %q line: %v", word, ctx.Err())
	}
	return ""
}

// kill sends SIGKILL to the child (kill -9) and waits until it is gone.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
}

// send writes one line to the child's stdin.
func (c *child) send(t *testing.T, line string) {
	t.Helper()
	_, err := io.WriteString(c.stdin, line+"\n")
	require.NoError(t, err)
}
