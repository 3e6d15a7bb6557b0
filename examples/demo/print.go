package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

const (
	timeWidth = 6
	roomWidth = 34
	subWidth  = 15
)

type event struct {
	at   time.Time // local clock
	col  int       // 0: producer and room, 1..: subscribers
	text string
}

// rel is a local time relative to the start of the scenario.
func (r *result) rel(t time.Time) time.Duration { return t.Sub(r.localStart) }

// local maps a Redis server time onto the local clock.
func (r *result) local(server time.Time) time.Time {
	return r.localStart.Add(server.Sub(r.serverStart))
}

// releaseTime places a release on the local timeline. The server stamps it
// in whole milliseconds, so it is kept between its causes (the send, or the
// last ack of the previous message) and its first receipt.
func (r *result) releaseTime(id uint64, after time.Time) time.Time {
	t := r.local(r.released[id])
	if t.Before(after) {
		t = after.Add(time.Microsecond)
	}
	if first := r.firstRecv(id); t.After(first) {
		t = first.Add(-time.Microsecond)
	}
	return t
}

func (r *result) firstRecv(id uint64) time.Time {
	var first time.Time
	for _, s := range r.subs {
		if t, ok := s.recvAt[id]; ok && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// lastAck returns when the last ack of id was sent, and by whom.
func (r *result) lastAck(id uint64) (time.Time, string) {
	var last time.Time
	var who string
	for _, s := range r.subs {
		if t, ok := s.ackAt[id]; ok && t.After(last) {
			last, who = t, s.name
		}
	}
	return last, who
}

func (r *result) events() []event {
	var evs []event
	for _, id := range r.sendOrder {
		m := r.sent[id]
		text := fmt.Sprintf("send #%d p%d %s", id, m.priority, m.label)
		if m.oob {
			text = fmt.Sprintf("send OOB #%d %s", id, m.label)
		}
		evs = append(evs, event{at: m.at, text: text})
	}
	for i, id := range r.order {
		after := r.sent[id].at
		why := "(none in flight)"
		if i > 0 {
			var who string
			after, who = r.lastAck(r.order[i-1])
			why = "(" + who + " acked #" + fmt.Sprint(r.order[i-1]) + ")"
		}
		at := r.releaseTime(id, after)
		evs = append(evs, event{at: at, text: fmt.Sprintf("RELEASE #%d p%d %s", id, r.sent[id].priority, why)})
	}
	if r.oobID != 0 {
		at := r.releaseTime(r.oobID, r.sent[r.oobID].at)
		evs = append(evs, event{at: at, text: fmt.Sprintf("RELEASE OOB #%d (no barrier)", r.oobID)})
	}
	for col, s := range r.subs {
		for _, id := range s.recv {
			text := fmt.Sprintf("recv #%d", id)
			if id == r.oobID {
				text = fmt.Sprintf("recv OOB #%d", id)
			}
			evs = append(evs, event{at: s.recvAt[id], col: col + 1, text: text})
		}
		for id, at := range s.ackAt {
			evs = append(evs, event{at: at, col: col + 1, text: fmt.Sprintf("ack #%d", id)})
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
	return evs
}

func (r *result) print() {
	fmt.Printf("\nRoom %q: %d subscribers joined with q.Join, each acks after working on a message:\n", r.room, len(subscribers))
	for _, s := range subscribers {
		fmt.Printf("  %-7s %v per message\n", s.name, s.speed)
	}
	fmt.Printf("The producer sends %d messages at once (priority 0 is released first), then one\n", len(sends))
	fmt.Printf("out-of-band (OOB) message while the room waits for %s's ack of the %s release.\n\n", subscribers[len(subscribers)-1].name, ordinal(oobAfter))

	header := []string{"producer / room"}
	for _, s := range subscribers {
		header = append(header, fmt.Sprintf("%s (%v)", s.name, s.speed))
	}
	fmt.Println(row("ms", header))
	rule := []string{strings.Repeat("-", roomWidth-2)}
	for range subscribers {
		rule = append(rule, strings.Repeat("-", subWidth-2))
	}
	fmt.Println(row(strings.Repeat("-", timeWidth-2), rule))

	// Events of the same millisecond share a line, except that a producer
	// or room event never goes left of a subscriber's (a release would
	// seem to precede the ack that caused it).
	var line []string
	var lineMs int64 = -1
	flush := func() {
		if line != nil {
			fmt.Println(row(fmt.Sprint(lineMs), line))
		}
		line = nil
	}
	for _, ev := range r.events() {
		ms := r.rel(ev.at).Milliseconds()
		if line == nil || ms != lineMs || line[ev.col] != "" || (ev.col == 0 && slices.ContainsFunc(line[1:], func(c string) bool { return c != "" })) {
			flush()
			line = make([]string, len(subscribers)+1)
			lineMs = ms
		}
		line[ev.col] = ev.text
	}
	flush()
	fmt.Println()
	r.printChecks()
}

func row(t string, cells []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%*s  ", timeWidth, t)
	for i, c := range cells {
		w := subWidth
		if i == 0 {
			w = roomWidth
		}
		fmt.Fprintf(&b, "%-*s", w, c)
	}
	return strings.TrimRight(b.String(), " ")
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	}
	return fmt.Sprintf("%dth", n)
}

type check struct {
	ok   bool
	text string
}

// checks verifies, from what the subscribers saw, the rules the timeline
// is meant to show.
func (r *result) checks() []check {
	var out []check

	same := len(r.order) == len(sends)
	for _, s := range r.subs {
		var queued []uint64
		for _, id := range s.recv {
			if id != r.oobID {
				queued = append(queued, id)
			}
		}
		same = same && slices.Equal(queued, r.order)
	}
	out = append(out, check{same, fmt.Sprintf("every subscriber received the %d queued messages once, in the same order", len(sends))})

	lockstep := true
	waited := map[string]int{}
	for i := 1; i < len(r.order); i++ {
		prev, cur := r.order[i-1], r.order[i]
		for _, s := range r.subs {
			_, acked := s.ackAt[prev]
			lockstep = lockstep && acked
		}
		last, who := r.lastAck(prev)
		lockstep = lockstep && r.firstRecv(cur).After(last)
		waited[who]++
	}
	var w []string
	for _, s := range subscribers {
		if n := waited[s.name]; n > 0 {
			w = append(w, fmt.Sprintf("%s %dx", s.name, n))
		}
	}
	out = append(out, check{lockstep, fmt.Sprintf("each message was released only after all %d acked the previous one (last ack came from: %s)", len(subscribers), strings.Join(w, ", "))})

	var want []uint64
	if len(r.sendOrder) > 0 {
		rest := slices.Clone(r.sendOrder[1:])
		rest = slices.DeleteFunc(rest, func(id uint64) bool { return id == r.oobID })
		slices.SortStableFunc(rest, func(a, b uint64) int {
			return cmp.Or(cmp.Compare(r.sent[a].priority, r.sent[b].priority), cmp.Compare(a, b))
		})
		want = append([]uint64{r.sendOrder[0]}, rest...)
	}
	out = append(out, check{slices.Equal(want, r.order), fmt.Sprintf("release order %s: #%d went out at once (nothing in flight), then by priority, FIFO within one", ids(r.order), r.sendOrder[0])})

	// The OOB message overtakes whatever was still pending when it was
	// sent: its stream entry comes before theirs, and every subscriber
	// receives it in that position. Normally that is after the
	// oobAfter-th release, but a stalled machine can shift it.
	ahead := 0
	for _, id := range r.order {
		if streams.CompareIDs(r.streamIDs[id], r.streamIDs[r.oobID]) < 0 {
			ahead++
		}
	}
	overtook := r.oobID != 0 && ahead < len(r.order) && !r.oobToken
	for _, s := range r.subs {
		overtook = overtook && slices.Index(s.recv, r.oobID) == ahead
	}
	var after uint64
	if ahead > 0 && ahead <= len(r.order) {
		after = r.order[ahead-1]
	}
	out = append(out, check{overtook, fmt.Sprintf("OOB #%d was sent while #%d was in flight and %d messages pending; everyone got it right after #%d, ahead of the queue, with no ack token", r.oobID, r.oobInFlight, r.oobPending, after)})
	return out
}

func ids(list []uint64) string {
	s := make([]string, len(list))
	for i, id := range list {
		s[i] = fmt.Sprintf("#%d", id)
	}
	return strings.Join(s, " ")
}

func (r *result) ok() bool {
	for _, c := range r.checks() {
		if !c.ok {
			return false
		}
	}
	return true
}

func (r *result) printChecks() {
	fmt.Println("Checks:")
	for _, c := range r.checks() {
		mark := "ok  "
		if !c.ok {
			mark = "FAIL"
		}
		fmt.Printf("  %s %s\n", mark, c.text)
	}
	fmt.Printf("  (scenario took %v)\n", r.took.Round(time.Millisecond))
}

func (r *result) summary() string {
	state := "all checks ok"
	if !r.ok() {
		state = "A CHECK FAILED"
	}
	return fmt.Sprintf("%d messages + 1 OOB to %d subscribers in %v, release order %s, %s",
		len(sends), len(subscribers), r.took.Round(time.Millisecond), ids(r.order), state)
}

// replay reads the room's delivery stream back, as a late reader would.
func replay(ctx context.Context, q *queue.Queue, r *result) error {
	key, err := q.StreamKey(r.room)
	if err != nil {
		return err
	}
	fmt.Printf("\nReplay of the room's delivery stream (q.History: XRANGE on %s):\n", key)
	fmt.Printf("%*s  %-8s %s\n", timeWidth, "ms", "event", "detail")
	for ev, err := range q.History(ctx, r.room, streams.Range{}) {
		if err != nil {
			return err
		}
		ms := fmt.Sprint(ev.At.Sub(r.serverStart).Milliseconds())
		var detail string
		var payload string
		if m, err := queue.MessageFromEvent(ev); err == nil {
			if err := m.Decode(&payload); err != nil {
				payload = fmt.Sprintf("(%v)", err)
			}
		}
		switch ev.Type {
		case streams.Message:
			detail = fmt.Sprintf("#%d p%d  %-12s producer=%s, queued for %dms", ev.MessageID, ev.Priority, payload, ev.Producer, ev.At.Sub(ev.Enqueued).Milliseconds())
		case streams.OutOfBand:
			detail = fmt.Sprintf("#%d     %-12s producer=%s", ev.MessageID, payload, ev.Producer)
		default:
			detail = r.clientNames[ev.ClientID]
			if ev.Reason != "" && ev.Reason != string(ev.Type) {
				detail += " (" + ev.Reason + ")"
			}
		}
		fmt.Printf("%*s  %-8s %s\n", timeWidth, ms, ev.Type, detail)
	}
	return nil
}
