package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Policy is a room's barrier policy: how many messages may be in flight,
// how many acks complete one, how large the backlog may grow and what
// happens to members that do not ack in time. The zero value is the
// lock-step barrier: one message at a time, every member acks, no limit,
// members late past the ack deadline are evicted.
//
// A room's policy is stored with the room in Redis, so every process
// applies the same one; SetPolicy replaces it as a whole. A room that never
// had one set follows Options.DefaultPolicy, which every Queue of a
// deployment should therefore share (like IdleRoomTTL). The stored policy
// lives as long as the room: a room deleted by IdleRoomTTL starts over with
// the default.
type Policy struct {
	// Window: messages of the room in flight at once (default 1).
	Window int
	// Quorum: acks that complete a message (default 0: every current
	// voting member). At most one of Quorum and QuorumFraction is set.
	Quorum int
	// QuorumFraction: the share of the current voting members whose acks
	// complete a message, 0 < f <= 1 (0: unset).
	QuorumFraction float64
	// MaxLag: a member more than this many messages behind is evicted
	// (reason "max-lag"). 0: max(Window, DefaultMaxLag), so that a member
	// that never acks while a quorum moves on cannot make the room track
	// messages without bound; a lock-step room's members lag by 1 at most.
	MaxLag int
	// MaxPending: the most messages the room's backlog may hold; a send
	// beyond it is handled by Overflow (0: unlimited).
	MaxPending int
	// Overflow says what a send beyond MaxPending does (default Reject).
	Overflow OverflowPolicy
	// MaxPayloadBytes caps a payload sent to this room, below
	// Options.MaxPayloadBytes (0: the Queue's limit only).
	MaxPayloadBytes int
	// Straggler says what happens to members that did not ack a message by
	// its ack deadline (Options.AckTimeout or the AckDeadline send option).
	Straggler StragglerPolicy
}

// OverflowPolicy is what a send does when the room's backlog would exceed
// Policy.MaxPending.
type OverflowPolicy int

const (
	// Reject refuses the send (a *RoomFullError); nothing is written, and a
	// batch is refused whole.
	Reject OverflowPolicy = iota
	// DropOldest enqueues the new messages and drops the pending messages
	// with the lowest IDs (the longest waiting, whatever their priority)
	// until the backlog fits.
	DropOldest
	// DropLowestPriority enqueues the new messages and drops, until the
	// backlog fits, the pending message that would be released last: the
	// newest of the lowest priority (highest number) present, which may be
	// one just sent.
	DropLowestPriority
)

var overflowNames = [...]string{"reject", "drop-oldest", "drop-lowest-priority"}

func (o OverflowPolicy) String() string {
	if o >= 0 && int(o) < len(overflowNames) {
		return overflowNames[o]
	}
	return "OverflowPolicy(" + strconv.Itoa(int(o)) + ")"
}

// StragglerPolicy is what happens at a message's ack deadline to the
// members that have not acked it.
type StragglerPolicy int

const (
	// Evict removes them from the room (reason "ack-timeout"), as
	// Options.AckTimeout always did.
	Evict StragglerPolicy = iota
	// Skip completes the message without them: they stay members, receive
	// the next messages, and a "skip" event in the room's stream names each.
	Skip
)

var stragglerNames = [...]string{"evict", "skip"}

func (s StragglerPolicy) String() string {
	if s >= 0 && int(s) < len(stragglerNames) {
		return stragglerNames[s]
	}
	return "StragglerPolicy(" + strconv.Itoa(int(s)) + ")"
}

// DefaultMaxLag is the lag limit of a room whose Policy.MaxLag is 0 and
// whose Window is not larger: a member more than this many messages
// behind is evicted with the reason "max-lag". Only quorums, skips and
// force releases let a member fall further behind than the window.
const DefaultMaxLag = 1000

// maxPolicyInt bounds the integer fields: far beyond any real room, and
// exact in a Lua number.
const maxPolicyInt = 1 << 30

// validate reports the first field out of range as an ErrInvalidPolicy;
// maxPayload is the Queue's Options.MaxPayloadBytes, which
// Policy.MaxPayloadBytes may not exceed.
func (p Policy) validate(maxPayload int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{sferr.ErrInvalidPolicy}, args...)...)
	}
	f := p.QuorumFraction
	switch {
	case p.Window < 0 || p.Window > maxPolicyInt:
		return bad("Window=%d, want 0 (default 1) or 1..%d", p.Window, maxPolicyInt)
	case p.Quorum < 0 || p.Quorum > maxPolicyInt:
		return bad("Quorum=%d, want 0 (every member) or 1..%d", p.Quorum, maxPolicyInt)
	case math.IsNaN(f) || f < 0 || f > 1:
		return bad("QuorumFraction=%v, want 0 (unset) or 0 < f <= 1", f)
	case p.Quorum > 0 && f > 0:
		return bad("Quorum=%d and QuorumFraction=%v both set, want at most one", p.Quorum, f)
	case p.MaxLag < 0 || p.MaxLag > maxPolicyInt:
		return bad("MaxLag=%d, want 0 (max(Window, DefaultMaxLag)) or 1..%d", p.MaxLag, maxPolicyInt)
	case p.MaxPending < 0 || p.MaxPending > maxPolicyInt:
		return bad("MaxPending=%d, want 0 (unlimited) or 1..%d", p.MaxPending, maxPolicyInt)
	case p.Overflow < 0 || int(p.Overflow) >= len(overflowNames):
		return bad("Overflow=%d, want Reject, DropOldest or DropLowestPriority", int(p.Overflow))
	case p.MaxPayloadBytes < 0 || p.MaxPayloadBytes > maxPayload:
		return bad("MaxPayloadBytes=%d, want 0 (the Queue's limit) or 1..%d (Options.MaxPayloadBytes)", p.MaxPayloadBytes, maxPayload)
	case p.Straggler < 0 || int(p.Straggler) >= len(stragglerNames):
		return bad("Straggler=%d, want Evict or Skip", int(p.Straggler))
	}
	return nil
}

// The policy's fields by their names in Redis (meta hash fields "p:<name>",
// the policy event and the default policy's script argument), in the
// order String writes them.
const (
	pWindow     = "window"
	pQuorum     = "quorum"
	pQFrac      = "qfrac"
	pMaxLag     = "maxlag"
	pMaxPending = "maxpending"
	pOverflow   = "overflow"
	pMaxPayload = "maxpayload"
	pStraggler  = "straggler"
)

var policyFieldNames = []string{pWindow, pQuorum, pQFrac, pMaxLag, pMaxPending, pOverflow, pMaxPayload, pStraggler}

// String is the policy's text form, the one the scripts read and the
// policy stream event carries: "name=value" for each field that is not its
// zero value, comma-separated, in a fixed order ("" for the zero Policy).
// ParsePolicy reads it back.
func (p Policy) String() string {
	var b strings.Builder
	add := func(name, v string) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(v)
	}
	num := func(name string, n int) {
		if n != 0 {
			add(name, strconv.Itoa(n))
		}
	}
	num(pWindow, p.Window)
	num(pQuorum, p.Quorum)
	if p.QuorumFraction != 0 {
		add(pQFrac, strconv.FormatFloat(p.QuorumFraction, 'g', -1, 64))
	}
	num(pMaxLag, p.MaxLag)
	num(pMaxPending, p.MaxPending)
	if p.Overflow != Reject {
		add(pOverflow, p.Overflow.String())
	}
	num(pMaxPayload, p.MaxPayloadBytes)
	if p.Straggler != Evict {
		add(pStraggler, p.Straggler.String())
	}
	return b.String()
}

// ParsePolicy reads the text form of String (a policy stream event's
// Event.Policy). It checks the syntax and the names, not the ranges.
func ParsePolicy(s string) (Policy, error) {
	var p Policy
	if s == "" {
		return p, nil
	}
	for _, kv := range strings.Split(s, ",") {
		name, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Policy{}, fmt.Errorf("%w: %q is not name=value", sferr.ErrInvalidPolicy, kv)
		}
		if err := p.set(name, v); err != nil {
			return Policy{}, err
		}
	}
	return p, nil
}

// set assigns one field from its text form.
func (p *Policy) set(name, v string) error {
	bad := func() error {
		return fmt.Errorf("%w: %s=%q", sferr.ErrInvalidPolicy, name, v)
	}
	atoi := func(dst *int) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return bad()
		}
		*dst = n
		return nil
	}
	switch name {
	case pWindow:
		return atoi(&p.Window)
	case pQuorum:
		return atoi(&p.Quorum)
	case pQFrac:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return bad()
		}
		p.QuorumFraction = f
	case pMaxLag:
		return atoi(&p.MaxLag)
	case pMaxPending:
		return atoi(&p.MaxPending)
	case pMaxPayload:
		return atoi(&p.MaxPayloadBytes)
	case pOverflow:
		i := indexOf(overflowNames[:], v)
		if i < 0 {
			return bad()
		}
		p.Overflow = OverflowPolicy(i)
	case pStraggler:
		i := indexOf(stragglerNames[:], v)
		if i < 0 {
			return bad()
		}
		p.Straggler = StragglerPolicy(i)
	default:
		return fmt.Errorf("%w: unknown field %q", sferr.ErrInvalidPolicy, name)
	}
	return nil
}

func indexOf(names []string, v string) int {
	for i, n := range names {
		if n == v {
			return i
		}
	}
	return -1
}

// ParseOverflowPolicy reads an OverflowPolicy's String form.
func ParseOverflowPolicy(s string) (OverflowPolicy, error) {
	var p Policy
	err := p.set(pOverflow, s)
	return p.Overflow, err
}

// ParseStragglerPolicy reads a StragglerPolicy's String form.
func ParseStragglerPolicy(s string) (StragglerPolicy, error) {
	var p Policy
	err := p.set(pStraggler, s)
	return p.Straggler, err
}

// RoomFullError is a send refused because the room's backlog would exceed
// its Policy.MaxPending with Overflow Reject; errors.Is(err, ErrRoomFull).
type RoomFullError struct {
	Room       string
	MaxPending int // the room's limit
	Pending    int // the backlog when the send was refused
	Sent       int // messages the refused send carried
}

func (e *RoomFullError) Error() string {
	return fmt.Sprintf("syncfanout: room %q is full: %d pending + %d sent > MaxPending %d", e.Room, e.Pending, e.Sent, e.MaxPending)
}

// Is reports whether target is ErrRoomFull.
func (e *RoomFullError) Is(target error) bool { return target == sferr.ErrRoomFull }

// SetPolicy replaces room's policy, for every process of the deployment,
// in one atomic step recorded as a "policy" event in the room's stream. An
// invalid policy is an ErrInvalidPolicy and changes nothing. The new
// policy applies from the room's next step on: a lower MaxPending drops
// nothing already pending, it refuses (or drops at) the next send.
func (q *Queue) SetPolicy(ctx context.Context, room string, p Policy) error {
	if err := q.check(ctx); err != nil {
		return err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return err
	}
	if err := p.validate(q.opts.MaxPayloadBytes); err != nil {
		return err
	}
	res, err := q.barrier.SetPolicy(ctx, room, p.String())
	if err != nil {
		return err
	}
	q.stats.Released.Add(uint64(res.Released))
	q.router.direct(room, res.Appended)
	return nil
}

// Policy returns the policy room follows: the one last set with SetPolicy,
// or this Queue's Options.DefaultPolicy when none was.
func (q *Queue) Policy(ctx context.Context, room string) (Policy, error) {
	if err := q.check(ctx); err != nil {
		return Policy{}, err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return Policy{}, err
	}
	stored, ok, err := q.barrier.Policy(ctx, room)
	if err != nil {
		return Policy{}, err
	}
	return q.roomPolicy(room, stored, ok)
}

// roomPolicy turns a room's stored policy fields into its Policy: the
// default unless a policy was stored.
func (q *Queue) roomPolicy(room string, stored map[string]string, ok bool) (Policy, error) {
	if !ok {
		return q.opts.DefaultPolicy, nil
	}
	var p Policy
	for _, name := range policyFieldNames {
		if v, ok := stored[name]; ok {
			if err := p.set(name, v); err != nil {
				// Something other than SetPolicy wrote the meta hash.
				return Policy{}, fmt.Errorf("%w: room %q: stored policy field %s=%q", sferr.ErrDecode, room, name, v)
			}
		}
	}
	return p, nil
}

// refusedSend turns the room policy's refusal of a send into the error
// Send returns; other errors pass through.
func refusedSend(room string, sent int, err error) error {
	var r *barrier.Refused
	if !errors.As(err, &r) {
		return err
	}
	if r.Status == sferr.StatusRoomFull {
		return &RoomFullError{Room: room, MaxPending: r.Limit, Pending: r.Pending, Sent: sent}
	}
	return fmt.Errorf("%w: message %d: %d bytes, room %q limit %d (Policy.MaxPayloadBytes)", sferr.ErrPayloadTooLarge, r.Index, r.Size, room, r.Limit)
}
