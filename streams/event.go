package streams

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/payload"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Type is the kind of a stream event.
type Type string

// Event types, as written by the scripts (one letter in Redis).
const (
	Message   Type = "message"
	OutOfBand Type = "oob"
	Join      Type = "join"
	Leave     Type = "leave"
	Evict     Type = "evict"
	// Malformed is a pending entry that the release step set aside instead
	// of releasing it: nobody receives or acks it, and the room goes on with
	// the next message. Its Reason is MalformedHeader or MalformedPayload.
	Malformed Type = "malformed"
	// Policy is a change of the room's policy (queue.SetPolicy); its
	// Policy field holds the new policy's text form.
	Policy Type = "policy"
	// Dropped is a pending message that the room's overflow policy dropped
	// to keep its backlog within MaxPending: MessageID, Producer, Priority,
	// Enqueued, Size (payload bytes) and Reason (the overflow policy,
	// "drop-oldest" or "drop-lowest-priority") describe it.
	Dropped Type = "drop"
	// Skipped is a member that had not acked message MessageID by its ack
	// deadline, skipped by the room's straggler policy: the message
	// completed without it and it stayed a member. Reason "ack-deadline".
	Skipped Type = "skip"
)

// Event types of the operators' transitions (queue.Admin). Each carries
// the Actor who made it and its Reason.
const (
	// Pause: the room releases nothing new until a Resume.
	Pause Type = "pause"
	// Resume ends a Pause.
	Resume Type = "resume"
	// Purge dropped Count pending entries: of priority Priority (-1: every
	// level), with a message ID of at most MessageID when it is not 0.
	Purge Type = "purge"
	// ForceRelease completed the in-flight message MessageID without the
	// acks of Missing, who stay members.
	ForceRelease Type = "release"
	// Kick removed ClientID (an observer when Observer is set), as an
	// eviction would.
	Kick Type = "kick"
	// RoomDeleted: every key of the room was deleted right after this
	// event. The readers behind subscriptions and workers receive it from
	// its notification; the stream itself is gone with the room, so
	// History, ReplayInto and Tail (which read the stream) never show it.
	RoomDeleted Type = "delete"
)

// Reasons of a Malformed event.
const (
	// MalformedHeader: the entry is not "<seq>:<enqueue ms>:<producer
	// length>:<producer><payload>" with a message ID and enqueue time that
	// every reader accepts.
	MalformedHeader = "header"
	// MalformedPayload: the header is readable, the payload is empty,
	// lacks a known kind byte, or has a header block that is not
	// well-formed.
	MalformedPayload = "payload"
)

// MalformedKeep is how many bytes of a malformed entry its event keeps.
const MalformedKeep = 64

var typeCodes = map[string]Type{
	"m": Message, "o": OutOfBand, "j": Join, "l": Leave, "e": Evict, "x": Malformed,
	"P": Pause, "R": Resume, "U": Purge, "F": ForceRelease, "K": Kick, "D": RoomDeleted,
	"p": Policy, "d": Dropped, "s": Skipped,
}

// Event is one decoded entry of a room's delivery stream.
type Event struct {
	ID        string // stream entry ID
	Room      string
	Type      Type
	At        time.Time // server time of the event (release time for messages)
	MessageID uint64    // Message, OutOfBand, Dropped, Skipped; Malformed when its header was readable (else 0)
	Producer  string    // Message, OutOfBand, Dropped
	Priority  int       // Message, Dropped; Malformed: the priority list it was found in
	Enqueued  time.Time // Message, OutOfBand, Dropped
	// Payload is the stored payload (kind byte + body) of a Message or
	// OutOfBand event; for a Malformed one, the entry's first MalformedKeep
	// bytes, as found.
	Payload []byte
	// Headers of a Message or OutOfBand event (nil when it was sent
	// without any); they are stored before the payload and not part of
	// Payload.
	Headers  map[string]string
	Size     int    // Malformed: the entry's whole length in bytes; Dropped: the payload's
	ClientID string // Join, Leave, Evict, Skipped
	Observer bool   // Join, Leave, Evict: the client was an observer
	// Reason: Leave ("leave"), Evict ("timeout", "ack-timeout"),
	// Malformed (MalformedHeader, MalformedPayload), Dropped (the overflow
	// policy), Skipped ("ack-deadline"); the operator's reason
	// of an admin event (Pause, Resume, Purge, ForceRelease, Kick,
	// RoomDeleted); Dropped (the overflow policy), Skipped ("ack-deadline").
	Reason string
	// Actor: who made an admin event (queue.Queue.Admin's actor).
	Actor string
	// Count: Purge: how many pending entries it dropped.
	Count int
	// Missing: ForceRelease: the members that had not acked, sorted.
	Missing []string
	// Policy: the room's new policy in text form, "name=value" pairs of
	// its non-zero fields, comma-separated ("" for the default);
	// queue.ParsePolicy reads it.
	Policy string
}

// DecodeError is a stream entry that is not a valid event. It matches
// sferr.ErrDecode (queue.ErrDecode) with errors.Is.
type DecodeError struct {
	Room string
	ID   string
	Why  string
	// MessageID is set when the entry has the message type and a readable
	// message ID: the room may be waiting for acks of that message, so a
	// member's reader acks it rather than skipping it silently.
	MessageID uint64
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("syncfanout: room %q: malformed stream entry %s: %s", e.Room, e.ID, e.Why)
}

func (e *DecodeError) Is(target error) bool { return target == sferr.ErrDecode }

// Decode turns a stream entry into an Event. It is the one decision every
// reader applies (History, Tail, ReplayInto, the subscriptions' and
// workers' reader, MessageFromEvent, the CLI): an entry it returns without
// error is fully usable, payload included (a known kind byte). Entries
// written by anything but the scripts (raw XADDs, garbage) are reported as
// *DecodeError, never a panic.
func Decode(room string, m redis.XMessage) (Event, error) {
	var msgID uint64
	bad := func(format string, args ...any) (Event, error) {
		return Event{}, &DecodeError{Room: room, ID: m.ID, Why: fmt.Sprintf(format, args...), MessageID: msgID}
	}
	at, err := IDTime(m.ID)
	if err != nil {
		return bad("%v", err)
	}
	field := func(name string) (string, bool) {
		v, ok := m.Values[name]
		if !ok {
			return "", false
		}
		s, ok := v.(string)
		return s, ok
	}
	code, _ := field("t")
	typ, ok := typeCodes[code]
	if !ok {
		return bad("unknown event type %q", code)
	}
	ev := Event{ID: m.ID, Room: room, Type: typ, At: at}
	switch typ {
	case Message, OutOfBand:
		id, ok := field("id")
		if ev.MessageID, err = strconv.ParseUint(id, 10, 64); !ok || err != nil || ev.MessageID == 0 {
			return bad("bad message id %q", id)
		}
		if typ == Message {
			msgID = ev.MessageID
		}
		ev.Producer, _ = field("p")
		et, _ := field("et")
		n, err := strconv.ParseInt(et, 10, 64)
		if err != nil || n <= 0 {
			return bad("bad enqueue time %q", et)
		}
		ev.Enqueued = time.UnixMilli(n)
		d, ok := field("d")
		if !ok || d == "" {
			return bad("missing payload")
		}
		headers, body, why := payload.Parse([]byte(d))
		if why != "" {
			return bad("%s", why)
		}
		ev.Headers, ev.Payload = headers, body
		if typ == Message {
			pr, _ := field("pr")
			if ev.Priority, err = strconv.Atoi(pr); err != nil || ev.Priority < 0 {
				return bad("bad priority %q", pr)
			}
		}
	case Malformed:
		why, _ := field("r")
		if why != MalformedHeader && why != MalformedPayload {
			return bad("bad malformed-entry reason %q", why)
		}
		ev.Reason = why
		pr, _ := field("pr")
		if ev.Priority, err = strconv.Atoi(pr); err != nil || ev.Priority < 0 {
			return bad("bad priority %q", pr)
		}
		n, _ := field("n")
		if ev.Size, err = strconv.Atoi(n); err != nil || ev.Size < 0 {
			return bad("bad size %q", n)
		}
		d, _ := field("d")
		ev.Payload = []byte(d)
		if id, ok := field("id"); ok {
			ev.MessageID, _ = strconv.ParseUint(id, 10, 64)
		}
	case Policy:
		ev.Policy, _ = field("v")
	case Dropped:
		ev.Reason, _ = field("r")
		pr, _ := field("pr")
		if ev.Priority, err = strconv.Atoi(pr); err != nil || ev.Priority < 0 {
			return bad("bad priority %q", pr)
		}
		if id, ok := field("id"); ok {
			ev.MessageID, _ = strconv.ParseUint(id, 10, 64)
		}
		ev.Producer, _ = field("p")
		if et, ok := field("et"); ok {
			if n, err := strconv.ParseInt(et, 10, 64); err == nil && n > 0 {
				ev.Enqueued = time.UnixMilli(n)
			}
		}
		n, _ := field("n")
		if ev.Size, err = strconv.Atoi(n); err != nil || ev.Size < 0 {
			return bad("bad size %q", n)
		}
	case Skipped:
		c, ok := field("c")
		if !ok || c == "" {
			return bad("missing client")
		}
		ev.ClientID = c
		ev.Reason, _ = field("r")
		id, _ := field("id")
		ev.MessageID, _ = strconv.ParseUint(id, 10, 64)
	case Pause, Resume, RoomDeleted:
		ev.Actor, _ = field("a")
		ev.Reason, _ = field("r")
	case Purge:
		ev.Actor, _ = field("a")
		ev.Reason, _ = field("r")
		n, _ := field("n")
		if ev.Count, err = strconv.Atoi(n); err != nil || ev.Count < 0 {
			return bad("bad purge count %q", n)
		}
		ev.Priority = -1
		if pr, ok := field("pr"); ok {
			if ev.Priority, err = strconv.Atoi(pr); err != nil || ev.Priority < 0 {
				return bad("bad priority %q", pr)
			}
		}
		if id, ok := field("id"); ok {
			if ev.MessageID, err = strconv.ParseUint(id, 10, 64); err != nil {
				return bad("bad message id %q", id)
			}
		}
	case ForceRelease:
		ev.Actor, _ = field("a")
		ev.Reason, _ = field("r")
		id, _ := field("id")
		if ev.MessageID, err = strconv.ParseUint(id, 10, 64); err != nil || ev.MessageID == 0 {
			return bad("bad message id %q", id)
		}
		if ms, _ := field("ms"); ms != "" {
			ev.Missing = strings.Split(ms, "\n")
		}
	default:
		c, ok := field("c")
		if !ok || c == "" {
			return bad("missing client")
		}
		ev.ClientID = c
		role, _ := field("o")
		ev.Observer = role == "o"
		ev.Reason, _ = field("r")
		ev.Actor, _ = field("a") // Kick
	}
	return ev, nil
}

// IDTime returns the server time encoded in a stream entry ID.
func IDTime(id string) (time.Time, error) {
	msPart, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("bad stream ID %q", id)
	}
	return time.UnixMilli(n), nil
}

// CompareIDs orders two stream IDs ("ms-seq"); malformed parts compare as 0.
func CompareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

func splitID(id string) (uint64, uint64) {
	m, s, _ := strings.Cut(id, "-")
	mi, _ := strconv.ParseUint(m, 10, 64)
	si, _ := strconv.ParseUint(s, 10, 64)
	return mi, si
}
