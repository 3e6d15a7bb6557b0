//go:build linux

package redistest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The helper process: TestNoProcessOutlivesHarness runs this test binary
// again with these variables set, to see what happens to the servers when
// the binary exits, panics, times out or is killed.
const (
	prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, from linux/prctl.h

	helperModeEnv = "REDISTEST_HELPER_MODE"
	helperPIDsEnv = "REDISTEST_HELPER_PIDS"
)

// helperProcess is what TestNoProcessOutlivesHarness runs when it finds
// itself started as the helper (rather than a test skipped in every normal
// run, it is the same test in another role).
func helperProcess(t *testing.T, mode string) {
	Standalone(t)
	NewServer(t, ServerOptions{AOF: true})
	if mode != "timeout" { // the timeout is short: skip the slower cluster
		Cluster(t)
	}
	var pids []string
	for _, pid := range startedPIDs() {
		pids = append(pids, strconv.Itoa(pid))
	}
	file := os.Getenv(helperPIDsEnv)
	require.NoError(t, os.WriteFile(file+".tmp", []byte(strings.Join(pids, "\n")), 0o644))
	require.NoError(t, os.Rename(file+".tmp", file))

	switch mode {
	case "exit":
		return
	case "panic":
		panic("redistest helper: deliberate panic")
	default: // "timeout" and "sigkill": wait to be ended
		time.Sleep(time.Hour)
	}
}

func TestNoProcessOutlivesHarness(t *testing.T) {
	if mode := os.Getenv(helperModeEnv); mode != "" {
		helperProcess(t, mode)
		return
	}
	t.Parallel()
	skipWithoutServer(t)
	if _, err := redisServerBin(); err != nil {
		t.Fatal(err)
	}
	// Servers orphaned by a dying helper become children of this process
	// rather than of init (which may never reap them in a container), so
	// that they can be reaped below and leave no zombie.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
	for _, mode := range []string{"exit", "panic", "timeout", "sigkill"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pids")
			args := []string{"-test.run=^TestNoProcessOutlivesHarness$", "-test.count=1", "-test.v"}
			if mode == "timeout" {
				args = append(args, "-test.timeout=4s")
			}
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(),
				helperModeEnv+"="+mode,
				helperPIDsEnv+"="+pidFile,
				"TMPDIR="+dir, // its data dirs, left behind when it is killed
				EnvStandalone+"=",
				"REDIS_URL=",
				EnvCluster+"=",
			)
			var out bytes.Buffer
			outFile, err := os.Create(filepath.Join(dir, "out"))
			require.NoError(t, err)
			cmd.Stdout, cmd.Stderr = outFile, outFile
			child, err := startProcess(cmd) // dies with this binary, too
			_ = outFile.Close()
			require.NoError(t, err)
			output := func() string {
				data, _ := os.ReadFile(filepath.Join(dir, "out"))
				out.Reset()
				out.Write(data)
				return out.String()
			}

			if mode == "sigkill" { // as go test does with a binary that hangs
				require.Eventually(t, func() bool {
					_, err := os.Stat(pidFile)
					return err == nil || child.exited()
				}, time.Minute, 10*time.Millisecond)
				require.False(t, child.exited(), "helper exited early:\n%s", output())
				require.NoError(t, syscall.Kill(child.pid, syscall.SIGKILL))
			}
			require.True(t, child.wait(time.Minute), "helper still running:\n%s", output())

			switch mode {
			case "exit":
				require.NoError(t, child.err, output())
			case "timeout":
				require.Error(t, child.err)
				require.Contains(t, output(), "test timed out")
			default:
				require.Error(t, child.err)
			}

			data, err := os.ReadFile(pidFile)
			require.NoError(t, err, output())
			var pids []int
			for _, f := range strings.Fields(string(data)) {
				pid, err := strconv.Atoi(f)
				require.NoError(t, err)
				pids = append(pids, pid)
			}
			want := 5 // standalone, AOF server, 3 cluster nodes (+ redis-cli)
			if mode == "timeout" {
				want = 2
			}
			require.GreaterOrEqual(t, len(pids), want)

			if mode == "exit" { // Main reaped them before the binary exited
				for _, pid := range pids {
					require.False(t, pidAlive(pid), "pid %d outlived the helper", pid)
				}
				return
			}
			// Pdeathsig: the kernel kills them as the helper dies.
			require.Eventually(t, func() bool {
				for _, pid := range pids {
					if pidAlive(pid) {
						return false
					}
				}
				return true
			}, 10*time.Second, 10*time.Millisecond, "pids %v outlived the helper", pids)
			for _, pid := range pids {
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil) // ECHILD if the helper reaped it
			}
		})
	}
}

// pidAlive reports whether pid is a live (not zombie) redis process.
func pidAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return bytes.Contains(cmdline, []byte("redis"))
}
