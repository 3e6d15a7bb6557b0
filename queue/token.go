package queue

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// An ack token binds an ack to one delivery: room, message, client, the
// room's epoch (so tokens from before a reset of Redis are refused) and
// the client's incarnation, the membership it was delivered under (so a
// token from before the client left or was evicted is refused after it
// joined again). With Options.AckSecret it also carries an HMAC, so an
// altered or made-up token is refused before it reaches Redis.
//
// Wire form: base64url(version | flags | uvarint-length-prefixed epoch,
// room, client, incarnation | uvarint seq [| 16-byte HMAC-SHA256 of
// everything before]). Version 1 had no incarnation; its tokens are
// refused as malformed.
type token struct {
	epoch  string
	room   string
	client string
	inc    string // barrier.Joined.Incarnation: the stream ID of the member's join
	seq    uint64
}

const (
	tokenVersion = 2
	flagSigned   = 1
	macLen       = 16
)

func (t token) encode(secret []byte) string {
	// Every delivery issues one, so the bytes and their base64 are built
	// on the stack when they fit: unsigned, the string is the only
	// allocation.
	var raw [192]byte
	var text [(len(raw)*8 + 5) / 6]byte // base64 without padding
	b := raw[:0]
	if n := 2 + 5*binary.MaxVarintLen64 + len(t.epoch) + len(t.room) + len(t.client) + len(t.inc); n > len(raw)-macLen {
		b = make([]byte, 0, n+macLen)
	}
	var flags byte
	if secret != nil {
		flags |= flagSigned
	}
	b = append(b, tokenVersion, flags)
	for _, s := range [...]string{t.epoch, t.room, t.client, t.inc} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, t.seq)
	if secret != nil {
		b = appendMAC(b, secret)
	}
	if n := base64.RawURLEncoding.EncodedLen(len(b)); n <= len(text) {
		base64.RawURLEncoding.Encode(text[:n], b)
		return string(text[:n])
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// appendMAC appends the MAC of b under secret to b. The hash keeps what
// it is given (an interface call), so it gets a copy: b itself stays on
// its caller's stack.
func appendMAC(b, secret []byte) []byte {
	body := append(make([]byte, 0, len(b)+sha256.Size), b...)
	var h hash.Hash
	p := macPool(secret)
	if p == nil {
		h = hmac.New(sha256.New, secret)
	} else {
		h = p.Get().(hash.Hash)
		h.Reset()
		defer p.Put(h)
	}
	h.Write(body)
	sum := h.Sum(body) // into body's spare capacity
	return append(b, sum[len(body):len(body)+macLen]...)
}

// sign returns the MAC of b under secret, in mac. A gateway signs and checks
// a token per client per message, so the keyed HMAC states are kept in a
// pool per secret: Reset restores the key's state without hashing it again.
func sign(mac *[sha256.Size]byte, secret, b []byte) []byte {
	p := macPool(secret)
	if p == nil {
		h := hmac.New(sha256.New, secret)
		h.Write(b)
		h.Sum(mac[:0])
		return mac[:macLen]
	}
	h := p.Get().(hash.Hash)
	h.Reset()
	h.Write(b)
	h.Sum(mac[:0])
	p.Put(h)
	return mac[:macLen]
}

// maxMacPools bounds the secrets given a pool: a process normally has a
// current secret and a few previous ones; past that (a secret per tenant,
// say) tokens are signed without a pool rather than scanning a long list.
const maxMacPools = 16

// macPools holds a pool of HMAC states per secret seen (the current secret
// and the previous ones: a handful), copied on write so lookups take no lock.
var (
	macPoolsMu sync.Mutex
	macPools   atomic.Pointer[[]secretPool]
)

type secretPool struct {
	secret []byte
	pool   *sync.Pool
}

func macPool(secret []byte) *sync.Pool {
	if list := macPools.Load(); list != nil {
		for _, sp := range *list {
			if bytes.Equal(sp.secret, secret) {
				return sp.pool
			}
		}
	}
	macPoolsMu.Lock()
	defer macPoolsMu.Unlock()
	var list []secretPool
	if cur := macPools.Load(); cur != nil {
		list = *cur
	}
	for _, sp := range list {
		if bytes.Equal(sp.secret, secret) {
			return sp.pool
		}
	}
	if len(list) >= maxMacPools {
		return nil
	}
	key := bytes.Clone(secret)
	sp := secretPool{secret: key, pool: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
	next := append(slices.Clip(list), sp)
	macPools.Store(&next)
	return sp.pool
}

// verify reports whether mac signs body under the current secret or one of
// the previous ones (accepted during a key rotation). Every secret is tried,
// so the time taken does not tell which one matched.
func verify(body, mac, secret []byte, previous [][]byte) bool {
	var sum [sha256.Size]byte
	ok := hmac.Equal(sign(&sum, secret, body), mac)
	for _, p := range previous {
		if hmac.Equal(sign(&sum, p, body), mac) {
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
	// The fields are cut from one string: one allocation, not four.
	text := string(rest)
	var fields [4]string
	off := 0
	for i := range fields {
		n, k := binary.Uvarint(rest[off:])
		if k <= 0 || n > uint64(len(rest)-off-k) {
			return bad("truncated")
		}
		fields[i] = text[off+k : off+k+int(n)]
		off += k + int(n)
	}
	seq, k := binary.Uvarint(rest[off:])
	if k <= 0 || k != len(rest)-off || seq == 0 {
		return bad("bad message ID")
	}
	t = token{epoch: fields[0], room: fields[1], client: fields[2], inc: fields[3], seq: seq}
	if t.epoch == "" || !validIncarnation(t.inc) || keys.ValidateRoom(t.room) != nil || keys.ValidateClientID(t.client) != nil {
		return bad("bad fields")
	}
	return t, nil
}

// validIncarnation reports whether s has the form of a stream ID,
// "<ms>-<seq>", as every incarnation does.
func validIncarnation(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	return ok && allDigits(ms) && allDigits(seq)
}

func allDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// verifyAck is the check of a caller-supplied ack token shared by
// Queue.Ack and Worker.Ack: the Queue is open and ctx live, the client ID
// valid, the token well-formed, signed by a current or previous secret and
// issued to clientID. A refused token counts in Stats.AckRejected.
func (q *Queue) verifyAck(ctx context.Context, clientID, ackToken string) (token, error) {
	if err := q.check(ctx); err != nil {
		return token{}, err
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return token{}, err
	}
	t, err := parseToken(ackToken, q.opts.AckSecret, q.opts.PreviousAckSecrets...)
	if err == nil && t.client != clientID {
		err = fmt.Errorf("%w: token issued to another client", sferr.ErrInvalidToken)
	}
	if err != nil {
		q.stats.ackRejected(err)
		return token{}, err
	}
	return t, nil
}
