package browser_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/console"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

const (
	screenshotsEnv = "SYNCFANOUT_CONSOLE_SCREENSHOTS"
	// waitLimit bounds one awaited page change; generous, never a
	// measurement.
	waitLimit = 20 * time.Second
)

// chromium finds the browser, or fails with the way to install it. It
// never skips: a browser test that does not run must not pass.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("CHROMIUM=%s: %v; unset it to use Debian's chromium (bash scripts/ensure-chromium.sh as root, or apt-get install -y chromium)", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it (as root: bash scripts/ensure-chromium.sh, or apt-get install -y chromium) or set CHROMIUM to the browser's path")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile, closed at
// cleanup.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 860),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser now, so that a broken install fails here.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")), "starting %s", path)
	return ctx
}

// step runs browser actions with a deadline.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	require.NoError(t, chromedp.Do(sctx, actions...), what)
}

// eval evaluates JavaScript in the page (awaiting a promise) and returns
// its value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "evaluating %s", js)
	return v
}

// until waits for a JavaScript predicate to hold in the page. A page
// being replaced (after a click on a link) makes a poll fail with its
// execution context gone: it is polled again in the new one.
func until(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	var err error
	for sctx.Err() == nil {
		_, err = chromedp.Run(sctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s never held: %v", what, predicate, err)
}

// screenshot writes the page as a PNG when screenshots were asked for.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
	t.Logf("wrote %s", filepath.Join(dir, name))
}

// world is the deployment the test looks at.
type world struct {
	q            *queue.Queue
	alice, bob   string // lobby: alice acks, bob never does
	stuckBilling string
}

// acker acks everything sub receives until ctx ends.
func acker(ctx context.Context, wg *sync.WaitGroup, sub *queue.Subscription) {
	wg.Go(func() {
		for m, err := range sub.Messages(ctx) {
			if err != nil {
				continue
			}
			_ = m.Ack(ctx)
		}
	})
}

// waitState polls a room's state until ok holds.
func waitState(t *testing.T, ctx context.Context, q *queue.Queue, room string, ok func(queue.RoomState) bool) queue.RoomState {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		st, err := q.RoomState(ctx, room)
		require.NoError(t, err)
		if ok(st) {
			return st
		}
		require.True(t, time.Now().Before(deadline), "room %q never reached the state; last: %+v", room, st)
		time.Sleep(20 * time.Millisecond)
	}
}

// seed builds a few rooms worth looking at: one blocked on a member with a
// backlog behind it, one running smoothly, one stuck with a long backlog,
// and an idle one.
func seed(t *testing.T, ctx context.Context, b *redistest.Backend) *world {
	t.Helper()
	q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	actx, stopAckers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		stopAckers()
		wg.Wait()
		_ = q.Close()
	})
	w := &world{q: q}
	join := func(room string, acks bool) string {
		sub, err := q.Join(ctx, room)
		require.NoError(t, err)
		if acks {
			acker(actx, &wg, sub)
		}
		return sub.ClientID()
	}
	send := func(room string, v any) {
		_, err := q.Send(ctx, room, v, queue.Producer("checkout-svc"))
		require.NoError(t, err)
	}

	w.alice, w.bob = join("lobby", true), join("lobby", false)
	send("lobby", map[string]any{"event": "round-start", "round": 1})
	waitState(t, ctx, q, "lobby", func(st queue.RoomState) bool {
		return st.InFlight != nil && slices.Equal(st.Missing, []string{w.bob})
	})
	send("lobby", map[string]any{"event": "round-start", "round": 2})
	send("lobby", []byte("plain bytes: hello"))

	for range 3 {
		join("game-7", true)
	}
	for i := range 4 {
		send("game-7", map[string]any{"move": i, "player": "p" + fmt.Sprint(i%3)})
	}
	waitState(t, ctx, q, "game-7", func(st queue.RoomState) bool { return st.InFlight == nil && st.Pending == 0 })

	w.stuckBilling = join("billing", false)
	join("billing", true)
	for i := range 12 {
		send("billing", map[string]any{"invoice": 1000 + i, "amount_cents": 4999 + i})
	}
	waitState(t, ctx, q, "billing", func(st queue.RoomState) bool { return st.Pending == 11 && len(st.Missing) == 1 })

	join("maintenance", true)
	require.NoError(t, q.Admin("ops-oncall").Pause(ctx, "maintenance", "schema migration"))
	for i := range 3 {
		send("maintenance", map[string]any{"step": i})
	}

	send("archive", []byte{0xde, 0xad, 0xbe, 0xef})
	return w
}

// TestConsoleInBrowser loads the console in headless Chromium: the rooms
// list with the blocked room highlighted, a room page with its barrier
// (the member that blocks highlighted), a message sent by the test
// appearing in the live feed, pause and resume through the admin UI, and
// the read-only console refusing admin POSTs (403) and other methods
// (405).
func TestConsoleInBrowser(t *testing.T) {
	path := chromium(t)
	b := redistest.Standalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	w := seed(t, ctx, b)

	admin, err := console.New(w.q, console.Options{Admin: true, Actor: func(*http.Request) string { return "browser-test" }})
	require.NoError(t, err)
	readOnly, err := console.New(w.q, console.Options{})
	require.NoError(t, err)
	mux := http.NewServeMux()
	// Under path prefixes, as users mount it.
	mux.Handle("/ops/console/", http.StripPrefix("/ops/console", admin))
	mux.Handle("/ro/", http.StripPrefix("/ro", readOnly))
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(mux)
	// The live feeds end with the test, whatever the browser does.
	srv.Config.BaseContext = func(net.Listener) context.Context { return srvCtx }
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(stopSrv)

	bctx := newBrowser(t, path)
	base := srv.URL + "/ops/console/"

	// Rooms list: the blocked room is highlighted and names who blocks.
	step(t, bctx, "rooms page", chromedp.Navigate(base))
	until(t, bctx, "lobby listed as blocked", `document.querySelector('tr[data-room="lobby"].blocked') !== null`)
	require.Contains(t, eval[string](t, bctx, `document.querySelector('tr[data-room="lobby"]').innerText`), w.bob)
	require.True(t, eval[bool](t, bctx, `document.querySelector('tr[data-room="game-7"]:not(.blocked)') !== null`))
	screenshot(t, bctx, "rooms.png")

	// The name filter keeps only the matching rooms.
	step(t, bctx, "filter", chromedp.Navigate(base+"?q=bill"))
	until(t, bctx, "filtered", `document.querySelectorAll('#rooms tbody tr[data-room]').length === 1 && document.querySelector('tr[data-room="billing"]') !== null`)

	// Open the room from the list.
	step(t, bctx, "back to rooms", chromedp.Navigate(base))
	step(t, bctx, "open lobby", chromedp.Click(chromedp.CSS(`tr[data-room="lobby"] td.room a`)))
	until(t, bctx, "live feed connected", `document.querySelector('#live.on') !== null`)
	until(t, bctx, "bob highlighted as blocking", fmt.Sprintf(`document.querySelector('.member.blocking[data-client=%q]') !== null`, w.bob))
	require.True(t, eval[bool](t, bctx, fmt.Sprintf(`document.querySelector('.member.acked[data-client=%q]') !== null`, w.alice)), "alice shown as acked")
	require.Contains(t, eval[string](t, bctx, `document.querySelector('.pending').innerText`), "round-start")

	// A message sent now shows up in the live feed, payload decoded.
	_, err = w.q.SendOutOfBand(ctx, "lobby", map[string]any{"hello": "browser"}, queue.Producer("browser-test"))
	require.NoError(t, err)
	until(t, bctx, "out-of-band message in the live feed", `[...document.querySelectorAll('#feed tr.ev-oob')].some(r => r.innerText.includes('"hello": "browser"'))`)
	screenshot(t, bctx, "room.png")

	t.Run("AdminPauseResume", func(t *testing.T) { testAdminPauseResume(t, bctx, w) })

	// The history link shows the same events, oldest first, with the
	// admin actions and who made them.
	step(t, bctx, "history", chromedp.Click(chromedp.CSS(`.roomhead a[href^="history"]`)))
	until(t, bctx, "history rows", `[...document.querySelectorAll('table.events tr.ev-oob')].some(r => r.innerText.includes('"hello": "browser"')) && document.querySelector('table.events tr.ev-pause') !== null`)
	screenshot(t, bctx, "history.png")
	step(t, bctx, "process counters", chromedp.Navigate(base+"stats"))
	until(t, bctx, "counters", `document.querySelector('table.kv') !== null && document.body.innerText.includes('Admin: pause / resume')`)
	screenshot(t, bctx, "stats.png")

	// A room paused by someone else says by whom and why; its queue
	// waits with nothing in flight.
	step(t, bctx, "paused room", chromedp.Navigate(base+"room?r=maintenance"))
	until(t, bctx, "pause shown", `document.querySelector('#paused-badge') !== null && document.querySelector('#paused-badge').textContent.includes('ops-oncall') && document.querySelector('#state').textContent.includes('schema migration')`)
	screenshot(t, bctx, "paused.png")

	// Read-only: no admin buttons, and admin requests are refused even with
	// the browser's cookies.
	ro := srv.URL + "/ro/"
	step(t, bctx, "read-only room page", chromedp.Navigate(ro+"room?r=lobby"))
	until(t, bctx, "read-only page loaded", `document.querySelector('#state .barrier') !== null`)
	require.False(t, eval[bool](t, bctx, `document.querySelector('button[data-action]') !== null`), "admin buttons in read-only mode")
	post := eval[int](t, bctx, `fetch("api/admin/pause", {method: "POST", body: new URLSearchParams({r: "lobby"})}).then(r => r.status)`)
	require.Equal(t, http.StatusForbidden, post)
	get := eval[int](t, bctx, `fetch("api/admin/pause?r=lobby").then(r => r.status)`)
	require.Equal(t, http.StatusMethodNotAllowed, get)
	st, err := w.q.RoomState(ctx, "lobby")
	require.NoError(t, err)
	require.False(t, st.Paused, "a refused POST paused the room")
	require.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1"))
}
