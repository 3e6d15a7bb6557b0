package console

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/syncfanout/syncfanout/queue"
)

// page is what every template gets.
type page struct {
	Title string
	Nav   string // the active tab
	Admin bool
	CSRF  string // admin mode only
	Error string
	Data  any
}

// policyZero stands for the zero policy, whose text form is empty
// (console.js says the same).
const policyZero = "the zero policy (lock-step)"

var templateFuncs = template.FuncMap{
	"secs": func(s float64) string { return human(time.Duration(s * float64(time.Second))) },
	"ago":  func(now, t time.Time) string { return human(now.Sub(t)) },
	"add":  func(a, b int) int { return a + b },
	"sub":  func(a, b int) int { return a - b },
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
	"kb": func(n int) string {
		if n < 1024 {
			return fmt.Sprintf("%d B", n)
		}
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	},
	"first": func(n int, s []string) []string { return s[:min(n, len(s))] },
	// policy is a policy event's text form; the zero policy's is empty.
	"policy": func(p *string) string {
		if *p == "" {
			return policyZero
		}
		return *p
	},
	"more": func(n int, s []string) int { return max(len(s)-n, 0) },
	"sortLink": func(rq roomQuery, by string) string {
		v := url.Values{}
		if rq.Name != "" {
			v.Set("q", rq.Name)
		}
		if rq.Only != "" {
			v.Set("only", rq.Only)
		}
		if rq.Cursor != "" {
			v.Set("cursor", rq.Cursor)
		}
		if by != "" {
			v.Set("sort", by)
		}
		return "./?" + v.Encode()
	},
	"nextLink": func(rq roomQuery, next string) string {
		v := url.Values{"cursor": {next}}
		if rq.Name != "" {
			v.Set("q", rq.Name)
		}
		if rq.Only != "" {
			v.Set("only", rq.Only)
		}
		if rq.Sort != "" {
			v.Set("sort", rq.Sort)
		}
		return "./?" + v.Encode()
	},
}

// human prints a duration for people: 850ms, 4.2s, 3m05s, 2h10m, 3d4h.
func human(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d == 0:
		s = "0s"
	case d < 10*time.Millisecond:
		s = fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		s = fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		s = fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		s = fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		s = fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
	if neg {
		return "-" + s
	}
	return s
}

func (h *Handler) parseTemplates() error {
	h.pages = map[string]*template.Template{}
	for _, name := range []string{"rooms", "room", "history", "stats", "error"} {
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("syncfanout: console templates: %w", err)
		}
		h.pages[name] = t
	}
	return nil
}

// render writes a page; a template error becomes a plain 500 (it is a
// bug, and the half-written page is discarded).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name, nav string, data any) {
	p := page{Title: h.opts.Title, Nav: nav, Admin: h.opts.Admin, Data: data}
	if h.opts.Admin {
		p.CSRF = h.csrfToken(w, r)
	}
	h.write(w, status, h.pages[name], "layout", p)
}

func (h *Handler) write(w http.ResponseWriter, status int, t *template.Template, name string, p page) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, p); err != nil {
		http.Error(w, "syncfanout console: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, nav string, err error) {
	h.render(w, r, statusOf(err), "error", nav, err.Error())
}

type roomsData struct {
	Query roomQuery
	List  RoomList
}

func (h *Handler) roomsPage(w http.ResponseWriter, r *http.Request) {
	rq, err := h.parseRoomQuery(r.URL.Query())
	if err != nil {
		h.errorPage(w, r, "rooms", err)
		return
	}
	ctx, cancel := readCtx(r)
	defer cancel()
	list, err := h.listRooms(ctx, rq)
	if err != nil {
		h.errorPage(w, r, "rooms", err)
		return
	}
	h.render(w, r, http.StatusOK, "rooms", "rooms", roomsData{Query: rq, List: list})
}

func (h *Handler) roomPage(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		h.errorPage(w, r, "rooms", err)
		return
	}
	ctx, cancel := readCtx(r)
	defer cancel()
	v, err := h.roomView(ctx, room)
	if err != nil {
		h.errorPage(w, r, "rooms", err)
		return
	}
	// part=state: only the barrier, which the page reloads as events come.
	if r.URL.Query().Get("part") == "state" {
		h.write(w, http.StatusOK, h.pages["room"], "state", page{Admin: h.opts.Admin, Data: v})
		return
	}
	h.render(w, r, http.StatusOK, "room", "rooms", v)
}

type historyData struct {
	Room  string
	Query historyQuery
	Page  HistoryPage
}

// NextLink is the URL of the following history page.
func (d historyData) NextLink() string {
	v := url.Values{"r": {d.Room}, "from": {d.Page.Next}}
	for k, s := range map[string]string{"to": d.Query.To, "until": d.Query.Until, "limit": d.Query.Limit} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return "history?" + v.Encode()
}

func (h *Handler) historyPage(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		h.errorPage(w, r, "rooms", err)
		return
	}
	hq, err := parseHistoryQuery(r)
	if err != nil {
		h.errorPage(w, r, "rooms", err)
		return
	}
	p, err := h.history(r, room, hq)
	if err != nil {
		h.errorPage(w, r, "rooms", err)
		return
	}
	h.render(w, r, http.StatusOK, "history", "rooms", historyData{Room: room, Query: hq, Page: p})
}

// StatsView is the process counters of the Queue the console runs on,
// and the deployment's totals.
type StatsView struct {
	Counters   []Counter   `json:"counters"`
	Latencies  []Latency   `json:"latencies"`
	Deployment []Counter   `json:"deployment"`
	Raw        queue.Stats `json:"-"`
}

// Counter is one named number.
type Counter struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Help  string `json:"help"`
}

// Latency summarizes a histogram: count, mean, and the bucket bounds
// under which half and 99% of the observations fall.
type Latency struct {
	Name  string  `json:"name"`
	Help  string  `json:"help"`
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_seconds"`
	P50   string  `json:"p50_at_most"`
	P99   string  `json:"p99_at_most"`
}

func quantile(h queue.HistogramSnapshot, q float64) string {
	if h.Count == 0 {
		return "-"
	}
	want := uint64(math.Ceil(q * float64(h.Count)))
	for i, c := range h.Cumulative {
		if c >= want {
			return human(h.Bounds[i])
		}
	}
	return "> " + human(h.Bounds[len(h.Bounds)-1])
}

func (h *Handler) statsView(r *http.Request) (StatsView, error) {
	s := h.q.Stats()
	n := func(v uint64) string { return fmt.Sprint(v) }
	v := StatsView{Raw: s, Counters: []Counter{
		{"Sent", n(s.Sent), "messages sent by this process"},
		{"Released", n(s.Released), "releases its own calls triggered"},
		{"Out of band", n(s.OutOfBand), "out-of-band messages sent"},
		{"Delivered", n(s.Delivered), "messages handed to local subscribers"},
		{"Acked", n(s.Acked), "acks accepted"},
		{"Acks refused: stale", n(s.AckStale), "for a message no longer in flight"},
		{"Acks refused: invalid", n(s.AckInvalid), "malformed, altered or pre-reset tokens"},
		{"Acks refused: not a member", n(s.AckNotMember), "non-members and observers"},
		{"Evicted: heartbeat", n(s.EvictedTimeout), "local subscribers that missed their heartbeats"},
		{"Evicted: ack timeout", n(s.EvictedAckTimeout), "local subscribers that did not ack in time"},
		{"Removed by another's Unsubscribe", n(s.EvictedLeave), ""},
		{"Malformed entries skipped", n(s.Invalid), ""},
		{"Idle rooms expired", n(s.ExpiredRooms), "by this process's housekeeping"},
		{"Room resets", n(s.Reset), "subscriptions ended because Redis lost a room"},
		{"Config restored", n(s.ConfigRestored), ""},
		{"Shard conflict", fmt.Sprint(s.ShardConflict), "another NumShards is in use on this prefix"},
		{"Admin: pause / resume", n(s.AdminPause) + " / " + n(s.AdminResume), "operators' transitions made through this process"},
		{"Admin: purge / release", n(s.AdminPurge) + " / " + n(s.AdminRelease), ""},
		{"Admin: kick / delete", n(s.AdminKick) + " / " + n(s.AdminDelete), ""},
	}}
	for _, l := range []struct {
		name, help string
		h          queue.HistogramSnapshot
	}{
		{"Release latency", "release step to local delivery", s.ReleaseLatency},
		{"Barrier wait", "release to last ack", s.BarrierWait},
		{"End to end", "enqueue to local delivery", s.EndToEnd},
	} {
		lat := Latency{Name: l.name, Help: l.help, Count: l.h.Count, P50: quantile(l.h, 0.5), P99: quantile(l.h, 0.99)}
		if l.h.Count > 0 {
			lat.Mean = (l.h.Sum / time.Duration(l.h.Count)).Seconds()
		}
		v.Latencies = append(v.Latencies, lat)
	}
	ctx, cancel := readCtx(r)
	defer cancel()
	m, err := h.q.Metrics(ctx, 0)
	if err != nil {
		return v, err
	}
	i := func(v int64) string { return fmt.Sprint(v) }
	v.Deployment = []Counter{
		{"Rooms", i(m.KnownRooms), "with members, observers, a backlog or a message in flight"},
		{"Idle rooms", i(m.IdleRooms), "kept for their history"},
		{"Expired rooms", i(m.ExpiredRooms), "deleted after IdleRoomTTL, by every process"},
		{"Backlog", i(m.Backlog), "pending messages over all rooms"},
		{"Members", i(m.Members), ""},
		{"Observers", i(m.Observers), ""},
		{"Malformed", i(m.Malformed), "pending entries set aside unreleased"},
	}
	return v, nil
}

func (h *Handler) statsPage(w http.ResponseWriter, r *http.Request) {
	v, err := h.statsView(r)
	if err != nil {
		h.errorPage(w, r, "stats", err)
		return
	}
	h.render(w, r, http.StatusOK, "stats", "stats", v)
}

func (h *Handler) apiStats(w http.ResponseWriter, r *http.Request) {
	v, err := h.statsView(r)
	if err != nil {
		jsonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
