package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// demoCmd runs the built demo on a throwaway server of its own.
func demoCmd(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDIS_ADDR=") && !strings.HasPrefix(kv, "REDIS_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// TestDemoKeepsRoomForInspection: without a terminal the demo ends by
// itself (make demo in CI); with -keep it keeps its throwaway server up
// until Enter, and the commands it prints show the room.
func TestDemoKeepsRoomForInspection(t *testing.T) {
	t.Parallel()
	redistest.SkipWithoutServer(t)
	// Both programs are built before the clock starts: with every package
	// of the module tested at once on a loaded machine, building them
	// (and go run building the CLI twice) took most of the two minutes
	// the runs had, and the test was killed in the second CLI command.
	dir := t.TempDir()
	bin := filepath.Join(dir, "demo")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	cli := filepath.Join(dir, "syncfanout")
	build := exec.Command("go", "build", "-o", cli, "./cmd/syncfanout")
	build.Dir = "../.."
	out, err = build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/syncfanout: %s", out)
	// A bound for a hung run, not a timing check.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// stdin is /dev/null: not a terminal.
	var stdout, stderr bytes.Buffer
	cmd := demoCmd(ctx, bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "stderr: %s", stderr.String())
	require.NotContains(t, stdout.String(), "Press Enter")
	require.Contains(t, stdout.String(), "Replay of the room's delivery stream")

	cmd = demoCmd(ctx, bin, "-keep")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	pr, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var keptErr bytes.Buffer // read only once the demo has exited
	cmd.Stderr = &keptErr
	require.NoError(t, cmd.Start())
	var commands []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if c, ok := strings.CutPrefix(line, "  go run ./cmd/syncfanout "); ok {
			commands = append(commands, c)
		}
		if strings.HasPrefix(line, "Press Enter") {
			break
		}
	}
	if len(commands) != 2 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("want 2 commands, got %q; stderr: %s", commands, keptErr.String())
	}
	// The commands as printed (the CLI that go run ./cmd/syncfanout
	// builds, with their arguments), from the repository's root, while
	// the demo waits.
	for _, c := range commands {
		run := exec.CommandContext(ctx, cli, strings.Fields(c)...)
		run.Dir = "../.."
		got, err := run.CombinedOutput()
		require.NoError(t, err, "syncfanout %s: %s", c, got)
		switch {
		case strings.Contains(c, " state "):
			require.Contains(t, string(got), "last message:  9")
		case strings.Contains(c, " replay "):
			require.Contains(t, string(got), "restart-soon")
		}
	}
	_, err = io.WriteString(stdin, "\n")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, pr) // until the demo exits
	err = cmd.Wait()
	require.NoError(t, err, "stderr: %s", keptErr.String())
}
