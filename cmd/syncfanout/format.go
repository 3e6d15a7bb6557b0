package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/syncfanout/syncfanout/internal/payload"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// payloadJSON is a payload made printable. Encoding says how Data reads:
// "msgpack" (a Go value sent with Send, decoded to JSON), "utf8" (a []byte
// payload that is valid UTF-8, as a string), "base64" (any other []byte
// payload) or "invalid" (Data is the decoding error).
type payloadJSON struct {
	Encoding string `json:"encoding"`
	Data     any    `json:"data"`
}

type decodable interface {
	Raw() bool
	Data() []byte
	Decode(any) error
}

func payloadOf(m decodable) payloadJSON {
	if m.Raw() {
		b := m.Data()
		if utf8.Valid(b) {
			return payloadJSON{"utf8", string(b)}
		}
		return payloadJSON{"base64", base64.StdEncoding.EncodeToString(b)}
	}
	var v any
	if err := m.Decode(&v); err != nil {
		return payloadJSON{"invalid", err.Error()}
	}
	v = payload.JSONable(v, "")
	if _, err := json.Marshal(v); err != nil {
		return payloadJSON{"invalid", err.Error()}
	}
	return payloadJSON{"msgpack", v}
}

func eventPayload(ev streams.Event) payloadJSON {
	m, err := queue.MessageFromEvent(ev)
	if err != nil {
		return payloadJSON{"invalid", err.Error()}
	}
	return payloadOf(m)
}

func pendingPayload(p *queue.PendingMessage) payloadJSON { return payloadOf(p) }

// text is the payload in a table cell: JSON for decoded values, a quoted
// string for UTF-8 bytes, base64: for other bytes; cut at 120 characters.
func (p payloadJSON) text() string {
	var s string
	switch p.Encoding {
	case "msgpack":
		b, _ := json.Marshal(p.Data)
		s = string(b)
	case "utf8":
		s = strconv.Quote(p.Data.(string))
	case "base64":
		s = "base64:" + p.Data.(string)
	default:
		s = fmt.Sprintf("<%v>", p.Data)
	}
	if utf8.RuneCountInString(s) > 120 {
		r := []rune(s)
		s = string(r[:119]) + "…"
	}
	return s
}

// fromJSON turns JSON numbers into int64 when they are integers, so
// `send --json` sends what a Go producer would.
func fromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = fromJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = fromJSON(e)
		}
	}
	return v
}

// human prints a duration for people: milliseconds under a second, tenths
// of a second under a minute, seconds above.
func human(d time.Duration) string {
	if d < 0 {
		return "-" + human(-d)
	}
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// parseWhen reads a --since/--until value: a duration ago or RFC 3339.
func parseWhen(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, usageErr("%s %s: want a positive duration (how long ago)", name, v)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, usageErr("%s %q: want a duration ago (10m, 2h) or an RFC 3339 time (2026-11-28T08:00:00Z)", name, v)
}

var idPattern = regexp.MustCompile(`^[0-9]+(-[0-9]+)?$`)

// parseID reads a stream ID: "<ms>-<seq>" or "<ms>".
func parseID(name, v string) (string, error) {
	if v == "" || idPattern.MatchString(v) {
		return v, nil
	}
	return "", usageErr("%s %q: want a stream ID such as 1764315923000-0", name, v)
}

// headerFlag collects repeated --header KEY=VALUE flags.
type headerFlag map[string]string

func (h *headerFlag) String() string { return "" }

func (h *headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	if *h == nil {
		*h = headerFlag{}
	}
	(*h)[k] = val
	return nil
}

// headersText is a message's headers in a table cell, after its data:
// empty without headers, else two spaces and the headers as a JSON object
// (sorted keys, values quoted), which cannot be mistaken for the data.
func headersText(h map[string]string) string {
	if len(h) == 0 {
		return ""
	}
	b, _ := json.Marshal(h)
	return "  headers=" + string(b)
}
