package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// format is the --format flag of the commands that print data.
type format string

func (f *format) String() string { return string(*f) }

func (f *format) Set(v string) error {
	switch v {
	case "table", "json":
		*f = format(v)
		return nil
	}
	return fmt.Errorf("want table or json, got %q", v)
}

func formatFlag(fs *flag.FlagSet, f *format, jsonWhat string) {
	*f = "table"
	fs.Var(f, "format", "output `format`: table, or json ("+jsonWhat+")")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// ---- rooms ----

type roomRow struct {
	Room            string   `json:"room"`
	Backlog         int      `json:"backlog"`
	Members         int      `json:"members"`
	Observers       int      `json:"observers"`
	InFlight        *uint64  `json:"in_flight,omitempty"`
	InFlightSeconds *float64 `json:"in_flight_seconds,omitempty"`
	WaitingOn       int      `json:"waiting_on"`
	// Idle rooms (nothing but history) are listed after the live ones
	// until they expire; ExpiresInSeconds is absent when kept forever.
	Idle             bool     `json:"idle,omitempty"`
	Paused           bool     `json:"paused,omitempty"` // by an operator (syncfanout pause)
	ExpiresInSeconds *float64 `json:"expires_in_seconds,omitempty"`
}

func roomsCmd() *command {
	var top int
	var f format
	return &command{
		name:    "rooms",
		summary: "List rooms by backlog: pending messages, members, age of the message in flight.",
		example: "syncfanout rooms --top 5\nsyncfanout --redis redis://a:7000,redis://b:7001 rooms --format json",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&top, "top", 20, fmt.Sprintf("show the `N` rooms with the largest backlog (1..%d)", queue.MaxTopRooms))
			formatFlag(fs, &f, "one object per room")
		},
		run: func(ctx context.Context, e *env, _ []string) error {
			if top < 1 || top > queue.MaxTopRooms {
				return usageErr("--top must be 1..%d, got %d", queue.MaxTopRooms, top)
			}
			q, err := e.queue(ctx, false)
			if err != nil {
				return err
			}
			ctx, cancel := e.withTimeout(ctx)
			defer cancel()
			m, err := q.Metrics(ctx, top)
			if err != nil {
				return err
			}
			rows := make([]roomRow, 0, len(m.TopRooms))
			for _, r := range m.TopRooms {
				st, err := q.RoomState(ctx, r.Room)
				if err != nil {
					return err
				}
				row := roomRow{Room: r.Room, Backlog: st.Pending, Members: len(st.Members), Observers: len(st.Observers), WaitingOn: len(st.Missing), Idle: r.Idle, Paused: st.Paused}
				if r.Idle && !r.Expires.IsZero() {
					in := max(r.Expires.Sub(st.Now), 0).Seconds()
					row.ExpiresInSeconds = &in
				}
				if st.InFlight != nil {
					seq, age := st.InFlight.Seq, st.InFlight.Age.Seconds()
					row.InFlight, row.InFlightSeconds = &seq, &age
				}
				rows = append(rows, row)
			}
			// Backlogs may have moved since the index was read.
			slices.SortStableFunc(rows, func(a, b roomRow) int {
				if a.Idle != b.Idle {
					if a.Idle {
						return 1
					}
					return -1
				}
				if c := cmp.Compare(b.Backlog, a.Backlog); c != 0 {
					return c
				}
				return cmp.Compare(a.Room, b.Room)
			})
			if f == "json" {
				for _, r := range rows {
					if err := writeJSON(e.stdout, r); err != nil {
						return err
					}
				}
				return nil
			}
			fmt.Fprintf(e.stdout, "%d rooms, %d pending messages, %d members, %d observers", m.KnownRooms, m.Backlog, m.Members, m.Observers)
			if m.IdleRooms > 0 {
				fmt.Fprintf(e.stdout, ", %d idle rooms kept for their history", m.IdleRooms)
			}
			if int64(len(rows)) < m.KnownRooms+m.IdleRooms {
				fmt.Fprintf(e.stdout, " (showing the %d with the largest backlog)", len(rows))
			}
			fmt.Fprintln(e.stdout)
			if len(rows) == 0 {
				return nil
			}
			fmt.Fprintln(e.stdout)
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROOM\tBACKLOG\tMEMBERS\tOBSERVERS\tIN FLIGHT\tWAITING ON")
			for _, r := range rows {
				inflight := "-"
				switch {
				case r.InFlight != nil:
					inflight = fmt.Sprintf("#%d for %s", *r.InFlight, human(secondsDuration(*r.InFlightSeconds)))
				case r.ExpiresInSeconds != nil:
					inflight = fmt.Sprintf("- (idle, expires in %s)", human(secondsDuration(*r.ExpiresInSeconds)))
				case r.Idle:
					inflight = "- (idle, kept)"
				}
				name := r.Room
				if r.Paused {
					name += " (paused)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\n", name, r.Backlog, r.Members, r.Observers, inflight, r.WaitingOn)
			}
			return tw.Flush()
		},
	}
}

// ---- state ----

type memberJSON struct {
	Client           string     `json:"client"`
	Observer         bool       `json:"observer,omitempty"`
	LastHeartbeat    *time.Time `json:"last_heartbeat,omitempty"`
	HeartbeatSeconds *float64   `json:"heartbeat_age_seconds,omitempty"`
	DeadlineSeconds  *float64   `json:"evicted_in_seconds,omitempty"`
	Acked            *bool      `json:"acked,omitempty"` // members only
	AckedAt          *time.Time `json:"acked_at,omitempty"`
	WaitingSeconds   *float64   `json:"waiting_seconds,omitempty"`
	Lag              int        `json:"lag,omitempty"` // messages released it has not acked
}

type stateJSON struct {
	Room       string         `json:"room"`
	Now        time.Time      `json:"now"`
	LastSeq    uint64         `json:"last_message_id"`
	Pending    int            `json:"pending"`
	ByPriority map[string]int `json:"pending_by_priority,omitempty"`
	InFlight   *inFlightJSON  `json:"in_flight,omitempty"`
	Window     []uint64       `json:"in_flight_window,omitempty"` // more than one under a Policy.Window
	Members    []memberJSON   `json:"members"`
	Observers  []memberJSON   `json:"observers"`
	WaitingOn  []memberJSON   `json:"waiting_on"`
	StreamLen  int64          `json:"stream_entries"`
	Hold       bool           `json:"hold_when_empty"`
	Paused     *pausedJSON    `json:"paused,omitempty"`
	Policy     *policyJSON    `json:"policy"`
}

// pausedJSON is an operator's pause (syncfanout pause).
type pausedJSON struct {
	Since  time.Time `json:"since"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
}

type inFlightJSON struct {
	ID                 uint64     `json:"message_id"`
	StreamID           string     `json:"stream_id"`
	ReleasedAt         time.Time  `json:"released_at"`
	AgeSeconds         float64    `json:"age_seconds"`
	AckDeadline        *time.Time `json:"ack_deadline,omitempty"`
	AckDeadlineSeconds *float64   `json:"ack_deadline_in_seconds,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func stateCmd() *command {
	var f format
	return &command{
		name:    "state",
		args:    "ROOM",
		nargs:   1,
		summary: "Show a room: pending messages, the message in flight, members with their last heartbeat and ack, and who the room is waiting on.",
		example: "syncfanout state lobby\nsyncfanout state --format json lobby",
		flags:   func(fs *flag.FlagSet) { formatFlag(fs, &f, "one object") },
		run: func(ctx context.Context, e *env, args []string) error {
			room := args[0]
			if err := roomArg(room); err != nil {
				return err
			}
			q, err := e.queue(ctx, false)
			if err != nil {
				return err
			}
			st, err := e.roomState(ctx, q, room)
			if err != nil {
				return err
			}
			e.emptyNote("state", st)
			s := stateView(st)
			if f == "json" {
				return writeJSON(e.stdout, s)
			}
			return printState(e.stdout, st, s)
		},
	}
}

func stateView(st queue.RoomState) stateJSON {
	s := stateJSON{
		Room: st.Room, Now: st.Now.UTC(), LastSeq: st.LastSeq, Pending: st.Pending,
		StreamLen: st.StreamLen, Hold: st.Hold,
		Members: []memberJSON{}, Observers: []memberJSON{}, WaitingOn: []memberJSON{},
		Policy: policyView(st.Policy, st.PolicyStored),
	}
	if st.Paused {
		s.Paused = &pausedJSON{Since: st.PausedAt.UTC(), By: st.PausedBy, Reason: st.PauseReason}
	}
	for p, n := range st.ByPriority {
		if n > 0 {
			if s.ByPriority == nil {
				s.ByPriority = map[string]int{}
			}
			s.ByPriority[fmt.Sprint(p)] = n
		}
	}
	if in := st.InFlight; in != nil {
		s.InFlight = &inFlightJSON{ID: in.Seq, StreamID: in.StreamID, ReleasedAt: in.ReleasedAt.UTC(), AgeSeconds: in.Age.Seconds()}
		if !in.AckDeadline.IsZero() {
			s.InFlight.AckDeadline = ptr(in.AckDeadline.UTC())
			s.InFlight.AckDeadlineSeconds = ptr(in.AckDeadline.Sub(st.Now).Seconds())
		}
	}
	view := func(m queue.Member) memberJSON {
		j := memberJSON{Client: m.ClientID, Observer: m.Observer, Lag: m.Lag}
		if !m.Observer {
			j.Acked = ptr(m.Acked)
		}
		if !m.LastHeartbeat.IsZero() {
			j.LastHeartbeat = ptr(m.LastHeartbeat.UTC())
			j.HeartbeatSeconds = ptr(st.Now.Sub(m.LastHeartbeat).Seconds())
		}
		if !m.Deadline.IsZero() {
			j.DeadlineSeconds = ptr(m.Deadline.Sub(st.Now).Seconds())
		}
		if !m.AckedAt.IsZero() {
			j.AckedAt = ptr(m.AckedAt.UTC())
		}
		return j
	}
	if len(st.Window) > 1 {
		for _, in := range st.Window {
			s.Window = append(s.Window, in.Seq)
		}
	}
	missing := map[string]bool{}
	for _, id := range st.Missing {
		missing[id] = true
	}
	for _, m := range st.Members {
		j := view(m)
		s.Members = append(s.Members, j)
		if missing[m.ClientID] && st.InFlight != nil {
			// A member that joined after the release counts as acked, so
			// every missing one was there when the message went out.
			j.WaitingSeconds = ptr(st.InFlight.Age.Seconds())
			s.WaitingOn = append(s.WaitingOn, j)
		}
	}
	for _, m := range st.Observers {
		s.Observers = append(s.Observers, view(m))
	}
	return s
}

func printState(w io.Writer, st queue.RoomState, s stateJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "room:\t%s\n", st.Room)
	pending := fmt.Sprint(st.Pending)
	if len(s.ByPriority) > 0 {
		var parts []string
		for p, n := range st.ByPriority {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("priority %d: %d", p, n))
			}
		}
		pending += " (" + strings.Join(parts, ", ") + ")"
	}
	if st.Hold {
		pending += ", held while the room is empty"
	}
	fmt.Fprintf(tw, "pending:\t%s\n", pending)
	if st.Paused {
		fmt.Fprintf(tw, "paused:\tsince %s ago, by %s, reason %q: nothing new is released\n", human(st.Now.Sub(st.PausedAt)), st.PausedBy, st.PauseReason)
	}
	if in := st.InFlight; in != nil {
		line := fmt.Sprintf("message %d (stream %s), released %s ago", in.Seq, in.StreamID, human(in.Age))
		if !in.AckDeadline.IsZero() {
			line += fmt.Sprintf(", ack deadline in %s", human(in.AckDeadline.Sub(st.Now)))
		}
		fmt.Fprintf(tw, "in flight:\t%s\n", line)
		if len(s.Window) > 1 {
			fmt.Fprintf(tw, "window:\t%d messages in flight: %v\n", len(s.Window), s.Window)
		}
	} else {
		fmt.Fprintf(tw, "in flight:\tnone\n")
	}
	fmt.Fprintf(tw, "last message:\t%d\n", st.LastSeq)
	fmt.Fprintf(tw, "stream:\t%d entries\n", st.StreamLen)
	fmt.Fprintf(tw, "policy:\t%s\n", policySummary(st.Policy, st.PolicyStored))
	if err := tw.Flush(); err != nil {
		return err
	}
	printMembers := func(title string, ms []queue.Member, acks bool) error {
		fmt.Fprintf(w, "\n%s (%d)\n", title, len(ms))
		if len(ms) == 0 {
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if acks {
			fmt.Fprintln(tw, "  CLIENT\tLAST HEARTBEAT\tEVICTED IN\tACKED")
		} else {
			fmt.Fprintln(tw, "  CLIENT\tLAST HEARTBEAT\tEVICTED IN")
		}
		for _, m := range ms {
			hb, dl := "never", "-"
			if !m.LastHeartbeat.IsZero() {
				hb = human(st.Now.Sub(m.LastHeartbeat)) + " ago"
			}
			if !m.Deadline.IsZero() {
				dl = human(m.Deadline.Sub(st.Now))
			}
			if !acks {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.ClientID, hb, dl)
				continue
			}
			acked := "-"
			switch {
			case st.InFlight == nil:
			case m.Acked && m.AckedAt.IsZero():
				acked = "joined after the release"
			case m.Acked:
				acked = "yes, " + human(st.Now.Sub(m.AckedAt)) + " ago"
			default:
				acked = "NO"
			}
			if m.Lag > 1 {
				acked += fmt.Sprintf(" (%d behind)", m.Lag)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", m.ClientID, hb, dl, acked)
		}
		return tw.Flush()
	}
	if err := printMembers("members", st.Members, true); err != nil {
		return err
	}
	if err := printMembers("observers", st.Observers, false); err != nil {
		return err
	}
	if st.InFlight == nil {
		fmt.Fprintf(w, "\nwaiting on nobody: no message in flight\n")
		return nil
	}
	if len(st.Missing) == 0 {
		fmt.Fprintf(w, "\nwaiting on nobody: every member acked message %d\n", st.InFlight.Seq)
		return nil
	}
	fmt.Fprintf(w, "\nwaiting on (%d) for message %d:\n", len(st.Missing), st.InFlight.Seq)
	for _, m := range s.WaitingOn {
		line := fmt.Sprintf("  %s for %s", m.Client, human(secondsDuration(*m.WaitingSeconds)))
		if m.HeartbeatSeconds != nil {
			line += fmt.Sprintf(" (last heartbeat %s ago", human(secondsDuration(*m.HeartbeatSeconds)))
			if m.DeadlineSeconds != nil {
				line += fmt.Sprintf(", evicted in %s if silent", human(secondsDuration(*m.DeadlineSeconds)))
			}
			line += ")"
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

// ---- peek ----

type pendingJSON struct {
	Position   int               `json:"position"`
	ID         uint64            `json:"message_id"`
	Priority   int               `json:"priority"`
	Producer   string            `json:"producer"`
	EnqueuedAt time.Time         `json:"enqueued_at"`
	Headers    map[string]string `json:"headers,omitempty"`
	payloadJSON
}

func peekCmd() *command {
	var n, offset int
	var f format
	return &command{
		name:    "peek",
		args:    "ROOM",
		nargs:   1,
		summary: "List a room's pending messages in the order they will be released, without changing anything.",
		example: "syncfanout peek lobby -n 20\nsyncfanout peek --format json lobby",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&n, "n", 10, "show at most `N` messages (1..10000)")
			fs.IntVar(&offset, "offset", 0, "skip the first `K` pending messages")
			formatFlag(fs, &f, "one object per message, payload decoded")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			room := args[0]
			if err := roomArg(room); err != nil {
				return err
			}
			if n < 1 || n > 10000 || offset < 0 {
				return usageErr("-n must be 1..10000 and --offset >= 0, got -n %d --offset %d", n, offset)
			}
			q, err := e.queue(ctx, false)
			if err != nil {
				return err
			}
			st, err := e.roomState(ctx, q, room)
			if err != nil {
				return err
			}
			e.emptyNote("peek", st)
			ctx, cancel := e.withTimeout(ctx)
			defer cancel()
			msgs, err := q.Peek(ctx, room, offset, n)
			if err != nil {
				return err
			}
			if f == "json" {
				for i, m := range msgs {
					if err := writeJSON(e.stdout, pendingJSON{
						Position: offset + i + 1, ID: m.ID, Priority: m.Priority, Producer: m.Producer,
						EnqueuedAt: m.EnqueuedAt.UTC(), Headers: m.Headers, payloadJSON: pendingPayload(m),
					}); err != nil {
						return err
					}
				}
				return nil
			}
			fmt.Fprintf(e.stdout, "%d pending in room %s", st.Pending, room)
			if len(msgs) < st.Pending {
				fmt.Fprintf(e.stdout, " (showing %d from position %d)", len(msgs), offset+1)
			}
			fmt.Fprintln(e.stdout)
			if len(msgs) == 0 {
				return nil
			}
			fmt.Fprintln(e.stdout)
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tID\tPRIORITY\tPRODUCER\tWAITING\tDATA")
			for i, m := range msgs {
				fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s%s\n", offset+i+1, m.ID, m.Priority, dash(m.Producer),
					human(st.Now.Sub(m.EnqueuedAt)), pendingPayload(m).text(), headersText(m.Headers))
			}
			return tw.Flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- replay and tail ----

func replayCmd() *command {
	var since, until, from, to string
	var speed float64
	var f format
	return &command{
		name:    "replay",
		args:    "ROOM",
		nargs:   1,
		summary: "Print a room's history (messages, out-of-band messages, joins, leaves, evictions) in order.",
		example: "syncfanout replay lobby --since 1h --format json\n" +
			"syncfanout replay lobby --from 1764315923000-0 --until 2026-11-28T08:00:00Z\n" +
			"syncfanout replay lobby --since 10m --speed 1   # with the original pacing",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&since, "since", "", "start at this `time`: a duration ago (10m, 2h) or RFC 3339")
			fs.StringVar(&until, "until", "", "stop at this `time`: a duration ago or RFC 3339 (default now)")
			fs.StringVar(&from, "from", "", "start at this stream `ID` (inclusive; wins over --since)")
			fs.StringVar(&to, "to", "", "stop at this stream `ID` (inclusive; wins over --until)")
			fs.Float64Var(&speed, "speed", 0, "pacing: 0 as fast as possible, 1 the original gaps, 2 twice as fast")
			formatFlag(fs, &f, "one object per event, payload decoded")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			room := args[0]
			if err := roomArg(room); err != nil {
				return err
			}
			var rg streams.Range
			var err error
			now := time.Now()
			if rg.Since, err = parseWhen("--since", since, now); err != nil {
				return err
			}
			if rg.Until, err = parseWhen("--until", until, now); err != nil {
				return err
			}
			if rg.FromID, err = parseID("--from", from); err != nil {
				return err
			}
			if rg.ToID, err = parseID("--to", to); err != nil {
				return err
			}
			if speed < 0 {
				return usageErr("--speed must be >= 0, got %v", speed)
			}
			q, err := e.queue(ctx, false)
			if err != nil {
				return err
			}
			st, err := e.roomState(ctx, q, room)
			if err != nil {
				return err
			}
			e.emptyNote("replay", st)
			out := bufio.NewWriter(e.stdout)
			defer out.Flush()
			p := &eventPrinter{w: out, format: f}
			p.header()
			skipped := 0
			// No overall timeout: a paced replay may take long; Redis reads
			// still fail fast through the client's own timeouts.
			err = q.ReplayInto(ctx, room, rg, func(ev streams.Event) error {
				if err := p.print(ev); err != nil {
					return err
				}
				if speed > 0 {
					return out.Flush()
				}
				return nil
			}, streams.ReplayOptions{Speed: speed, OnDecodeError: func(de *streams.DecodeError) error {
				_ = out.Flush()
				skipped++
				fmt.Fprintf(e.stderr, "syncfanout replay: skipped %v\n", de)
				return nil
			}})
			if skipped > 0 {
				_ = out.Flush()
				fmt.Fprintf(e.stderr, "syncfanout replay: skipped %d malformed entries\n", skipped)
			}
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
}

func tailCmd() *command {
	var from string
	var f format
	return &command{
		name:    "tail",
		args:    "ROOM",
		nargs:   1,
		summary: "Follow a room's deliveries and membership events live, until interrupted (Ctrl-C).",
		example: "syncfanout tail lobby\nsyncfanout tail --from 0 --format json lobby   # whole history first, then live",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&from, "from", "", "start after this stream `ID` (0: the whole stream; default: from now on)")
			formatFlag(fs, &f, "one object per event, payload decoded")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			room := args[0]
			if err := roomArg(room); err != nil {
				return err
			}
			if from != "" && from != "$" && from != "0" {
				if _, err := parseID("--from", from); err != nil {
					return err
				}
			}
			q, err := e.queue(ctx, false)
			if err != nil {
				return err
			}
			st, err := e.roomState(ctx, q, room)
			if err != nil {
				return err
			}
			if emptyRoom(st) {
				fmt.Fprintf(e.stderr, "syncfanout tail: room %q has no history yet; waiting for it\n", room)
			}
			p := &eventPrinter{w: e.stdout, format: f}
			p.header()
			for ev, err := range q.Tail(ctx, room, from) {
				if err != nil {
					// Malformed entries and Redis blips are reported; the tail goes on.
					fmt.Fprintf(e.stderr, "syncfanout tail: %v\n", err)
					continue
				}
				if err := p.print(ev); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// eventJSON is one line of replay and tail in JSON.
type eventJSON struct {
	StreamID   string            `json:"stream_id"`
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"`
	ID         uint64            `json:"message_id,omitempty"`
	Priority   *int              `json:"priority,omitempty"`
	Producer   *string           `json:"producer,omitempty"`
	EnqueuedAt *time.Time        `json:"enqueued_at,omitempty"`
	Client     string            `json:"client,omitempty"`
	Observer   bool              `json:"observer,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Size       *int              `json:"size,omitempty"`    // malformed: the entry's length
	Entry      string            `json:"entry,omitempty"`   // malformed: its first bytes, Go-quoted
	Actor      string            `json:"actor,omitempty"`   // admin events
	Count      *int              `json:"count,omitempty"`   // purge: entries dropped
	UpTo       uint64            `json:"up_to,omitempty"`   // purge: its message ID bound
	Missing    []string          `json:"missing,omitempty"` // release: members that had not acked
	Headers    map[string]string `json:"headers,omitempty"`
	Policy     *string           `json:"policy,omitempty"` // policy: the new policy's text form
	*payloadJSON
}

type eventPrinter struct {
	w      io.Writer
	format format
}

func (p *eventPrinter) header() {
	if p.format == "table" {
		fmt.Fprintln(p.w, "TIME                      STREAM ID          TYPE     DETAILS")
	}
}

func (p *eventPrinter) print(ev streams.Event) error {
	j := eventJSON{StreamID: ev.ID, Time: ev.At.UTC(), Type: string(ev.Type)}
	var details string
	switch ev.Type {
	case streams.Message, streams.OutOfBand:
		j.ID = ev.MessageID
		j.Producer = ptr(ev.Producer)
		j.EnqueuedAt = ptr(ev.Enqueued.UTC())
		j.Headers = ev.Headers
		pl := eventPayload(ev)
		j.payloadJSON = &pl
		details = fmt.Sprintf("#%d", ev.MessageID)
		if ev.Type == streams.Message {
			j.Priority = ptr(ev.Priority)
			details += fmt.Sprintf(" priority=%d", ev.Priority)
		}
		details += fmt.Sprintf(" producer=%s  %s%s", dash(ev.Producer), pl.text(), headersText(ev.Headers))
	case streams.Malformed:
		// A pending entry set aside unreleased: show what it was, quoted,
		// since it may hold anything.
		j.ID, j.Priority, j.Reason, j.Size = ev.MessageID, ptr(ev.Priority), ev.Reason, ptr(ev.Size)
		j.Entry = strconv.Quote(string(ev.Payload))
		if ev.MessageID > 0 {
			details = fmt.Sprintf("#%d ", ev.MessageID)
		}
		details += fmt.Sprintf("priority=%d reason=%s size=%d  %s", ev.Priority, ev.Reason, ev.Size, j.Entry)
	case streams.Pause, streams.Resume, streams.RoomDeleted:
		j.Actor, j.Reason = ev.Actor, ev.Reason
		details = adminDetails(ev)
	case streams.Purge:
		j.Actor, j.Reason, j.Count, j.UpTo = ev.Actor, ev.Reason, ptr(ev.Count), ev.MessageID
		details = fmt.Sprintf("dropped=%d", ev.Count)
		if ev.Priority >= 0 {
			j.Priority = ptr(ev.Priority)
			details += fmt.Sprintf(" priority=%d", ev.Priority)
		}
		if ev.MessageID > 0 {
			details += fmt.Sprintf(" up-to=#%d", ev.MessageID)
		}
		details += " " + adminDetails(ev)
	case streams.ForceRelease:
		j.ID, j.Actor, j.Reason, j.Missing = ev.MessageID, ev.Actor, ev.Reason, ev.Missing
		details = fmt.Sprintf("#%d missing=%s %s", ev.MessageID, dash(strings.Join(ev.Missing, ",")), adminDetails(ev))
	case streams.Policy:
		j.Policy = ptr(ev.Policy)
		details = "policy=" + ev.Policy
		if ev.Policy == "" {
			details = "policy=lock-step (every field zero)"
		}
	case streams.Dropped:
		j.ID, j.Priority, j.Reason, j.Size = ev.MessageID, ptr(ev.Priority), ev.Reason, ptr(ev.Size)
		j.Producer = ptr(ev.Producer)
		details = fmt.Sprintf("#%d priority=%d producer=%s reason=%s size=%d", ev.MessageID, ev.Priority, dash(ev.Producer), ev.Reason, ev.Size)
	case streams.Skipped:
		j.ID, j.Client, j.Reason = ev.MessageID, ev.ClientID, ev.Reason
		details = fmt.Sprintf("#%d client=%s reason=%s", ev.MessageID, ev.ClientID, ev.Reason)
	default:
		j.Client, j.Observer, j.Reason, j.Actor = ev.ClientID, ev.Observer, ev.Reason, ev.Actor
		details = "client=" + ev.ClientID
		if ev.Observer {
			details += " (observer)"
		}
		if ev.Type == streams.Kick {
			details += " " + adminDetails(ev)
		} else if ev.Reason != "" && ev.Reason != string(ev.Type) {
			details += " reason=" + ev.Reason
		}
	}
	if p.format == "json" {
		return writeJSON(p.w, j)
	}
	_, err := fmt.Fprintf(p.w, "%-24s  %-17s  %-7s  %s\n", ev.At.UTC().Format("2006-01-02T15:04:05.000Z"), ev.ID, ev.Type, details)
	return err
}

// adminDetails shows who made an admin event and why; both are quoted,
// since they may hold spaces.
func adminDetails(ev streams.Event) string {
	return fmt.Sprintf("actor=%s reason=%s", strconv.Quote(ev.Actor), strconv.Quote(ev.Reason))
}

// ---- send ----

func sendCmd() *command {
	var priority int
	var oob, asJSON bool
	var producer string
	var headers headerFlag
	return &command{
		name:    "send",
		args:    "ROOM DATA",
		nargs:   2,
		summary: "Send a message to a room (one of the commands that change Redis, with policy set and the admin commands). DATA is sent as bytes, or decoded from JSON with --json; - reads it from standard input.",
		example: "syncfanout send lobby 'hello'\n" +
			"syncfanout send --json --priority 1 --producer ops lobby '{\"kind\":\"reload\"}'\n" +
			"echo 'stop' | syncfanout send --oob lobby -\n" +
			"syncfanout send --header traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 lobby 'hello'",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&priority, "priority", queue.DefaultPriority, fmt.Sprintf("priority `N`, %d (released first) .. %d", queue.MinPriority, queue.MaxPriority))
			fs.BoolVar(&oob, "oob", false, "send out of band: delivered at once to everyone, never acked")
			fs.StringVar(&producer, "producer", "syncfanout-cli", "producer `ID` kept with the message")
			fs.BoolVar(&asJSON, "json", false, "DATA is JSON: send the decoded value (msgpack-encoded, as Send does with Go values)")
			fs.Var(&headers, "header", "add the message header `KEY=VALUE` (repeat for more)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			room, data := args[0], args[1]
			if err := roomArg(room); err != nil {
				return err
			}
			if priority < queue.MinPriority || priority > queue.MaxPriority {
				return usageErr("--priority must be %d..%d, got %d", queue.MinPriority, queue.MaxPriority, priority)
			}
			if err := keys.ValidateProducer(producer); err != nil {
				return usageErr("--producer: %v", err)
			}
			opts := []queue.SendOption{queue.Producer(producer), queue.Priority(priority), queue.Headers(headers)}
			if data == "-" {
				b, err := io.ReadAll(os.Stdin)
				if err != nil {
					return fmt.Errorf("reading DATA from standard input: %w", err)
				}
				data = strings.TrimSuffix(string(b), "\n")
			}
			var payload any = []byte(data)
			if asJSON {
				var v any
				dec := json.NewDecoder(strings.NewReader(data))
				dec.UseNumber()
				if err := dec.Decode(&v); err != nil {
					return usageErr("DATA is not JSON: %v", err)
				}
				payload = fromJSON(v)
			}
			q, err := e.queue(ctx, true)
			if err != nil {
				return err
			}
			ctx, cancel := e.withTimeout(ctx)
			defer cancel()
			var id uint64
			if oob {
				id, err = q.SendOutOfBand(ctx, room, payload, queue.Producer(producer), queue.Headers(headers))
			} else {
				id, err = q.Send(ctx, room, payload, opts...)
			}
			if errors.Is(err, queue.ErrInvalidHeader) {
				return usageErr("--header: %v", err)
			}
			if err != nil {
				return err
			}
			kind := "message"
			if oob {
				kind = "out-of-band message"
			}
			fmt.Fprintf(e.stdout, "sent %s %d to room %s\n", kind, id, room)
			return nil
		},
	}
}
