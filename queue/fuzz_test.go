package queue

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Fuzz targets for ack tokens: they cross untrusted hands (a gateway hands
// them to browsers), so parsing must never panic and a signed token must
// not survive any change. Seed corpora live in testdata/fuzz/<target>.

var (
	fuzzSecret   = []byte("fuzz-secret-0123456789abcdef")
	fuzzPrevious = []byte("fuzz-previous-0123456789abcdef")
)

func validTokenFields(epoch, room, client, inc string, seq uint64) bool {
	return epoch != "" && seq != 0 && validIncarnation(inc) && keys.ValidateRoom(room) == nil && keys.ValidateClientID(client) == nil
}

// FuzzParseToken: any string is parsed without panicking, every failure is
// ErrInvalidToken, and whatever is accepted re-encodes to a token that
// parses back to the same fields.
func FuzzParseToken(f *testing.F) {
	f.Add(token{epoch: "1700000000123456", room: "room", client: "1-abcdef", inc: "1700000000123-0", seq: 1}.encode(nil))
	f.Add(token{epoch: "1700000000123456", room: "room", client: "1-abcdef", inc: "1700000000123-7", seq: 42}.encode(fuzzSecret))
	f.Add(token{epoch: "e", room: "ü", client: "c", inc: "0-0", seq: 1 << 62}.encode(fuzzPrevious))
	f.Add(encodeV1(token{epoch: "1700000000123456", room: "room", client: "1-abcdef", seq: 1}, nil))
	f.Add("")
	f.Add("AQA")
	f.Add("AQEAAAA")
	f.Add("not base64!")
	f.Fuzz(func(t *testing.T, s string) {
		for _, secret := range [][]byte{nil, fuzzSecret} {
			tok, err := parseToken(s, secret, fuzzPrevious)
			if err != nil {
				if !errors.Is(err, sferr.ErrInvalidToken) {
					t.Fatalf("parseToken(%q): untyped error %v", s, err)
				}
				continue
			}
			if !validTokenFields(tok.epoch, tok.room, tok.client, tok.inc, tok.seq) {
				t.Fatalf("parseToken(%q) accepted invalid fields %+v", s, tok)
			}
			again, err := parseToken(tok.encode(secret), secret)
			if err != nil || again != tok {
				t.Fatalf("round trip of %+v: got %+v, %v", tok, again, err)
			}
		}
	})
}

// FuzzTokenRoundTrip: a token built from valid fields parses back to the
// same fields, signed (under the current or a previous secret) or not.
func FuzzTokenRoundTrip(f *testing.F) {
	f.Add("1700000000123456", "room", "1-abcdef", "1700000000123-0", uint64(1))
	f.Add("e", "a:b c/ü", "x", "0-0", uint64(1<<63))
	f.Add("", "room", "c", "1-1", uint64(1))
	f.Add("e", "{room}", "c", "1-", uint64(7))
	f.Fuzz(func(t *testing.T, epoch, room, client, inc string, seq uint64) {
		if !validTokenFields(epoch, room, client, inc, seq) {
			return
		}
		want := token{epoch: epoch, room: room, client: client, inc: inc, seq: seq}
		cases := []struct {
			name         string
			issue, check []byte
			previous     [][]byte
		}{
			{"unsigned", nil, nil, nil},
			{"signed", fuzzSecret, fuzzSecret, nil},
			{"previous secret", fuzzPrevious, fuzzSecret, [][]byte{fuzzPrevious}},
		}
		for _, c := range cases {
			got, err := parseToken(want.encode(c.issue), c.check, c.previous...)
			if err != nil || got != want {
				t.Fatalf("%s: round trip of %+v: got %+v, %v", c.name, want, got, err)
			}
		}
		// A token signed with a secret that is neither current nor previous.
		if _, err := parseToken(want.encode(fuzzPrevious), fuzzSecret); !errors.Is(err, sferr.ErrInvalidToken) {
			t.Fatalf("token under an unknown secret: got %v, want ErrInvalidToken", err)
		}
		// An unsigned token where a secret is required.
		if _, err := parseToken(want.encode(nil), fuzzSecret, fuzzPrevious); !errors.Is(err, sferr.ErrInvalidToken) {
			t.Fatalf("unsigned token: got %v, want ErrInvalidToken", err)
		}
	})
}

// FuzzTokenTamper: changing any single byte of a signed token, in its text
// or in its decoded bytes, makes it invalid.
func FuzzTokenTamper(f *testing.F) {
	f.Add("1700000000123456", "room", "1-abcdef", "1700000000123-0", uint64(1), uint(0), byte(1))
	f.Add("1700000000123456", "room", "1-abcdef", "1700000000123-0", uint64(300), uint(17), byte(0x80))
	f.Add("1700000000123456", "room", "1-abcdef", "1700000000123-12", uint64(300), uint(40), byte('3'))
	f.Add("e", "r", "c", "0-0", uint64(1), uint(1000), byte(0xff))
	f.Fuzz(func(t *testing.T, epoch, room, client, inc string, seq uint64, pos uint, b byte) {
		if !validTokenFields(epoch, room, client, inc, seq) {
			return
		}
		s := token{epoch: epoch, room: room, client: client, inc: inc, seq: seq}.encode(fuzzSecret)

		text := []byte(s)
		i := int(pos % uint(len(text)))
		if text[i] != b {
			text[i] = b
			if tok, err := parseToken(string(text), fuzzSecret, fuzzPrevious); err == nil {
				t.Fatalf("token %q with byte %d of its text set to %#x was accepted as %+v", s, i, b, tok)
			}
		}

		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		j := int(pos % uint(len(raw)))
		if raw[j] != b {
			raw[j] = b
			changed := base64.RawURLEncoding.EncodeToString(raw)
			if tok, err := parseToken(changed, fuzzSecret, fuzzPrevious); err == nil {
				t.Fatalf("token %q with decoded byte %d set to %#x was accepted as %+v", s, j, b, tok)
			}
		}
	})
}
