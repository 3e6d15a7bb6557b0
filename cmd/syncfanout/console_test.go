package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestCLIConsole: `syncfanout console` serves the console of the
// deployment, read-only unless --admin, records --actor with admin
// actions, and ends cleanly on Ctrl-C.
func TestCLIConsole(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		scenario(ctx, t, b)
		c := newCLI(bin, b)

		// start runs the console and returns its URL and a stop function
		// that interrupts it and checks its exit.
		start := func(args ...string) (string, func()) {
			cmd := c.command(ctx, append([]string{"console", "--listen", "127.0.0.1:0"}, args...)...)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				_ = cmd.Wait() // stderr is complete only then
				t.Fatalf("no address printed: %v; stderr: %s", err, stderr.String())
			}
			base := regexp.MustCompile(`http://[0-9.:]+/`).FindString(line)
			require.NotEmpty(t, base, line)
			return base, func() {
				require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
				_, _ = io.Copy(io.Discard, stdout)
				require.NoError(t, cmd.Wait(), "the console must end cleanly on Ctrl-C; stderr: %s", stderr.String())
			}
		}
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar}
		get := func(u string) (int, string) {
			res, err := client.Get(u)
			require.NoError(t, err)
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			return res.StatusCode, string(body)
		}
		post := func(u, token string) int {
			req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(url.Values{"r": {"lobby"}, "reason": {"cli test"}}.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-CSRF-Token", token)
			res, err := client.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			return res.StatusCode
		}

		base, stop := start()
		code, body := get(base)
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, `data-room="lobby"`)
		require.Contains(t, body, "read-only")
		code, body = get(base + "api/room?r=lobby")
		require.Equal(t, http.StatusOK, code)
		var room struct {
			WaitingOn []string `json:"waiting_on"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &room))
		require.Equal(t, []string{"bob"}, room.WaitingOn)
		require.Equal(t, http.StatusForbidden, post(base+"api/admin/pause", ""))
		stop()

		base, stop = start("--admin", "--actor", "ops-cli")
		code, body = get(base + "room?r=lobby")
		require.Equal(t, http.StatusOK, code)
		m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindStringSubmatch(body)
		require.NotNil(t, m, "no CSRF token with --admin")
		require.Equal(t, http.StatusOK, post(base+"api/admin/pause", m[1]))
		stop()
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, DisableHousekeeping: true})
		require.NoError(t, err)
		defer q.Close()
		st, err := q.RoomState(ctx, "lobby")
		require.NoError(t, err)
		require.True(t, st.Paused)
		require.Equal(t, "ops-cli", st.PausedBy)

		r := c.run(ctx, t, "console", "--listen", "nowhere")
		require.Equal(t, exitUsage, r.code, r.stderr)
		require.Contains(t, r.stderr, "bad --listen")
	})
}
