//go:build linux

package redistest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redisenv"
)

func TestChooseStandalone(t *testing.T) {
	t.Parallel()
	answers := func() bool { return true }
	silent := func() bool { return false }
	mustNotAsk := func() bool {
		t.Error("the Docker daemon was probed although the choice was already made")
		return false
	}
	for _, tc := range []struct {
		name        string
		backend     string
		haveServer  bool
		haveStarter bool
		docker      func() bool
		want        standaloneMode
		wantErr     string
	}{
		{name: "explicit testcontainers with redis-server", backend: "testcontainers", haveServer: true, docker: mustNotAsk, want: modeContainer},
		{name: "explicit testcontainers without docker probe", backend: "testcontainers", docker: mustNotAsk, want: modeContainer},
		{name: "explicit process", backend: "process", haveServer: true, docker: mustNotAsk, want: modeProcess},
		{name: "explicit process without redis-server", backend: "process", docker: mustNotAsk, wantErr: "redis-server not found"},
		{name: "unknown value", backend: "podman", haveServer: true, docker: mustNotAsk, wantErr: `SYNCFANOUT_REDIS_BACKEND="podman"`},
		{name: "auto with redis-server", haveServer: true, docker: mustNotAsk, want: modeProcess},
		{name: "auto with a starter", haveStarter: true, docker: mustNotAsk, want: modeStarter},
		{name: "auto without redis-server, docker answers", docker: answers, want: modeContainer},
		{name: "auto without redis-server or docker", docker: silent, wantErr: "or start Docker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chooseStandalone(tc.backend, tc.haveServer, tc.haveStarter, tc.docker)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestFindDocker checks the daemon probe against a stand-in for the Engine
// API's /_ping on a unix socket: DOCKER_HOST, when set, is the only place
// looked at.
func TestFindDocker(t *testing.T) {
	dir, err := os.MkdirTemp("", "fd") // short: unix socket paths are limited
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	serve := func(name string, status int, body string) string {
		sock := filepath.Join(dir, name)
		ln, err := net.Listen("unix", sock)
		require.NoError(t, err)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/_ping" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return "unix://" + sock
	}
	ok := serve("ok.sock", http.StatusOK, "OK")
	broken := serve("broken.sock", http.StatusInternalServerError, "no")

	t.Setenv("DOCKER_HOST", ok)
	h, found := findDocker()
	require.True(t, found)
	require.Equal(t, ok, h)

	t.Setenv("DOCKER_HOST", broken)
	_, found = findDocker()
	require.False(t, found)

	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(dir, "absent.sock"))
	_, found = findDocker()
	require.False(t, found)
}

// TestOnlyEnv checks that SYNCFANOUT_REDIS_ONLY=standalone runs the
// standalone subtest and skips the cluster one (and Cluster), and that a
// bad value fails. Not parallel: it sets the variable for the process.
func TestOnlyEnv(t *testing.T) {
	t.Setenv(EnvOnly, NameStandalone)
	ran := map[string]bool{}
	BackendsSerial(t, func(t *testing.T, b *Backend) {
		ran[b.Name] = true
		require.NoError(t, b.Client.Ping(t.Context()).Err())
	})
	require.Equal(t, map[string]bool{NameStandalone: true}, ran)
	require.True(t, t.Run("cluster skipped", func(t *testing.T) {
		defer func() { require.True(t, t.Skipped()) }()
		Cluster(t)
	}))

	ft := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }() // fakeTB.Fatalf stops like the real one
		t.Setenv(EnvOnly, "both")
		skipUnlessOnly(ft, NameStandalone)
	}()
	require.Contains(t, ft.fatal, `SYNCFANOUT_REDIS_ONLY="both"`)
}

// fakeTB records a Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic(f)
}

// The container helper process: TestContainerBackend runs this test binary
// again with these variables, as a test binary of another package would
// run, to see which backend it picks and what is left once it is gone.
const (
	containerModeEnv   = "REDISTEST_CONTAINER_MODE"
	containerResultEnv = "REDISTEST_CONTAINER_RESULT"
	harnessLabel       = "org.syncfanout.redistest"
	ownerLabel         = "org.syncfanout.redistest.owner"
)

// containerResult is what the helper test reports.
type containerResult struct {
	How        string   `json:"how"`
	Addr       string   `json:"addr"`
	ProcessID  string   `json:"process_id"`
	Containers []string `json:"containers"`
}

func containerHelperTest(t *testing.T, mode string) {
	b := Standalone(t)
	ctx := t.Context()
	require.NoError(t, b.Client.Set(ctx, b.Prefix+":k", "v", 0).Err())
	info, err := b.Client.Info(ctx, "server").Result()
	require.NoError(t, err)
	host, ok := findDocker()
	require.True(t, ok)
	ids, err := dockerContainers(ctx, host, ownerLabel+"="+strconv.Itoa(os.Getpid()))
	require.NoError(t, err)
	res, err := json.Marshal(containerResult{
		How:        sharedStandalone.how,
		Addr:       b.Addrs[0],
		ProcessID:  infoField(info, "process_id"),
		Containers: ids,
	})
	require.NoError(t, err)
	file := os.Getenv(containerResultEnv)
	require.NoError(t, os.WriteFile(file+".tmp", res, 0o644))
	require.NoError(t, os.Rename(file+".tmp", file))
	if mode == "sigkill" {
		time.Sleep(time.Hour) // the parent kills us
	}
}

// TestContainerBackend runs a test binary whose standalone server is a
// container: chosen by SYNCFANOUT_REDIS_BACKEND ("explicit"), chosen
// because redis-server is not on PATH while Docker answers ("auto"), and
// chosen explicitly by a binary that is then killed with SIGKILL
// ("sigkill"). Each time the server is redis-server in its own pid
// namespace (process_id 1, which no redis-server the harness starts on the
// host can have), the container carries the owner's label, and once the
// binary is gone neither the container nor its redis-server is left.
func TestContainerBackend(t *testing.T) {
	if mode := os.Getenv(containerModeEnv); mode != "" {
		containerHelperTest(t, mode)
		return
	}
	t.Parallel()
	host, ok := findDocker()
	if !ok {
		if os.Getenv("CI") != "" {
			t.Fatal("no Docker daemon answers at $DOCKER_HOST or the usual sockets; CI starts one (scripts/ensure-docker.sh)")
		}
		t.Skip("no Docker daemon answers at $DOCKER_HOST or the usual sockets")
	}
	helper, err := containerHelper()
	require.NoError(t, err)

	for _, mode := range []string{"explicit", "auto", "sigkill"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			result := filepath.Join(dir, "result.json")
			pidFile := filepath.Join(dir, "pids")
			cmd := exec.Command(os.Args[0], "-test.run=^TestContainerBackend$", "-test.count=1", "-test.v")
			env := []string{
				containerModeEnv + "=" + mode,
				containerResultEnv + "=" + result,
				"DOCKER_HOST=" + host,
				EnvContainerHelper + "=" + helper,
				"SYNCFANOUT_REDIS_PIDFILE=" + pidFile,
			}
			for _, kv := range os.Environ() {
				switch strings.SplitN(kv, "=", 2)[0] {
				case EnvBackend, EnvOnly, redisenv.EnvAddr, redisenv.EnvURL, "DOCKER_HOST", EnvContainerHelper, "SYNCFANOUT_REDIS_PIDFILE":
				case "PATH":
					if mode != "auto" {
						env = append(env, kv)
					}
				default:
					env = append(env, kv)
				}
			}
			if mode == "auto" {
				// A PATH with nothing on it: no redis-server to find.
				env = append(env, "PATH="+t.TempDir())
			} else {
				env = append(env, EnvBackend+"="+BackendTestcontainers)
			}
			cmd.Env = env
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())

			var res containerResult
			if mode == "sigkill" {
				res = waitResult(t, result, cmd, &out)
				require.NoError(t, cmd.Process.Kill())
				_ = cmd.Wait()
			} else {
				require.NoError(t, cmd.Wait(), "helper test binary:\n%s", out.String())
				res = waitResult(t, result, cmd, &out)
			}

			require.Contains(t, res.How, "in a container (testcontainers", out.String())
			require.Equal(t, "1", res.ProcessID, "not a container's redis-server")
			require.Len(t, res.Containers, 1, "the container was not found by its owner label")
			require.True(t, strings.HasPrefix(res.Addr, "127.0.0.1:"), res.Addr)

			owner := ownerLabel + "=" + strconv.Itoa(cmd.Process.Pid)
			pids := readPIDs(t, pidFile)
			require.Len(t, pids, 1, "the container's redis-server pid was not recorded for .ci/run")
			deadline := time.Now().Add(60 * time.Second)
			for {
				ids, err := dockerContainers(t.Context(), host, owner)
				require.NoError(t, err)
				alive := liveRedisServers(pids)
				if len(ids) == 0 && len(alive) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the binary exited: containers %v, redis-server pids %v still there\n%s", ids, alive, out.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// waitResult waits for the helper test's result file.
func waitResult(t *testing.T, file string, cmd *exec.Cmd, out *bytes.Buffer) containerResult {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		data, err := os.ReadFile(file)
		if err == nil {
			var res containerResult
			require.NoError(t, json.Unmarshal(data, &res))
			return res
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no result from the helper test binary:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readPIDs(t *testing.T, file string) []int {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	return pids
}

// liveRedisServers returns the pids that are live redis-server processes,
// zombies left out (scripts/leftover-redis.sh's rule).
func liveRedisServers(pids []int) []int {
	var alive []int
	for _, pid := range pids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "redis-server" {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The state follows the parenthesized command name.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		alive = append(alive, pid)
	}
	return alive
}

// dockerContainers lists the ids of the containers, running or not, that
// carry label (key=value), through the Engine API.
func dockerContainers(ctx context.Context, host, label string) ([]string, error) {
	c, base, err := dockerClient(host)
	if err != nil {
		return nil, err
	}
	filters, err := json.Marshal(map[string][]string{"label": {label}})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/containers/json?all=1&filters="+url.QueryEscape(string(filters)), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("docker: list containers: %s", resp.Status)
	}
	var list []struct {
		ID string `json:"Id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	ids := []string{}
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids, nil
}
