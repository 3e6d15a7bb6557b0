package exredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// TestConnect: a host:port, a URL and cluster seeds all connect.
func TestConnect(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var forms []string
		if b.Name == redistest.NameStandalone {
			forms = []string{b.Addrs[0], "redis://" + b.Addrs[0] + "/0"}
		} else {
			forms = []string{strings.Join(b.Addrs, ",")}
		}
		for _, addr := range forms {
			rdb, err := Connect(ctx, addr)
			require.NoError(t, err, addr)
			require.NoError(t, rdb.Ping(ctx).Err())
			require.NoError(t, rdb.Close())
		}
	})
}

// downAddr is a loopback address nobody listens on.
func downAddr(t *testing.T) string {
	t.Helper()
	port, err := redistest.FreePort()
	require.NoError(t, err)
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func TestConnectUnreachable(t *testing.T) {
	t.Parallel()
	addr := downAddr(t)
	_, err := Connect(context.Background(), "redis://user:secret@"+addr)
	var ue *UnreachableError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, "cannot reach Redis at redis://user:xxxxx@"+addr+": connection refused (start one with `redis-server`, or set REDIS_ADDR or REDIS_URL)", err.Error())
	require.False(t, errors.Is(err, context.DeadlineExceeded))
}

// TestExamplesUnreachable: with Redis down, every example says so in one
// line on stderr (no go-redis pool noise, no cleanup failure first), and
// finds the server through REDIS_ADDR or REDIS_URL alike.
func TestExamplesUnreachable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	names := []string{"demo", "pub", "sub", "peek", "worker", "metrics"}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, n := range names {
		args = append(args, "../../"+n)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	addr := downAddr(t)
	for _, n := range names {
		for _, env := range []string{"REDIS_ADDR=" + addr, "REDIS_URL=redis://" + addr} {
			t.Run(n+"/"+strings.SplitN(env, "=", 2)[0], func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, filepath.Join(dir, n), "-duration", "5s")
				for _, kv := range os.Environ() {
					if !strings.HasPrefix(kv, "REDIS_ADDR=") && !strings.HasPrefix(kv, "REDIS_URL=") {
						cmd.Env = append(cmd.Env, kv)
					}
				}
				cmd.Env = append(cmd.Env, env)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				var ee *exec.ExitError
				require.ErrorAs(t, err, &ee, "stdout %s stderr %s", stdout.String(), stderr.String())
				require.Equal(t, 1, ee.ExitCode())
				require.Empty(t, stdout.String())
				prefix := n
				if n == "metrics" {
					prefix = "metrics example"
				}
				want := prefix + ": cannot reach Redis at " + strings.SplitN(env, "=", 2)[1] +
					": connection refused (start one with `redis-server`, or set REDIS_ADDR or REDIS_URL)\n"
				require.Equal(t, want, stderr.String())
			})
		}
	}
}
