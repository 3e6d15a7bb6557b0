package streams

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

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
)

var typeCodes = map[string]Type{"m": Message, "o": OutOfBand, "j": Join, "l": Leave, "e": Evict}

// Event is one decoded entry of a room's delivery stream.
type Event struct {
	ID        string // stream entry ID
	Room      string
	Type      Type
	At        time.Time // server time of the event (release time for messages)
	MessageID uint64    // Message and OutOfBand
	Producer  string    // Message and OutOfBand
	Priority  int       // Message
	Enqueued  time.Time // Message and OutOfBand
	Payload   []byte    // Message and OutOfBand: the stored payload (kind byte + body)
	ClientID  string    // Join, Leave, Evict
	Observer  bool      // Join, Leave, Evict: the client was an observer
	Reason    string    // Leave ("leave"), Evict ("timeout", "ack-timeout")
}

// DecodeError is a stream entry that is not a valid event. It matches
// sferr.ErrDecode (queue.ErrDecode) with errors.Is.
type DecodeError struct {
	Room string
	ID   string
	Why  string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("syncfanout: room %q: malformed stream entry %s: %s", e.Room, e.ID, e.Why)
}

func (e *DecodeError) Is(target error) bool { return target == sferr.ErrDecode }

// Decode turns a stream entry into an Event. Entries written by anything
// but the scripts (raw XADDs, garbage) are reported as *DecodeError, never
// a panic.
func Decode(room string, m redis.XMessage) (Event, error) {
	bad := func(format string, args ...any) (Event, error) {
		return Event{}, &DecodeError{Room: room, ID: m.ID, Why: fmt.Sprintf(format, args...)}
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
		ev.Payload = []byte(d)
		if typ == Message {
			pr, _ := field("pr")
			if ev.Priority, err = strconv.Atoi(pr); err != nil || ev.Priority < 0 {
				return bad("bad priority %q", pr)
			}
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
