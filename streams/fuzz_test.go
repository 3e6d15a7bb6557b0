package streams_test

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/streams"
)

// decodeFields are the entry fields the scripts write, in the order of the
// fuzz arguments.
var decodeFields = []string{"t", "id", "p", "pr", "et", "d", "c", "o", "r"}

// FuzzDecode: any entry, written by the scripts or by anything else with
// access to Redis, decodes without panicking; a failure is a *DecodeError
// (errors.Is ErrDecode) and a success is a complete event. present selects
// which fields exist (bit i for decodeFields[i]); bit 9 adds an "n" field
// (a malformed entry's size) holding the "id" argument; bit 15 makes the
// "d" field a non-string value.
func FuzzDecode(f *testing.F) {
	f.Add("1700000000000-0", uint16(0x3f), "m", "1", "prod", "5", "1700000000000", "mhello", "", "", "")
	f.Add("1700000000000-1", uint16(0x37), "o", "2", "", "", "1700000000000", "r\x00\xff", "", "", "")
	f.Add("1700000000000-2", uint16(0x1c1), "j", "", "", "", "", "", "1-abc", "m", "")
	f.Add("1700000000000-3", uint16(0x1c1), "e", "", "", "", "", "", "1-abc", "o", "ack-timeout")
	f.Add("1700000000000-4", uint16(0xffff), "m", "18446744073709551616", "p", "-1", "0", "", "", "", "")
	f.Add("not-an-id", uint16(0x01), "x", "", "", "", "", "", "", "", "")
	f.Add("", uint16(0), "", "", "", "", "", "", "", "", "")
	f.Add("1700000000000-5", uint16(0x32b), "x", "12", "", "5", "", "12:0:0:junk", "", "", "payload")
	f.Add("1700000000000-6", uint16(0x101), "P", "", "", "", "", "", "", "", "deploy")
	f.Add("1700000000000-7", uint16(0x20b), "U", "7", "", "3", "", "", "", "", "")
	f.Add("1700000000000-8", uint16(0x103), "F", "9", "", "", "", "", "", "", "stuck")
	f.Add("1700000000000-9", uint16(0x1c1), "K", "", "", "", "", "", "1-abc", "m", "bye")
	f.Add("1700000000000-10", uint16(0x001), "D", "", "", "", "", "", "", "", "")
	f.Add("1700000000000-11", uint16(0x3f), "m", "3", "p", "5", "1700000000000", "h7:2:tp1:xrhello", "", "", "")
	f.Add("1700000000000-12", uint16(0x37), "o", "4", "", "", "1700000000000", "h7:2:tp1:xh", "", "", "")
	f.Fuzz(func(t *testing.T, id string, present uint16, tt, mid, p, pr, et, d, c, o, r string) {
		vals := []string{tt, mid, p, pr, et, d, c, o, r}
		m := redis.XMessage{ID: id, Values: map[string]any{}}
		for i, name := range decodeFields {
			if present&(1<<i) != 0 {
				m.Values[name] = vals[i]
			}
		}
		if present&(1<<9) != 0 {
			m.Values["n"] = mid
		}
		if present&(1<<15) != 0 {
			m.Values["d"] = int64(len(d))
		}
		ev, err := streams.Decode("room", m)
		if err != nil {
			var de *streams.DecodeError
			if !errors.Is(err, sferr.ErrDecode) || !errors.As(err, &de) {
				t.Fatalf("Decode(%+v): error %v is not a *DecodeError matching ErrDecode", m, err)
			}
			if de.ID != id || de.Room != "room" {
				t.Fatalf("DecodeError names entry %q of room %q, want %q of room", de.ID, de.Room, id)
			}
			return
		}
		if ev.ID != id || ev.Room != "room" {
			t.Fatalf("event %+v: wrong ID or room", ev)
		}
		switch ev.Type {
		case streams.Message, streams.OutOfBand:
			if ev.MessageID == 0 || len(ev.Payload) == 0 || ev.Enqueued.IsZero() {
				t.Fatalf("incomplete message event %+v from %+v", ev, m)
			}
			if k := ev.Payload[0]; k != 'r' && k != 'm' {
				t.Fatalf("message event with a payload no reader can decode: %+v", ev)
			}
			if ev.Type == streams.Message && ev.Priority < 0 {
				t.Fatalf("negative priority in %+v", ev)
			}
		case streams.Malformed:
			if (ev.Reason != streams.MalformedHeader && ev.Reason != streams.MalformedPayload) || ev.Size < 0 || ev.Priority < 0 {
				t.Fatalf("inconsistent malformed event %+v from %+v", ev, m)
			}
		case streams.Pause, streams.Resume, streams.RoomDeleted:
		case streams.Purge:
			if ev.Count < 0 || ev.Priority < -1 {
				t.Fatalf("inconsistent purge event %+v from %+v", ev, m)
			}
		case streams.ForceRelease:
			if ev.MessageID == 0 {
				t.Fatalf("release event without a message: %+v", ev)
			}
		case streams.Policy:
		case streams.Dropped:
			if ev.Priority < 0 || ev.Size < 0 {
				t.Fatalf("inconsistent drop event %+v from %+v", ev, m)
			}
		case streams.Join, streams.Leave, streams.Evict, streams.Kick, streams.Skipped:
			if ev.ClientID == "" {
				t.Fatalf("membership event without a client: %+v", ev)
			}
		default:
			t.Fatalf("unknown event type %q accepted", ev.Type)
		}
	})
}
