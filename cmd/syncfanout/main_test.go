package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestMain shares one standalone Redis and one 3-master cluster between all
// tests of the package, stops them at exit and checks for goroutine leaks.
func TestMain(m *testing.M) { redistest.Main(m) }

// buildCLI builds the command as users get it.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "syncfanout")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary against a backend; REDIS_URL and REDIS_ADDR from
// the environment are left out so only the flags count.
type cli struct {
	bin    string
	prefix string
	url    string
}

func newCLI(bin string, b *redistest.Backend) cli {
	urls := make([]string, len(b.Addrs))
	for i, a := range b.Addrs {
		urls[i] = "redis://" + a
	}
	return cli{bin: bin, prefix: b.Prefix, url: strings.Join(urls, ",")}
}

func (c cli) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--redis", c.url, "--prefix", c.prefix}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDIS_URL=") && !strings.HasPrefix(kv, "REDIS_ADDR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

func (c cli) run(ctx context.Context, t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, c.command(ctx, args...))
}

// ok runs the CLI and requires it to succeed quietly; it returns stdout.
func (c cli) ok(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	r := c.run(ctx, t, args...)
	require.Equal(t, 0, r.code, "syncfanout %v: stderr %s", args, r.stderr)
	require.Empty(t, r.stderr)
	return r.stdout
}

func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\b\d{13}-\d+\b`), "<ID>"},
	{regexp.MustCompile(`\bsft[a-z0-9]{8}\b`), "<PREFIX>"}, // redistest's key prefixes
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "<TIME>"},
	{regexp.MustCompile(`("[a-z_]*seconds"):-?[0-9.e+-]+`), `$1:<S>`},
	{regexp.MustCompile(`-?\b(\d+(\.\d+)?(h|ms|µs|ns|m|s))+\b`), "<DUR>"},
	// Column widths follow the normalised values.
	{regexp.MustCompile(`  +`), "  "},
	{regexp.MustCompile(` +\n`), "\n"},
}

// normalize replaces what changes from run to run: stream IDs, times,
// durations and the column widths they cause.
func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// golden compares normalised output with testdata/name, or rewrites it
// with -update. Both backends share one file: they must print the same.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	got = normalize(got)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/syncfanout -update to create it")
	require.Equal(t, string(want), got, "output differs from %s (normalised)", path)
}

// scenario fills a backend: room "lobby" with members alice (acked the
// first message) and bob (did not: the room waits on him), observer
// watcher, two messages pending and an out-of-band one; room "held" with
// two messages held for its first member.
func scenario(ctx context.Context, t *testing.T, b *redistest.Backend) (stop func()) {
	t.Helper()
	q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	alice, err := q.Join(ctx, "lobby", queue.WithClientID("alice"))
	require.NoError(t, err)
	require.NoError(t, q.Subscribe(ctx, "bob", "lobby"))
	_, err = q.Join(ctx, "lobby", queue.WithClientID("watcher"), queue.AsObserver())
	require.NoError(t, err)
	_, err = q.Send(ctx, "lobby", []byte("hello"), queue.Producer("svc-a"))
	require.NoError(t, err)
	_, err = q.Send(ctx, "lobby", map[string]any{"n": 1, "tags": []string{"x", "y"}}, queue.Priority(2), queue.Producer("svc-b"))
	require.NoError(t, err)
	_, err = q.Send(ctx, "lobby", []byte{0xff, 0x00, 0x01}, queue.Priority(7))
	require.NoError(t, err)
	_, err = q.SendOutOfBand(ctx, "lobby", "notice", queue.Producer("ops"))
	require.NoError(t, err)
	m, err := alice.Next(ctx)
	require.NoError(t, err)
	require.NoError(t, m.Ack(ctx))

	held, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute, HoldWhenEmpty: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = held.Close() })
	for i := range 2 {
		_, err := held.Send(ctx, "held", i)
		require.NoError(t, err)
	}
	return func() { _ = q.Close(); _ = held.Close() }
}

// TestCLI builds the binary once and runs it on both backends.
func TestCLI(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	t.Run("output", func(t *testing.T) { testOutput(t, bin) })
	t.Run("errors", func(t *testing.T) { testErrors(t, bin) })
	t.Run("read-only", func(t *testing.T) { testChangesNothing(t, bin) })
	t.Run("tail", func(t *testing.T) { testTail(t, bin) })
	t.Run("malformed", func(t *testing.T) { testMalformedAlike(t, bin) })
	t.Run("idle-rooms", func(t *testing.T) { testIdleRoomsListed(t, bin) })
	t.Run("headers", func(t *testing.T) { testHeaders(t, bin) })
	t.Run("policy", func(t *testing.T) { testPolicy(t, bin) })
	t.Run("windowed", func(t *testing.T) { testWindowed(t, bin) })
}

// testWindowed: policy and state of a room with a window and a quorum, set
// with policy set: the messages in flight, each member's lag and who the
// oldest message waits on.
func testWindowed(t *testing.T, bin string) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := newCLI(bin, b)
		ok := func(args ...string) string { t.Helper(); return c.ok(ctx, t, args...) }
		golden(t, "policy_window.golden", ok("policy", "set", "fleet", "--window", "3", "--quorum", "2", "--max-lag", "5", "--straggler", "skip"))
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
		require.NoError(t, err)
		t.Cleanup(func() { _ = q.Close() })
		subs := map[string]*queue.Subscription{}
		for _, id := range []string{"alice", "bob", "carol"} {
			subs[id], err = q.Join(ctx, "fleet", queue.WithClientID(id))
			require.NoError(t, err)
		}
		for i := range 4 {
			_, err := q.Send(ctx, "fleet", i)
			require.NoError(t, err)
		}
		// alice acks 3 (and so 1 and 2), bob 1: 1 is complete (2 of 3),
		// 2 and 3 wait for a second ack, and 4 is released into the window.
		for range 3 {
			m, err := subs["alice"].Next(ctx)
			require.NoError(t, err)
			if m.ID == 3 {
				require.NoError(t, m.Ack(ctx))
			}
		}
		m, err := subs["bob"].Next(ctx)
		require.NoError(t, err)
		require.NoError(t, m.Ack(ctx))
		golden(t, "state_window.golden", ok("state", "fleet"))
		golden(t, "state_window_json.golden", ok("state", "fleet", "--format", "json"))
		golden(t, "policy_window_show.golden", ok("policy", "fleet"))
	})
}

// testPolicy: policy shows a room's policy, policy set changes only the
// fields given and keeps the others, and is seen by the library and the
// state and replay commands; bad values are usage errors.
func testPolicy(t *testing.T, bin string) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		scenario(ctx, t, b)
		c := newCLI(bin, b)
		ok := func(args ...string) string { t.Helper(); return c.ok(ctx, t, args...) }
		golden(t, "policy_default.golden", ok("policy", "lobby"))
		golden(t, "policy_set.golden", ok("policy", "set", "lobby", "--max-pending", "100", "--overflow", "drop-oldest"))
		golden(t, "policy_set_json.golden", ok("policy", "set", "--straggler", "skip", "--format", "json", "lobby"))
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, DisableHousekeeping: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = q.Close() })
		p, err := q.Policy(ctx, "lobby")
		require.NoError(t, err)
		require.Equal(t, queue.Policy{MaxPending: 100, Overflow: queue.DropOldest, Straggler: queue.Skip}, p, "earlier fields kept")
		require.Contains(t, ok("state", "lobby"), "policy:        maxpending=100,overflow=drop-oldest,straggler=skip\n")
		replay := ok("replay", "lobby")
		require.Contains(t, replay, "policy=maxpending=100,overflow=drop-oldest\n")
		require.Contains(t, replay, "policy=maxpending=100,overflow=drop-oldest,straggler=skip\n")

		for _, args := range [][]string{
			{"policy", "set", "lobby"},
			{"policy", "--max-pending", "3", "lobby"},
			{"policy", "set", "lobby", "--window", "-1"},
			{"policy", "set", "lobby", "--quorum", "2", "--quorum-fraction", "0.5"},
			{"policy", "set", "lobby", "--overflow", "drop-newest"},
			{"policy", "get", "lobby"},
		} {
			r := c.run(ctx, t, args...)
			require.Equal(t, exitUsage, r.code, "syncfanout %v: %s", args, r.stderr)
		}
		p, err = q.Policy(ctx, "lobby")
		require.NoError(t, err)
		require.Equal(t, 100, p.MaxPending, "refused changes change nothing")
	})
}

// testHeaders (issue 18): send --header attaches headers, to queued and
// out-of-band messages; peek, replay and tail show them, in JSON as a
// "headers" object and in tables after the data; messages without
// headers show none; a bad header is a usage error and sends nothing.
func testHeaders(t *testing.T, bin string) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := newCLI(bin, b)
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
		require.NoError(t, err)
		defer q.Close()
		// A member holds the first message in flight, so the second waits.
		_, err = q.Join(ctx, "hdr")
		require.NoError(t, err)
		ok := func(args ...string) string {
			t.Helper()
			r := c.run(ctx, t, args...)
			require.Equal(t, 0, r.code, "syncfanout %v: stderr %s", args, r.stderr)
			return r.stdout
		}
		tail := c.command(ctx, "tail", "--format", "json", "--from", "0", "hdr")
		stdout, err := tail.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, tail.Start())

		ok("send", "--header", "trace=abc", "--header", "eq=a=b", "hdr", "first")
		ok("send", "--header", "k=v", "hdr", "second")
		ok("send", "hdr", "plain")
		ok("send", "--oob", "--header", "urgent=yes", "hdr", "notice")

		var p struct {
			Headers map[string]string `json:"headers"`
			Data    string            `json:"data"`
		}
		lines := strings.Split(strings.TrimSpace(ok("peek", "--format", "json", "hdr")), "\n")
		require.Len(t, lines, 2)
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &p))
		require.Equal(t, map[string]string{"k": "v"}, p.Headers)
		require.NotContains(t, lines[1], `"headers"`)
		require.Contains(t, ok("peek", "hdr"), `"second"  headers={"k":"v"}`)

		want := map[string]map[string]string{
			"first": {"trace": "abc", "eq": "a=b"}, "second": {"k": "v"}, "plain": nil, "notice": {"urgent": "yes"},
		}
		released := map[string]bool{"first": true, "notice": true}
		got := map[string]map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(ok("replay", "--format", "json", "hdr")), "\n") {
			var ev struct {
				Type    string            `json:"type"`
				Data    string            `json:"data"`
				Headers map[string]string `json:"headers"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
			if ev.Type == "message" || ev.Type == "oob" {
				got[ev.Data] = ev.Headers
			}
		}
		require.Len(t, got, len(released))
		for d := range released {
			require.Equal(t, want[d], got[d], d)
		}
		require.Contains(t, ok("replay", "hdr"), `"notice"  headers={"urgent":"yes"}`)

		sc := bufio.NewScanner(stdout)
		tailed := 0
		for tailed < len(released) && sc.Scan() {
			var ev struct {
				Type    string            `json:"type"`
				Data    string            `json:"data"`
				Headers map[string]string `json:"headers"`
			}
			require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), sc.Text())
			if ev.Type == "message" || ev.Type == "oob" {
				require.Equal(t, want[ev.Data], ev.Headers, ev.Data)
				tailed++
			}
		}
		require.Equal(t, len(released), tailed)
		require.NoError(t, tail.Process.Signal(syscall.SIGINT))
		_, _ = io.Copy(io.Discard, stdout)
		require.NoError(t, tail.Wait())

		before, err := q.RoomState(ctx, "hdr")
		require.NoError(t, err)
		for _, bad := range [][]string{{"--header", "novalue"}, {"--header", "=v"}, {"--header", "k\x01=v"}} {
			r := c.run(ctx, t, append(append([]string{"send"}, bad...), "hdr", "x")...)
			require.Equal(t, exitUsage, r.code, "send %v: %s", bad, r.stderr)
		}
		after, err := q.RoomState(ctx, "hdr")
		require.NoError(t, err)
		require.Equal(t, before.LastSeq, after.LastSeq, "a bad header sends nothing")
	})
}

// testIdleRoomsListed: a room that only received a send, with nobody in
// it, has history (replay shows it), so rooms lists it, as idle, until it
// expires.
func testIdleRoomsListed(t *testing.T, bin string) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := newCLI(bin, b)
		ok := func(args ...string) string { t.Helper(); return c.ok(ctx, t, args...) }
		ok("send", "room-a", "hello")
		require.Contains(t, ok("replay", "room-a"), "hello")
		golden(t, "rooms_idle.golden", ok("rooms"))
		golden(t, "rooms_idle_json.golden", ok("rooms", "--format", "json"))
	})
}

func testOutput(t *testing.T, bin string) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		scenario(ctx, t, b)
		c := newCLI(bin, b)

		ok := func(name string, args ...string) string {
			t.Helper()
			r := c.run(ctx, t, args...)
			require.Equal(t, 0, r.code, "syncfanout %v: stderr %s", args, r.stderr)
			require.Empty(t, r.stderr)
			golden(t, name, r.stdout)
			return r.stdout
		}
		ok("rooms.golden", "rooms")
		ok("rooms_json.golden", "rooms", "--format", "json")
		state := ok("state.golden", "state", "lobby")
		require.Contains(t, state, "waiting on (1) for message 1:\n  bob for ")
		ok("state_json.golden", "state", "lobby", "--format", "json")
		ok("peek.golden", "peek", "lobby")
		ok("peek_json.golden", "peek", "-n", "1", "--format", "json", "lobby")
		ok("replay.golden", "replay", "lobby", "--since", "1h")
		replay := ok("replay_json.golden", "replay", "lobby", "--since", "1h", "--format", "json")

		// Every line is one JSON object; payloads are decoded.
		var types []string
		for _, line := range strings.Split(strings.TrimSpace(replay), "\n") {
			var ev map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
			types = append(types, ev["type"].(string))
			if ev["type"] == "oob" {
				require.Equal(t, "notice", ev["data"])
				require.Equal(t, "msgpack", ev["encoding"])
			}
		}
		require.Equal(t, []string{"join", "join", "join", "message", "oob"}, types)

		// A range by stream ID: from the first message on.
		first := regexp.MustCompile(`"stream_id":"([0-9-]+)","time":"[^"]+","type":"message"`).FindStringSubmatch(replay)
		require.NotNil(t, first)
		r := c.run(ctx, t, "replay", "--from", first[1], "--format", "json", "lobby")
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, 2, strings.Count(r.stdout, "\n"), r.stdout)
		// --until before everything: nothing.
		r = c.run(ctx, t, "replay", "--until", "2h", "lobby")
		require.Equal(t, 0, r.code, r.stderr)
		golden(t, "replay_empty.golden", r.stdout)

		// send is the one command that writes.
		ok("send.golden", "send", "--json", "--priority", "0", "--producer", "ops", "lobby", `{"k":"v","n":2.5}`)
		ok("peek_after_send.golden", "peek", "lobby", "--format", "json", "-n", "1")
		ok("send_oob.golden", "send", "--oob", "lobby", "bytes as they are")
	})
}

func testErrors(t *testing.T, bin string) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := newCLI(bin, b)
		fails := func(code int, name string, args ...string) {
			t.Helper()
			r := c.run(ctx, t, args...)
			require.Equal(t, code, r.code, "syncfanout %v: stdout %s stderr %s", args, r.stdout, r.stderr)
			require.Empty(t, r.stdout)
			golden(t, name, r.stderr)
		}
		// Nothing under the prefix yet.
		fails(exitNotFound, "err_no_deployment.golden", "rooms")
		scenario(ctx, t, b)
		// A room that holds nothing is empty, as RoomState says, not an error.
		for _, cmd := range []string{"state", "peek", "replay"} {
			r := c.run(ctx, t, cmd, "nosuchroom")
			require.Equal(t, 0, r.code, "%s: %s", cmd, r.stderr)
			golden(t, "empty_room_"+cmd+".golden", r.stdout)
			require.Equal(t, "syncfanout "+cmd+": room \"nosuchroom\" holds nothing under prefix \""+b.Prefix+"\" (never used, or expired)\n", r.stderr)
		}
		fails(exitUsage, "err_no_room.golden", "state")
		fails(exitUsage, "err_bad_room.golden", "peek", "bad{room}")
		fails(exitUsage, "err_bad_since.golden", "replay", "lobby", "--since", "yesterday")
		fails(exitUsage, "err_bad_priority.golden", "send", "--priority", "12", "lobby", "x")
		fails(exitUsage, "err_bad_json.golden", "send", "--json", "lobby", "{nope")
		fails(exitUsage, "err_shards.golden", "--shards", "0", "rooms")
		fails(exitUsage, "err_shards_mismatch.golden", "--shards", "8", "rooms")

		// Without --shards the deployment's own shard count is used.
		four := b.Prefix + "four"
		q4, err := queue.New(ctx, b.Client, queue.Options{Prefix: four, NumShards: 4, HoldWhenEmpty: true})
		require.NoError(t, err)
		defer q4.Close()
		_, err = q4.Send(ctx, "r", "x")
		require.NoError(t, err)
		r4 := cli{bin: bin, prefix: four, url: c.url}.run(ctx, t, "peek", "--format", "json", "r")
		require.Equal(t, 0, r4.code, r4.stderr)
		require.Contains(t, r4.stdout, `"data":"x"`)
		fails(exitUsage, "err_unknown_command.golden", "frobnicate")
		r := c.run(ctx, t, "state", "--bogus", "lobby")
		require.Equal(t, exitUsage, r.code)
		require.Contains(t, r.stderr, "flag provided but not defined: -bogus")

		// Redis unreachable: a friendly error within the timeout.
		down := cli{bin: bin, prefix: b.Prefix, url: "redis://127.0.0.1:1"}
		began := time.Now()
		// A refused dial fails at once; the generous timeout keeps a loaded
		// machine from turning the refusal into a deadline error, which would
		// be a different message.
		r = down.run(ctx, t, "--timeout", "10s", "rooms")
		require.Equal(t, exitUnreachable, r.code, r.stderr)
		require.Less(t, time.Since(began), 30*time.Second)
		golden(t, "err_unreachable.golden", r.stderr)

		// A server that accepts connections and never answers fails the same way.
		silent := silentServer(t)
		r = cli{bin: bin, prefix: b.Prefix, url: "redis://" + silent}.run(ctx, t, "--timeout", "1s", "state", "lobby")
		require.Equal(t, exitUnreachable, r.code, r.stderr)
		require.Contains(t, r.stderr, "cannot reach Redis at "+silent+" within 1s")

		// Every command explains itself with an example.
		for _, name := range []string{"rooms", "state", "peek", "tail", "replay", "send"} {
			r := c.run(ctx, t, name, "--help")
			require.Equal(t, 0, r.code, r.stderr)
			require.Contains(t, r.stdout, "Usage:\n  syncfanout "+name)
			require.Contains(t, r.stdout, "Example:\n  syncfanout "+name)
		}
		r = c.run(ctx, t, "--help")
		require.Equal(t, 0, r.code)
		require.Contains(t, r.stdout, "Commands:")
	})
}

// testChangesNothing checks that the read-only commands leave Redis as
// they found it: same keys, same values.
func testChangesNothing(t *testing.T, bin string) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Closed queues beat and reap no more: only the CLI could change
		// something now.
		scenario(ctx, t, b)()
		c := newCLI(bin, b)
		before := dump(ctx, t, b)
		for _, args := range [][]string{
			{"rooms"}, {"state", "lobby"}, {"state", "held"}, {"peek", "lobby"},
			{"replay", "lobby"}, {"replay", "nosuchroom"}, {"state", "nosuchroom"},
			{"policy", "lobby"}, {"policy", "--format", "json", "lobby"},
			{"policy", "--max-pending", "3", "lobby"}, {"policy", "set", "lobby", "--window", "-1"},
		} {
			c.run(ctx, t, args...)
		}
		require.Equal(t, before, dump(ctx, t, b))
	})
}

// dump returns every key of the backend's prefix with its DUMP.
func dump(ctx context.Context, t *testing.T, b *redistest.Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, b.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, b.Prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			v, err := c.Dump(ctx, iter.Val()).Result()
			if err != nil {
				return err
			}
			out[iter.Val()] = v
		}
		return iter.Err()
	}))
	require.NotEmpty(t, out)
	return out
}

// silentServer accepts TCP connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().String()
}

func testTail(t *testing.T, bin string) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		scenario(ctx, t, b)
		c := newCLI(bin, b)
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
		require.NoError(t, err)
		defer q.Close()

		cmd := c.command(ctx, "tail", "--format", "json", "lobby")
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// The tail starts from now, at a moment the test cannot see: send
		// markers until one shows up; the history before must not.
		sent := 0
		var line string
	wait:
		for {
			_, err := q.SendOutOfBand(ctx, "lobby", fmt.Sprint("marker-", sent))
			require.NoError(t, err)
			sent++
			select {
			case line = <-lines:
				break wait
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				t.Fatalf("no tail output; stderr: %s", stderr.String())
			}
		}
		var ev struct {
			Type string `json:"type"`
			Data string `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
		require.Equal(t, "oob", ev.Type)
		require.True(t, strings.HasPrefix(ev.Data, "marker-"), ev.Data)

		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		for range lines {
		}
		require.NoError(t, cmd.Wait(), "tail must end cleanly on Ctrl-C; stderr: %s", stderr.String())
	})
}
