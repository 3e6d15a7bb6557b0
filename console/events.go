package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// EventView is one event of a room's stream, payload decoded.
type EventView struct {
	ID        string    `json:"id"` // stream entry ID
	Type      string    `json:"type"`
	At        time.Time `json:"at"`
	MessageID uint64    `json:"message_id,omitempty"`
	Priority  *int      `json:"priority,omitempty"`
	Producer  string    `json:"producer,omitempty"`
	Client    string    `json:"client,omitempty"`
	Observer  bool      `json:"observer,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Size      int       `json:"size,omitempty"` // malformed entries; dropped messages' payloads
	// Enqueued: when a dropped message had been sent.
	Enqueued *time.Time `json:"enqueued,omitempty"`
	Payload  *Payload   `json:"payload,omitempty"`
	// Headers of a message or out-of-band message (queue.Header).
	Headers map[string]string `json:"headers,omitempty"`
	// Admin events: who did it, how many messages a purge dropped, whom
	// a forced release did not wait for.
	Actor   string   `json:"actor,omitempty"`
	Count   *int     `json:"count,omitempty"`
	Missing []string `json:"missing,omitempty"`
	// Policy: a policy event's new policy, in its text form (queue.Policy).
	Policy *string `json:"policy,omitempty"`
	// Error: the entry could not be decoded (something other than the
	// library wrote it); ID still says where it is.
	Error string `json:"error,omitempty"`
}

func (h *Handler) eventView(ev streams.Event, err error) EventView {
	v := EventView{ID: ev.ID, Type: string(ev.Type), At: ev.At.UTC()}
	if err != nil {
		v.Type, v.Error = "undecodable", err.Error()
		if t, terr := streams.IDTime(ev.ID); terr == nil {
			v.At = t.UTC()
		}
		return v
	}
	switch ev.Type {
	case streams.Message, streams.OutOfBand:
		v.MessageID, v.Producer, v.Headers = ev.MessageID, ev.Producer, ev.Headers
		if ev.Type == streams.Message {
			p := ev.Priority
			v.Priority = &p
		}
		var p Payload
		if m, err := queue.MessageFromEvent(ev); err != nil {
			p = Payload{Encoding: "invalid", Error: err.Error(), Size: len(ev.Payload)}
		} else {
			p = h.payload(m)
		}
		v.Payload = &p
	case streams.Malformed:
		p := ev.Priority
		v.MessageID, v.Priority, v.Reason, v.Size = ev.MessageID, &p, ev.Reason, ev.Size
		v.Payload = &Payload{Encoding: "bytes", Text: strconv.Quote(string(ev.Payload)), Size: ev.Size, Truncated: len(ev.Payload) < ev.Size}
	case streams.Policy:
		p := ev.Policy
		v.Policy = &p
	case streams.Dropped:
		p := ev.Priority
		v.MessageID, v.Priority, v.Producer, v.Reason, v.Size = ev.MessageID, &p, ev.Producer, ev.Reason, ev.Size
		if !ev.Enqueued.IsZero() {
			at := ev.Enqueued.UTC()
			v.Enqueued = &at
		}
	case streams.Skipped:
		v.MessageID, v.Client, v.Reason = ev.MessageID, ev.ClientID, ev.Reason
	default:
		v.Client, v.Observer, v.Reason = ev.ClientID, ev.Observer, ev.Reason
		extraEventView(&v, ev)
	}
	return v
}

// streamID checks a stream entry ID given by a user ("ms" or "ms-seq").
func streamID(what, id string) (string, error) {
	ms, seq, hasSeq := strings.Cut(id, "-")
	if _, err := strconv.ParseUint(ms, 10, 64); err != nil {
		return "", badRequest("%s %q is not a stream ID (ms-seq)", what, id)
	}
	if hasSeq {
		if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			return "", badRequest("%s %q is not a stream ID (ms-seq)", what, id)
		}
	}
	return id, nil
}

// events streams a room's events as server-sent events, each with its
// stream ID as the event ID: a reconnecting EventSource sends the last one
// back (Last-Event-ID) and the tail resumes right after it, so a dropped
// connection loses nothing the stream still holds.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		jsonError(w, err)
		return
	}
	from := r.URL.Query().Get("from")
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		from = last
	}
	if from != "" && from != "$" && from != "0" {
		if _, err := streamID("from", from); err != nil {
			jsonError(w, err)
			return
		}
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		jsonError(w, errors.New("syncfanout console: this server cannot stream responses"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// The retry hint keeps reconnections quick; the comment line makes the
	// browser report the stream open before the first event.
	fmt.Fprint(w, "retry: 1000\n: tail of "+strconv.Quote(room)+"\n\n")
	flusher.Flush()
	for ev, err := range h.q.Tail(r.Context(), room, from) {
		if err != nil && ev.ID == "" {
			// A Redis error: Tail retries by itself; tell the page.
			b, _ := json.Marshal(apiError{err.Error()})
			fmt.Fprintf(w, "event: problem\ndata: %s\n\n", b)
			flusher.Flush()
			continue
		}
		b, _ := json.Marshal(h.eventView(ev, err))
		if _, werr := fmt.Fprintf(w, "id: %s\ndata: %s\n\n", ev.ID, b); werr != nil {
			return
		}
		flusher.Flush()
	}
}

// HistoryPage is one page of the history browser.
type HistoryPage struct {
	Room   string      `json:"room"`
	Events []EventView `json:"events"`
	// Next is the FromID of the following page ("" when this one ended
	// the range).
	Next string `json:"next,omitempty"`
}

type historyQuery struct {
	rg    streams.Range
	limit int
	// As given, to fill the form again.
	From, To, Since, Until, Limit string
}

// parseTime reads a time given as RFC 3339, an HTML datetime-local value
// (taken as UTC) or a duration back from now ("15m").
func parseTime(what, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, badRequest("%s %q: want a time (2006-01-02T15:04:05Z) or a duration back from now (15m)", what, s)
}

func parseHistoryQuery(r *http.Request) (historyQuery, error) {
	v := r.URL.Query()
	hq := historyQuery{limit: 100, From: v.Get("from"), To: v.Get("to"), Since: v.Get("since"), Until: v.Get("until"), Limit: v.Get("limit")}
	var err error
	if hq.From != "" {
		if hq.rg.FromID, err = streamID("from", hq.From); err != nil {
			return hq, err
		}
	}
	if hq.To != "" {
		if hq.rg.ToID, err = streamID("to", hq.To); err != nil {
			return hq, err
		}
	}
	now := time.Now()
	if hq.rg.Since, err = parseTime("since", hq.Since, now); err != nil {
		return hq, err
	}
	if hq.rg.Until, err = parseTime("until", hq.Until, now); err != nil {
		return hq, err
	}
	if hq.Limit != "" {
		n, err := strconv.Atoi(hq.Limit)
		if err != nil || n < 1 || n > MaxHistory {
			return hq, badRequest("limit %q, want 1..%d", hq.Limit, MaxHistory)
		}
		hq.limit = n
	}
	hq.rg.PerPage = int64(min(hq.limit+1, 512))
	return hq, nil
}

func (h *Handler) history(r *http.Request, room string, hq historyQuery) (HistoryPage, error) {
	ctx, cancel := readCtx(r)
	defer cancel()
	page := HistoryPage{Room: room, Events: []EventView{}}
	for ev, err := range h.q.History(ctx, room, hq.rg) {
		if err != nil && ev.ID == "" {
			return page, err
		}
		if len(page.Events) == hq.limit {
			page.Next = ev.ID
			break
		}
		page.Events = append(page.Events, h.eventView(ev, err))
	}
	return page, nil
}

func (h *Handler) apiHistory(w http.ResponseWriter, r *http.Request) {
	room, err := roomParam(r)
	if err != nil {
		jsonError(w, err)
		return
	}
	hq, err := parseHistoryQuery(r)
	if err != nil {
		jsonError(w, err)
		return
	}
	page, err := h.history(r, room, hq)
	if err != nil {
		jsonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}
