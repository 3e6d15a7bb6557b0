package queue

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// An ack token binds an ack to one delivery: room, message, client and the
// room's epoch (so tokens from before a reset of Redis are refused). With
// Options.AckSecret it also carries an HMAC, so an altered or made-up
// token is refused before it reaches Redis.
//
// Wire form: base64url(version | flags | uvarint-length-prefixed epoch,
// room, client | uvarint seq [| 16-byte HMAC-SHA256 of everything before]).
type token struct {
	epoch  string
	room   string
	client string
	seq    uint64
}

const (
	tokenVersion = 1
	flagSigned   = 1
	macLen       = 16
)

func (t token) encode(secret []byte) string {
	b := make([]byte, 0, 32+len(t.epoch)+len(t.room)+len(t.client)+macLen)
	var flags byte
	if secret != nil {
		flags |= flagSigned
	}
	b = append(b, tokenVersion, flags)
	for _, s := range []string{t.epoch, t.room, t.client} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, t.seq)
	if secret != nil {
		b = append(b, sign(secret, b)...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sign(secret, b []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(b)
	return h.Sum(nil)[:macLen]
}

// verify reports whether mac signs body under the current secret or one of
// the previous ones (accepted during a key rotation). Every secret is tried,
// so the time taken does not tell which one matched.
func verify(body, mac, secret []byte, previous [][]byte) bool {
	ok := hmac.Equal(sign(secret, body), mac)
	for _, p := range previous {
		if hmac.Equal(sign(p, body), mac) {
			ok = true
		}
	}
	return ok
}

// parseToken decodes and, when secret is set, verifies a token; previous
// are older secrets still accepted (Options.PreviousAckSecrets).
func parseToken(s string, secret []byte, previous ...[]byte) (token, error) {
	var t token
	bad := func(why string) (token, error) { return token{}, fmt.Errorf("%w: %s", sferr.ErrInvalidToken, why) }
	if s == "" || len(s) > 4096 {
		return bad("empty or oversized")
	}
	// Strict decoding and no line breaks: one token has one spelling, so
	// no change to a signed token's text keeps it valid.
	if strings.ContainsAny(s, "\r\n") {
		return bad("not base64url")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return bad("not base64url")
	}
	if len(b) < 2 || b[0] != tokenVersion {
		return bad("unknown version")
	}
	signed := b[1]&flagSigned != 0
	if b[1]&^flagSigned != 0 {
		return bad("unknown flags")
	}
	body := b
	if signed {
		if len(b) < 2+macLen {
			return bad("truncated")
		}
		body = b[:len(b)-macLen]
	}
	switch {
	case secret != nil && !signed:
		return bad("unsigned token while AckSecret is set")
	case secret != nil && !verify(body, b[len(body):], secret, previous):
		return bad("signature mismatch")
	}
	rest := body[2:]
	var fields [3]string
	for i := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return bad("truncated")
		}
		fields[i] = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	seq, k := binary.Uvarint(rest)
	if k <= 0 || k != len(rest) || seq == 0 {
		return bad("bad message ID")
	}
	t = token{epoch: fields[0], room: fields[1], client: fields[2], seq: seq}
	if t.epoch == "" || keys.ValidateRoom(t.room) != nil || keys.ValidateClientID(t.client) != nil {
		return bad("bad fields")
	}
	return t, nil
}
