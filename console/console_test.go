package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/console"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const waitLimit = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fixture is a queue with rooms and a console over it, served under a
// path prefix.
type fixture struct {
	q      *queue.Queue
	base   string // the console's URL, ending in "/"
	client *http.Client
	// blocked: one member acks (acker), one never does (blocker).
	acker, blocker string
}

func newQueue(t *testing.T, b *redistest.Backend) *queue.Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// serve mounts h under /sf/console/ of a test server.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/sf/console/", http.StripPrefix("/sf/console", h))
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(mux)
	// Live feeds never end on their own: they end with the test.
	srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(cancel)
	return srv.URL + "/sf/console/"
}

func newFixture(t *testing.T, b *redistest.Backend, opts console.Options) *fixture {
	t.Helper()
	ctx := testContext(t)
	q := newQueue(t, b)
	h, err := console.New(q, opts)
	require.NoError(t, err)
	jar, _ := cookiejar.New(nil)
	f := &fixture{q: q, base: serve(t, h), client: &http.Client{Jar: jar}}

	actx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	join := func(room string, acks bool) string {
		sub, err := q.Join(ctx, room)
		require.NoError(t, err)
		if acks {
			wg.Go(func() {
				for m, err := range sub.Messages(actx) {
					if err == nil {
						_ = m.Ack(actx)
					}
				}
			})
		}
		return sub.ClientID()
	}
	f.acker, f.blocker = join("blocked", true), join("blocked", false)
	_, err = q.Send(ctx, "blocked", map[string]any{"n": 1})
	require.NoError(t, err)
	waitState(t, ctx, q, "blocked", func(st queue.RoomState) bool {
		return st.InFlight != nil && slices.Equal(st.Missing, []string{f.blocker})
	})
	// Behind the barrier: a decoded value, bytes, and a large payload.
	_, err = q.Send(ctx, "blocked", map[string]any{"kind": "reload", "n": 2})
	require.NoError(t, err)
	_, err = q.Send(ctx, "blocked", []byte{0x00, 0xff, 'h', 'i'})
	require.NoError(t, err)
	_, err = q.Send(ctx, "blocked", []byte(strings.Repeat("x", 5000)))
	require.NoError(t, err)

	join("smooth", true)
	_, err = q.Send(ctx, "smooth", "hello")
	require.NoError(t, err)
	waitState(t, ctx, q, "smooth", func(st queue.RoomState) bool { return st.InFlight == nil })
	return f
}

func waitState(t *testing.T, ctx context.Context, q *queue.Queue, room string, ok func(queue.RoomState) bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		st, err := q.RoomState(ctx, room)
		require.NoError(t, err)
		if ok(st) {
			return
		}
		require.True(t, time.Now().Before(deadline), "room %q: state never reached; last %+v", room, st)
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) get(t *testing.T, path string, out any) int {
	t.Helper()
	res, err := f.client.Get(f.base + path)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	if out != nil && res.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, out), "%s", body)
	}
	return res.StatusCode
}

// TestConsoleRoomsAPI: the rooms list shows who blocks, pages through
// every room with its cursor, filters, and refuses bad parameters.
func TestConsoleRoomsAPI(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		f := newFixture(t, b, console.Options{})
		for i := range 5 {
			_, err := f.q.Send(ctx, fmt.Sprintf("extra-%d", i), "x")
			require.NoError(t, err)
		}
		var all console.RoomList
		require.Equal(t, http.StatusOK, f.get(t, "api/rooms?limit=100", &all))
		require.Empty(t, all.Next)
		require.Len(t, all.Rooms, 7)
		require.Equal(t, "blocked", all.Rooms[0].Room, "largest backlog first")
		require.True(t, all.Rooms[0].Blocked())
		require.Equal(t, []string{f.blocker}, all.Rooms[0].WaitingOn)
		require.EqualValues(t, 1, all.Rooms[0].InFlight)
		require.Equal(t, 3, all.Rooms[0].Backlog)
		require.EqualValues(t, 3, all.Totals.Backlog)

		var paged []string
		cursor := ""
		for range 10 {
			var page console.RoomList
			require.Equal(t, http.StatusOK, f.get(t, "api/rooms?limit=3&cursor="+url.QueryEscape(cursor), &page))
			for _, r := range page.Rooms {
				paged = append(paged, r.Room)
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		var names []string
		for _, r := range all.Rooms {
			names = append(names, r.Room)
		}
		require.Equal(t, names, paged)

		// Filters: a name, the blocked rooms, and a filtered page that
		// fills up in the middle of an index chunk and goes on from there.
		var got console.RoomList
		require.Equal(t, http.StatusOK, f.get(t, "api/rooms?q=SMO", &got))
		require.Len(t, got.Rooms, 1)
		require.Equal(t, "smooth", got.Rooms[0].Room)
		require.Equal(t, http.StatusOK, f.get(t, "api/rooms?only=blocked", &got))
		require.Len(t, got.Rooms, 1)
		require.Equal(t, "blocked", got.Rooms[0].Room)
		var extras []string
		cursor = ""
		for range 10 {
			var page console.RoomList
			require.Equal(t, http.StatusOK, f.get(t, "api/rooms?q=extra&limit=2&cursor="+url.QueryEscape(cursor), &page))
			require.LessOrEqual(t, len(page.Rooms), 2)
			for _, r := range page.Rooms {
				extras = append(extras, r.Room)
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		slices.Sort(extras)
		require.Equal(t, []string{"extra-0", "extra-1", "extra-2", "extra-3", "extra-4"}, extras)

		require.Equal(t, http.StatusOK, f.get(t, "api/rooms?sort=room", &got))
		require.True(t, slices.IsSortedFunc(got.Rooms, func(a, b console.RoomRow) int { return strings.Compare(a.Room, b.Room) }))

		for _, bad := range []string{"limit=0", "limit=x", "only=nope", "sort=nope", "cursor=1.2"} {
			require.Equal(t, http.StatusBadRequest, f.get(t, "api/rooms?"+bad, nil), bad)
		}
	})
}

// TestConsoleRoomAPI: a room shows its barrier (who acked, who blocks) and
// its pending head with payloads decoded, bytes as hex and base64, and
// large payloads cut with their size.
func TestConsoleRoomAPI(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		f := newFixture(t, b, console.Options{MaxPayloadBytes: 100})
		var v console.RoomView
		require.Equal(t, http.StatusOK, f.get(t, "api/room?r=blocked", &v))
		require.NotNil(t, v.InFlight)
		require.EqualValues(t, 1, v.InFlight.ID)
		require.Equal(t, []string{f.blocker}, v.WaitingOn)
		byClient := map[string]console.MemberView{}
		for _, m := range v.Members {
			byClient[m.Client] = m
		}
		require.True(t, byClient[f.blocker].Blocking)
		require.False(t, byClient[f.blocker].Acked)
		require.True(t, byClient[f.acker].Acked)
		require.False(t, byClient[f.acker].Blocking)
		require.Positive(t, byClient[f.blocker].EvictedInSeconds)

		require.Len(t, v.Head, 3)
		require.Equal(t, "msgpack", v.Head[0].Payload.Encoding)
		var decoded map[string]any
		require.NoError(t, json.Unmarshal([]byte(v.Head[0].Payload.JSON), &decoded))
		require.Equal(t, map[string]any{"kind": "reload", "n": float64(2)}, decoded)
		require.Equal(t, "bytes", v.Head[1].Payload.Encoding)
		require.Empty(t, v.Head[1].Payload.Text, "not UTF-8")
		require.Equal(t, "00ff6869", v.Head[1].Payload.Hex)
		require.Equal(t, "AP9oaQ==", v.Head[1].Payload.Base64)
		big := v.Head[2].Payload
		require.True(t, big.Truncated)
		require.Equal(t, 5000, big.Size)
		require.Len(t, big.Text, 100)

		require.Equal(t, http.StatusBadRequest, f.get(t, "api/room", nil))
		require.Equal(t, http.StatusBadRequest, f.get(t, "api/room?r="+url.QueryEscape("a{b}"), nil))
		var empty console.RoomView
		require.Equal(t, http.StatusOK, f.get(t, "api/room?r=never-used", &empty))
		require.True(t, empty.Empty)
	})
}

// sseEvent is one server-sent event.
type sseEvent struct {
	id   string
	data console.EventView
}

// openFeed opens the live feed and returns its events as they come.
// blockedFeed reads the blocked room's page and opens its live feed where
// the page's snapshot ends, as the room page does; the feed closes with the
// test.
func blockedFeed(t *testing.T, ctx context.Context, f *fixture) (console.RoomView, <-chan sseEvent) {
	t.Helper()
	var v console.RoomView
	require.Equal(t, http.StatusOK, f.get(t, "api/room?r=blocked", &v))
	fctx, closeFeed := context.WithCancel(ctx)
	t.Cleanup(closeFeed)
	return v, openFeed(t, fctx, f, "r=blocked&from="+v.FeedFrom, "")
}

func openFeed(t *testing.T, ctx context.Context, f *fixture, query, lastID string) <-chan sseEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+"events?"+query, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := f.client.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
			case line == "" && ev.id != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "feed ended")
		return ev
	case <-time.After(waitLimit):
		t.Fatal("no event on the feed")
	}
	return sseEvent{}
}

// nextWhere returns the next event of the feed that ok accepts. A feed
// started from a room view's FeedFrom may first show what the stream got
// in the view's millisecond before the view: those are skipped.
func nextWhere(t *testing.T, ch <-chan sseEvent, ok func(sseEvent) bool) sseEvent {
	t.Helper()
	for {
		if ev := next(t, ch); ok(ev) {
			return ev
		}
	}
}

func isType(typ string) func(sseEvent) bool {
	return func(ev sseEvent) bool { return ev.data.Type == typ }
}

// TestConsoleEventsResume: the live feed names each event by its stream
// ID, and a reconnection with Last-Event-ID resumes right after it: what
// was appended while disconnected arrives, nothing twice.
func TestConsoleEventsResume(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		f := newFixture(t, b, console.Options{})
		var v console.RoomView
		require.Equal(t, http.StatusOK, f.get(t, "api/room?r=blocked", &v))

		fctx, closeFeed := context.WithCancel(ctx)
		feed := openFeed(t, fctx, f, "r=blocked&from="+v.FeedFrom, "")
		_, err := f.q.SendOutOfBand(ctx, "blocked", map[string]any{"k": 1})
		require.NoError(t, err)
		first := nextWhere(t, feed, isType("oob"))
		require.Equal(t, "oob", first.data.Type)
		require.Equal(t, first.id, first.data.ID)
		require.Contains(t, first.data.Payload.JSON, `"k": 1`)
		closeFeed()
		for range feed { // drained: the connection is gone
		}

		// While nobody listens, more happens.
		_, err = f.q.SendOutOfBand(ctx, "blocked", map[string]any{"k": 2})
		require.NoError(t, err)
		_, err = f.q.SendOutOfBand(ctx, "blocked", []byte("three"))
		require.NoError(t, err)

		feed = openFeed(t, ctx, f, "r=blocked&from="+v.FeedFrom, first.id)
		second, third := next(t, feed), next(t, feed)
		require.Contains(t, second.data.Payload.JSON, `"k": 2`)
		require.Equal(t, "three", third.data.Payload.Text)
		require.Equal(t, -1, strings.Compare(first.id, second.id))

		require.Equal(t, http.StatusBadRequest, f.get(t, "events?r=blocked&from=nope", nil))
	})
}

// TestConsoleFeedFromSameMillisecond: the live feed started from a room
// view's FeedFrom shows an entry appended after the view in the very
// millisecond of its snapshot. Such an entry, the first of its
// millisecond, is "<ms>-0": a FeedFrom of "<ms>-0" (the feed reads after
// it) missed it, as TestConsoleEventsResume's first out-of-band message
// when it came within the snapshot's millisecond.
func TestConsoleFeedFromSameMillisecond(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		f := newFixture(t, b, console.Options{})
		v, feed := blockedFeed(t, ctx, f)

		// An entry stamped with the snapshot's millisecond, as Redis
		// stamps one appended right after it (undecodable: only its ID
		// matters here).
		key, err := f.q.StreamKey("blocked")
		require.NoError(t, err)
		id, err := b.Client.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: strconv.FormatInt(v.Now.UnixMilli(), 10) + "-*", Values: []any{"t", "test"}}).Result()
		require.NoError(t, err)
		require.Equal(t, id, nextWhere(t, feed, func(ev sseEvent) bool { return ev.id == id }).id)
	})
}

// TestConsoleHistoryAPI: history by ID range and by time, paged.
func TestConsoleHistoryAPI(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		f := newFixture(t, b, console.Options{})
		var all console.HistoryPage
		require.Equal(t, http.StatusOK, f.get(t, "api/history?r=blocked", &all))
		// Two joins and the released message.
		require.Len(t, all.Events, 3)
		require.Equal(t, []string{"join", "join", "message"}, []string{all.Events[0].Type, all.Events[1].Type, all.Events[2].Type})
		require.Contains(t, all.Events[2].Payload.JSON, `"n": 1`)

		var first, page console.HistoryPage
		require.Equal(t, http.StatusOK, f.get(t, "api/history?r=blocked&limit=2", &first))
		require.Len(t, first.Events, 2)
		require.Equal(t, all.Events[2].ID, first.Next)
		require.Equal(t, http.StatusOK, f.get(t, "api/history?r=blocked&from="+first.Next, &page))
		require.Len(t, page.Events, 1)
		require.Empty(t, page.Next)
		var to, since, until console.HistoryPage
		require.Equal(t, http.StatusOK, f.get(t, "api/history?r=blocked&to="+all.Events[0].ID, &to))
		require.Len(t, to.Events, 1)
		require.Equal(t, http.StatusOK, f.get(t, "api/history?r=blocked&since=1h", &since))
		require.Len(t, since.Events, 3)
		require.Equal(t, http.StatusOK, f.get(t, "api/history?r=blocked&until=2001-01-01T00:00:00Z", &until))
		require.Empty(t, until.Events)

		for _, bad := range []string{"from=x", "to=1-x", "since=yesterday", "limit=0", fmt.Sprintf("limit=%d", console.MaxHistory+1)} {
			require.Equal(t, http.StatusBadRequest, f.get(t, "api/history?r=blocked&"+bad, nil), bad)
		}
	})
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// post sends an admin action with the given token ("" for none).
func (f *fixture) post(t *testing.T, action, token string, form url.Values, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.base+"api/admin/"+action, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("X-CSRF-Token", token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := f.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// token loads a page as a browser would and returns its CSRF token.
func (f *fixture) token(t *testing.T) string {
	t.Helper()
	res, err := f.client.Get(f.base + "room?r=blocked")
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	m := csrfMeta.FindSubmatch(body)
	require.NotNil(t, m, "no CSRF token in the admin page")
	return string(m[1])
}

// TestConsoleReadOnly: without Options.Admin, admin POSTs are forbidden
// (403), other methods not allowed (405), the pages carry no token, and
// the room is untouched.
func TestConsoleReadOnly(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		f := newFixture(t, b, console.Options{})
		res, err := f.client.Get(f.base + "room?r=blocked")
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.NotRegexp(t, csrfMeta, string(body))
		require.NotContains(t, string(body), "data-action")
		for _, action := range []string{"pause", "resume", "purge", "release", "kick", "delete", "nope"} {
			code, _ := f.post(t, action, "", url.Values{"r": {"blocked"}, "member": {f.blocker}}, nil)
			require.Equal(t, http.StatusForbidden, code, action)
			require.Equal(t, http.StatusMethodNotAllowed, f.get(t, "api/admin/"+action+"?r=blocked", nil), action)
		}
		st, err := f.q.RoomState(ctx, "blocked")
		require.NoError(t, err)
		require.False(t, st.Paused)
		require.Equal(t, 3, st.Pending)
		require.Len(t, st.Members, 2)
	})
}

// TestConsoleAdmin: with Options.Admin, an action needs the page's CSRF
// token and the cookie it is bound to; then it runs as Options.Actor and
// the room's state errors come back as HTTP statuses.
func TestConsoleAdmin(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		f := newFixture(t, b, console.Options{Admin: true, Actor: func(*http.Request) string { return "alice" }})
		form := url.Values{"r": {"blocked"}, "reason": {"deploy"}}
		code, _ := f.post(t, "pause", "", form, nil)
		require.Equal(t, http.StatusForbidden, code, "no token")
		code, _ = f.post(t, "pause", "forged", form, nil)
		require.Equal(t, http.StatusForbidden, code, "no cookie")
		tok := f.token(t)
		code, _ = f.post(t, "pause", tok+"x", form, nil)
		require.Equal(t, http.StatusForbidden, code, "altered token")
		code, _ = f.post(t, "pause", tok, form, map[string]string{"Sec-Fetch-Site": "cross-site"})
		require.Equal(t, http.StatusForbidden, code, "cross-site")
		// Another browser (its own cookie) cannot use this one's token.
		other := &fixture{base: f.base, client: &http.Client{}}
		other.client.Jar, _ = cookiejar.New(nil)
		other.token(t)
		code, _ = other.post(t, "pause", tok, form, nil)
		require.Equal(t, http.StatusForbidden, code, "token of another browser")
		st, err := f.q.RoomState(ctx, "blocked")
		require.NoError(t, err)
		require.False(t, st.Paused, "a refused request paused the room")

		code, out := f.post(t, "pause", tok, form, nil)
		require.Equal(t, http.StatusOK, code, "%v", out)
		st, err = f.q.RoomState(ctx, "blocked")
		require.NoError(t, err)
		require.True(t, st.Paused)
		require.Equal(t, "alice", st.PausedBy)
		require.Equal(t, "deploy", st.PauseReason)
		code, _ = f.post(t, "pause", tok, form, nil)
		require.Equal(t, http.StatusConflict, code, "already paused")
		var pausedRooms console.RoomList
		require.Equal(t, http.StatusOK, f.get(t, "api/rooms?only=paused", &pausedRooms))
		require.Len(t, pausedRooms.Rooms, 1)
		require.Equal(t, "blocked", pausedRooms.Rooms[0].Room)
		require.True(t, pausedRooms.Rooms[0].Paused)
		var rv console.RoomView
		require.Equal(t, http.StatusOK, f.get(t, "api/room?r=blocked", &rv))
		require.True(t, rv.Paused)
		require.Equal(t, "alice", rv.PausedBy)
		require.Equal(t, "deploy", rv.PauseNote)
		require.NotNil(t, rv.PausedAt)

		code, out = f.post(t, "release", tok, form, nil)
		require.Equal(t, http.StatusOK, code, "%v", out)
		require.Equal(t, []any{f.blocker}, out["released_without"])
		code, out = f.post(t, "purge", tok, url.Values{"r": {"blocked"}, "priority": {"5"}}, nil)
		require.Equal(t, http.StatusOK, code, "%v", out)
		require.EqualValues(t, 3, out["purged"])
		code, _ = f.post(t, "kick", tok, url.Values{"r": {"blocked"}, "member": {"nobody"}}, nil)
		require.Equal(t, http.StatusNotFound, code, "not a member")
		code, _ = f.post(t, "kick", tok, url.Values{"r": {"blocked"}, "member": {f.blocker}}, nil)
		require.Equal(t, http.StatusOK, code)
		code, _ = f.post(t, "resume", tok, form, nil)
		require.Equal(t, http.StatusOK, code)
		code, _ = f.post(t, "explode", tok, form, nil)
		require.Equal(t, http.StatusNotFound, code)
		code, _ = f.post(t, "pause", tok, url.Values{"r": {"a{b}"}}, nil)
		require.Equal(t, http.StatusBadRequest, code)
		code, _ = f.post(t, "pause", tok, url.Values{"r": {"blocked"}, "reason": {"bad\x00reason"}}, nil)
		require.Equal(t, http.StatusBadRequest, code)
		code, _ = f.post(t, "delete", tok, form, nil)
		require.Equal(t, http.StatusOK, code)
		code, _ = f.post(t, "pause", tok, form, nil)
		require.Equal(t, http.StatusNotFound, code, "deleted room")

		// The feed and history show admin events with their actor (the
		// deleted room's stream is gone: look at another room).
		code, _ = f.post(t, "pause", tok, url.Values{"r": {"smooth"}, "reason": {"look"}}, nil)
		require.Equal(t, http.StatusOK, code)
		var h console.HistoryPage
		require.Equal(t, http.StatusOK, f.get(t, "api/history?r=smooth", &h))
		last := h.Events[len(h.Events)-1]
		require.Equal(t, "pause", last.Type)
		require.Equal(t, "alice", last.Actor)
		require.Equal(t, "look", last.Reason)
	})
}

// TestConsoleMount: the console works under a path prefix: the bare
// prefix redirects to the slash form, and no link or asset is absolute.
func TestConsoleMount(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		f := newFixture(t, b, console.Options{Admin: true})
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := noRedirect.Get(strings.TrimSuffix(f.base, "/"))
		require.NoError(t, err)
		res.Body.Close()
		require.Contains(t, []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect}, res.StatusCode)
		require.True(t, strings.HasSuffix(res.Header.Get("Location"), "console/"), res.Header.Get("Location"))

		// Mounted without a mux pattern that redirects, the console sends
		// the bare prefix to the slash form itself, relatively.
		h, err := console.New(f.q, console.Options{})
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/tools/console", nil)
		http.StripPrefix("/tools/console", h).ServeHTTP(rec, req)
		require.Equal(t, http.StatusMovedPermanently, rec.Code)
		require.Equal(t, "console/", rec.Header().Get("Location"))

		absolute := regexp.MustCompile(`(?:href|src|action)="/`)
		for _, page := range []string{"", "room?r=blocked", "history?r=blocked", "stats", "room?r=blocked&part=state"} {
			res, err := f.client.Get(f.base + page)
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode, page)
			require.NotRegexp(t, absolute, string(body), page)
		}
		for _, asset := range []string{"static/console.css", "static/console.js"} {
			res, err := f.client.Get(f.base + asset)
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode, asset)
		}
		require.Equal(t, http.StatusNotFound, f.get(t, "nope", nil))

		// Links to a room whose name needs escaping lead to that room.
		const odd = "a b/ü&x?=%"
		_, err = f.q.Send(context.Background(), odd, "x")
		require.NoError(t, err)
		res, err = f.client.Get(f.base + "?q=" + url.QueryEscape("ü&"))
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		links := regexp.MustCompile(`href="(room\?r=[^"]+)"`).FindAllStringSubmatch(string(body), -1)
		require.Len(t, links, 1, "%s", body)
		var v console.RoomView
		target := html.UnescapeString(links[0][1])
		require.Equal(t, http.StatusOK, f.get(t, "api/"+target, &v), target)
		require.Equal(t, odd, v.Room)
		res, err = f.client.Get(f.base + target)
		require.NoError(t, err)
		body, _ = io.ReadAll(res.Body)
		res.Body.Close()
		for _, m := range regexp.MustCompile(`(?:href|data-src)="((?:history|api/room|events)\?r=[^"&]+)`).FindAllStringSubmatch(string(body), -1) {
			u, err := url.Parse(html.UnescapeString(m[1]))
			require.NoError(t, err)
			require.Equal(t, odd, u.Query().Get("r"), m[1])
		}
	})
}

// TestConsoleOptions: bad options are errors, never panics.
func TestConsoleOptions(t *testing.T) {
	t.Parallel()
	b := redistest.Standalone(t)
	q := newQueue(t, b)
	_, err := console.New(nil, console.Options{})
	require.ErrorIs(t, err, queue.ErrInvalidOption)
	for _, o := range []console.Options{
		{PageSize: -1}, {PageSize: queue.MaxTopRooms + 1}, {PeekSize: -1}, {PeekSize: 1001},
		{MaxPayloadBytes: 8}, {MaxPayloadBytes: 2 << 20},
	} {
		_, err := console.New(q, o)
		require.ErrorIs(t, err, queue.ErrInvalidOption, "%+v", o)
	}
	h, err := console.New(q, console.Options{})
	require.NoError(t, err)
	require.False(t, h.Options().Admin, "read-only by default")
	require.Equal(t, console.DefaultPageSize, h.Options().PageSize)
}

// TestConsoleHeaders (issue 18): message headers show in the room's
// pending head, the history and the live feed (JSON), and on the room
// page; messages without headers show none.
func TestConsoleHeaders(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		f := newFixture(t, b, console.Options{})
		v, feed := blockedFeed(t, ctx, f)

		_, err := f.q.Send(ctx, "blocked", "queued", queue.Header("tenant", "acme"))
		require.NoError(t, err)
		_, err = f.q.SendOutOfBand(ctx, "blocked", "notice", queue.Header("trace-id", "t-42"))
		require.NoError(t, err)
		live := nextWhere(t, feed, isType("oob"))
		require.Equal(t, map[string]string{"trace-id": "t-42"}, live.data.Headers)

		require.Equal(t, http.StatusOK, f.get(t, "api/room?r=blocked", &v))
		require.Len(t, v.Head, 4)
		require.Nil(t, v.Head[0].Headers)
		require.Equal(t, map[string]string{"tenant": "acme"}, v.Head[3].Headers)
		var h console.HistoryPage
		require.Equal(t, http.StatusOK, f.get(t, "api/history?r=blocked", &h))
		last := h.Events[len(h.Events)-1]
		require.Equal(t, "oob", last.Type)
		require.Equal(t, map[string]string{"trace-id": "t-42"}, last.Headers)
		require.Nil(t, h.Events[len(h.Events)-2].Headers, "the first message has none")

		res, err := f.client.Get(f.base + "room?r=blocked")
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.Contains(t, string(body), `<dl class="headers"><dt>tenant</dt><dd>acme</dd></dl>`)
	})
}

// TestConsolePolicyEvents (issue 16): the live feed and the history show
// the fields of policy events (the new policy), drop events (the dropped
// message's ID, priority, producer, size, send time and the overflow
// policy) and skip events (the message and the straggler), on the page as
// in the JSON.
func TestConsolePolicyEvents(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		f := newFixture(t, b, console.Options{})
		const room = "limits"
		blocker, err := f.q.Join(ctx, room) // never acks
		require.NoError(t, err)
		var v console.RoomView
		require.Equal(t, http.StatusOK, f.get(t, "api/room?r="+room, &v))
		fctx, closeFeed := context.WithCancel(ctx)
		defer closeFeed()
		feed := openFeed(t, fctx, f, "r="+room+"&from="+v.FeedFrom, "")

		got := map[string]console.EventView{}
		await := func(types ...string) {
			t.Helper()
			for slices.ContainsFunc(types, func(ty string) bool { _, ok := got[ty]; return !ok }) {
				ev := next(t, feed)
				switch ev.data.Type {
				case "policy", "drop", "skip":
					got[ev.data.Type] = ev.data
				}
			}
		}
		p := queue.Policy{MaxPending: 1, Overflow: queue.DropOldest, Straggler: queue.Skip}
		require.NoError(t, f.q.SetPolicy(ctx, room, p))
		first, err := f.q.Send(ctx, room, []byte("a"), queue.AckDeadline(10*time.Millisecond))
		require.NoError(t, err)
		// Any later call on the room (a send too) skips the blocker once
		// the 10ms are up, and housekeeping does within a second: wait for
		// the skip, or the sends below would find the room free and
		// release instead of dropping.
		await("policy", "skip")
		// In flight without a deadline, never acked: the room stays blocked.
		_, err = f.q.Send(ctx, room, []byte("x"))
		require.NoError(t, err)
		dropped, err := f.q.Send(ctx, room, []byte("bb"), queue.Producer("svc"), queue.Priority(3))
		require.NoError(t, err)
		_, err = f.q.Send(ctx, room, []byte("ccc"))
		require.NoError(t, err)
		await("drop")
		require.NotNil(t, got["policy"].Policy)
		require.Equal(t, p.String(), *got["policy"].Policy)
		d := got["drop"]
		require.Equal(t, dropped, d.MessageID)
		require.Equal(t, "svc", d.Producer)
		require.Equal(t, 3, *d.Priority)
		require.Equal(t, "drop-oldest", d.Reason)
		require.Positive(t, d.Size)
		require.NotNil(t, d.Enqueued)
		s := got["skip"]
		require.Equal(t, first, s.MessageID)
		require.Equal(t, blocker.ClientID(), s.Client)
		require.Equal(t, "ack-deadline", s.Reason)

		res, err := f.client.Get(f.base + "history?r=" + room)
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		page := string(body)
		require.Contains(t, page, `set to</span> <code class="policy">maxpending=1,overflow=drop-oldest,straggler=skip</code>`)
		require.Regexp(t, `(?s)t-drop">drop</span>.*?<b>#`+strconv.FormatUint(dropped, 10)+`</b> <span class="muted">priority 3</span> <span class="muted">from svc</span>  <span class="muted">reason: drop-oldest</span> <span class="muted">\d+ B</span> <span class="muted">sent \d{4}-`, page)
		require.Regexp(t, `(?s)t-skip">skip</span>.*?<b>#`+strconv.FormatUint(first, 10)+`</b> <span class="chip">`+blocker.ClientID()+`</span> <span class="muted">reason: ack-deadline</span>`, page)
	})
}
