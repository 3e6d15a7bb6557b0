package barrier

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/payload"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Pending is a queued message as stored in a priority list.
type Pending struct {
	Seq      uint64
	Priority int
	Producer string
	Enqueued time.Time
	Payload  []byte            // as sent: kind byte + body (see package queue)
	Headers  map[string]string // nil for a message sent without headers
	// Err is set (matching sferr.ErrDecode) for an entry that the release
	// step will set aside as malformed instead of releasing it; the fields
	// above then hold what could be read (Seq and Payload when the header
	// was readable).
	Err error
}

// ParseEntry decodes "<seq>:<enqueue ms>:<producer length>:<producer><payload>"
// with the rules of the release step (release_entry in internal/lua/room.lua):
// an entry it refuses is one the release step sets aside, and the other way
// round. The message ID and enqueue time are positive decimals without a
// leading zero, of at most 19 and 15 digits; the payload has a kind byte,
// and its header block, if any, is well-formed (internal/payload).
func ParseEntry(entry string) (Pending, error) {
	var p Pending
	var fields [3]uint64
	maxDigits := [...]int{19, 15, 0} // 0: the producer length may have any
	rest := entry
	for i := range fields {
		head, tail, ok := strings.Cut(rest, ":")
		if !ok {
			return p, fmt.Errorf("%w: queue entry without field %d", sferr.ErrDecode, i+1)
		}
		if maxDigits[i] > 0 && (head == "" || head[0] == '0' || len(head) > maxDigits[i]) {
			return p, fmt.Errorf("%w: queue entry field %d: %q is not a positive number of at most %d digits", sferr.ErrDecode, i+1, head, maxDigits[i])
		}
		n, err := strconv.ParseUint(head, 10, 64)
		if err != nil {
			return p, fmt.Errorf("%w: queue entry field %d: %q is not a number", sferr.ErrDecode, i+1, head)
		}
		fields[i] = n
		rest = tail
	}
	if fields[2] > uint64(len(rest)) {
		return p, fmt.Errorf("%w: queue entry producer length %d beyond entry", sferr.ErrDecode, fields[2])
	}
	p.Seq = fields[0]
	p.Enqueued = time.UnixMilli(int64(fields[1]))
	p.Producer = rest[:fields[2]]
	p.Payload = []byte(rest[fields[2]:])
	headers, body, why := payload.Parse(p.Payload)
	if why != "" {
		return p, fmt.Errorf("queue entry %d: %w: %s", p.Seq, sferr.ErrDecode, why)
	}
	p.Headers, p.Payload = headers, body
	return p, nil
}

// Peek lists up to limit pending messages from offset, in release order.
// Entries the release step will set aside are listed where they are, with
// Err set, so that offsets and positions stay those of the lists.
func (b *Barrier) Peek(ctx context.Context, room string, offset, limit int) ([]Pending, error) {
	v, err := b.cfg.Engine.Run(ctx, b.rdb, lua.Peek, b.layout.RoomKeys(room), offset, limit).Slice()
	if err != nil {
		return nil, fmt.Errorf("syncfanout: peek room %q: %w", room, err)
	}
	out := make([]Pending, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		p, err := ParseEntry(str(v, i+1))
		if err != nil {
			p.Err = err
		}
		p.Priority = int(u64(v, i))
		out = append(out, p)
	}
	return out, nil
}

// Member is a member or observer of a room.
type Member struct {
	ClientID      string
	Observer      bool
	LastHeartbeat time.Time
	Deadline      time.Time // evicted when no heartbeat arrives before it
	Acked         bool      // acked the in-flight message (or joined after it)
	AckedAt       time.Time // zero when it joined after the release
	// Lag is how many of the messages released to the room's members this
	// member has not acked: at most 1 in lock-step, up to the window, or
	// more under a quorum (windowed barrier).
	Lag int
}

// InFlight is the released message the barrier waits on.
type InFlight struct {
	Seq         uint64
	StreamID    string
	ReleasedAt  time.Time
	Age         time.Duration // by the server clock
	AckDeadline time.Time     // zero without an ack timeout
}

// State is a consistent snapshot of a room.
type State struct {
	Room       string
	Epoch      string
	Now        time.Time // server clock at the snapshot
	LastSeq    uint64    // highest message ID issued
	Pending    int
	ByPriority [keys.Levels]int
	InFlight   *InFlight
	Members    []Member // voting members, by client ID
	Observers  []Member
	Missing    []string // members the in-flight message waits on
	StreamLen  int64
	Hold       bool
	// Policy holds the room's stored policy fields (PolicyFields names);
	// PolicyStored is false when none is stored (the default applies).
	Policy       map[string]string
	PolicyStored bool
	// Window lists every message in flight, oldest first (InFlight is the
	// first); more than one only under a policy Window above 1.
	Window []InFlight
	// Paused is set while an operator has paused the room (admin_pause.lua).
	Paused      bool
	PausedAt    time.Time
	PausedBy    string
	PauseReason string
}

// State reads a room's state in one atomic step.
func (b *Barrier) State(ctx context.Context, room string) (State, error) {
	v, err := b.cfg.Engine.Run(ctx, b.rdb, lua.State, b.layout.RoomKeys(room)).Slice()
	if err != nil {
		return State{}, fmt.Errorf("syncfanout: state of room %q: %w", room, err)
	}
	if len(v) < stateLen {
		return State{}, fmt.Errorf("syncfanout: state of room %q: short reply", room)
	}
	s := State{Room: room, Now: ms(v, stateNow)}
	meta := pairs(v[stateMeta])
	seen := pairs(v[stateSeen])
	acks := pairs(v[stateAcks])
	s.Epoch = meta["ep"]
	s.LastSeq, _ = strconv.ParseUint(meta["seq"], 10, 64)
	s.Hold = meta["hold"] == "1"
	s.Policy, s.PolicyStored = policyFields(meta)
	if pz, ok := meta["pz"]; ok {
		s.Paused, s.PausedAt = true, msString(pz)
		s.PausedBy, s.PauseReason = meta["pb"], meta["pr"]
	}
	if lens, ok := v[statePending].([]any); ok {
		for p := range lens {
			if p < keys.Levels {
				s.ByPriority[p] = int(u64(lens, p))
				s.Pending += s.ByPriority[p]
			}
		}
	}
	s.StreamLen = int64(u64(v, stateStreamLen))
	if f, ok := meta["f"]; ok {
		in := &InFlight{StreamID: meta["fs"]}
		in.Seq, _ = strconv.ParseUint(f, 10, 64)
		in.ReleasedAt = msString(meta["rt"])
		in.AckDeadline = msString(meta["ad"])
		if !in.ReleasedAt.IsZero() {
			in.Age = s.Now.Sub(in.ReleasedAt)
		}
		s.InFlight = in
	}
	if s.InFlight != nil {
		s.Window = []InFlight{*s.InFlight}
	}
	win, windowed := parseWindow(meta)
	if windowed {
		s.Window = win.inFlight(s.Now)
		if len(s.Window) > 0 && s.InFlight != nil {
			s.Window[0].AckDeadline = s.InFlight.AckDeadline
		}
	}
	member := func(id, deadline string, observer bool) Member {
		m := Member{ClientID: id, Observer: observer, LastHeartbeat: msString(seen[id]), Deadline: msString(deadline)}
		at, ok := acks[id]
		switch {
		case observer:
		case windowed:
			pos, ackAt, _ := strings.Cut(at, ":")
			n, _ := strconv.ParseUint(pos, 10, 64)
			m.Acked = s.InFlight != nil && n > win.cn
			m.AckedAt = msString(ackAt)
			if n < win.rn {
				m.Lag = int(win.rn - n)
			}
		case ok:
			m.Acked = true
			m.AckedAt = msString(at)
		case s.InFlight != nil:
			m.Lag = 1
		}
		return m
	}
	for id, d := range pairs(v[stateMembers]) {
		m := member(id, d, false)
		s.Members = append(s.Members, m)
		if s.InFlight != nil && !m.Acked {
			s.Missing = append(s.Missing, id)
		}
	}
	for id, d := range pairs(v[stateObservers]) {
		s.Observers = append(s.Observers, member(id, d, true))
	}
	sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].ClientID < s.Members[j].ClientID })
	sort.Slice(s.Observers, func(i, j int) bool { return s.Observers[i].ClientID < s.Observers[j].ClientID })
	sort.Strings(s.Missing)
	return s, nil
}

func pairs(x any) map[string]string {
	flat, _ := x.([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		m[str(flat, i)] = str(flat, i+1)
	}
	return m
}

func msString(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// window is a windowed room's tracking (internal/lua/room.lua): release
// numbers rn (last released) and cn (last completed), and the tracked
// messages, numbered from rn-len(list)+1.
type window struct {
	rn, cn uint64
	list   []InFlight
}

func parseWindow(meta map[string]string) (window, bool) {
	rn, ok := meta["rn"]
	if !ok {
		return window{}, false
	}
	var w window
	w.rn, _ = strconv.ParseUint(rn, 10, 64)
	w.cn, _ = strconv.ParseUint(meta["cn"], 10, 64)
	for _, e := range strings.Fields(meta["wl"]) {
		parts := strings.Split(e, "/")
		if len(parts) < 3 {
			continue
		}
		in := InFlight{StreamID: parts[1], ReleasedAt: msString(parts[2])}
		in.Seq, _ = strconv.ParseUint(parts[0], 10, 64)
		w.list = append(w.list, in)
	}
	return w, true
}

// inFlight returns the tracked messages not complete yet, the oldest with
// the ack deadline of the room's in-flight message.
func (w window) inFlight(now time.Time) []InFlight {
	base := w.rn - uint64(len(w.list))
	var out []InFlight
	for i, in := range w.list {
		if base+uint64(i)+1 <= w.cn {
			continue
		}
		in.Age = now.Sub(in.ReleasedAt)
		out = append(out, in)
	}
	return out
}
