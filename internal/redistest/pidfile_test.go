package redistest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/pidrecord"
)

// TestPIDFileListsOnlyOwnServers: the harness records the servers it
// starts, and .ci/run's check (scripts/leftover-redis.sh) lists those
// still alive, never a redis-server started by someone else. Not
// parallel: t.Setenv.
func TestPIDFileListsOnlyOwnServers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pids")
	t.Setenv(pidrecord.Env, file)
	leftover := func() string {
		out, err := exec.Command("bash", "../../scripts/leftover-redis.sh", file).CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.TrimSpace(string(out))
	}

	srv := NewServer(t, ServerOptions{})
	// Someone else's server, meanwhile on the same machine.
	bin, err := redisServerBin()
	require.NoError(t, err)
	port, err := FreePort()
	require.NoError(t, err)
	other := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, other.Start())
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })

	require.Equal(t, strconv.Itoa(srv.PID()), leftover())
	require.NoError(t, srv.Kill())
	require.Empty(t, leftover(), "a stopped server, and another's server, are not listed")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NotContains(t, strings.Fields(string(data)), strconv.Itoa(other.Process.Pid))
}
