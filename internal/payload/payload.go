// Package payload holds the one rule every reader applies to a stored
// payload: it starts with a kind byte saying how to read the rest. The
// queue package encodes payloads; the stream decoder, Peek and the room
// scripts (internal/lua/room.lua, release_entry) check them against this
// same rule, so no reader can accept what another refuses.
//
// A message with headers is stored as
//
//	'h' <block length> ':' <block> <kind byte> <body>
//
// where the block is a run of "<key length>:<key><value length>:<value>"
// pairs and the lengths are decimals without leading zeros. A message
// without headers is stored as before headers existed, byte for byte: its
// readers and the scripts pay one byte comparison for the feature.
package payload

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Kind bytes. room.lua checks for the same three bytes.
const (
	KindRaw     = 'r' // []byte sent as is
	KindMsgpack = 'm' // any other value, msgpack-encoded
	KindHeaders = 'h' // a header block, then a payload of kind r or m
)

// MaxBlock is the largest header block any reader accepts, and
// MaxLengthDigits the most digits of any length in it: the structural
// bounds the scripts check too (room.lua, header_block). Senders apply
// tighter limits (queue.MaxHeaderBytes).
const (
	MaxBlock        = 65535
	MaxLengthDigits = 5
)

// Problem says why no reader can decode a payload (empty, without a known
// kind byte, or with a header block that is not well-formed), or returns
// "" when it is well-formed.
func Problem(p []byte) string {
	_, _, why := Parse(p)
	return why
}

// Check is Problem as an error matching sferr.ErrDecode.
func Check(p []byte) error {
	if why := Problem(p); why != "" {
		return fmt.Errorf("%w: %s", sferr.ErrDecode, why)
	}
	return nil
}

// Parse splits a stored payload into its headers (nil when it has none)
// and the payload proper (kind byte + body), or says why it cannot.
func Parse(p []byte) (headers map[string]string, body []byte, why string) {
	if len(p) == 0 {
		return nil, nil, "empty payload"
	}
	switch p[0] {
	case KindRaw, KindMsgpack:
		return nil, p, ""
	case KindHeaders:
	default:
		return nil, nil, "payload without a known kind byte"
	}
	n, at, ok := length(p, 1)
	if !ok || n == 0 || n > MaxBlock {
		return nil, nil, "bad header block length"
	}
	stop := at + n
	if stop >= len(p) {
		return nil, nil, "header block beyond the payload"
	}
	if k := p[stop]; k != KindRaw && k != KindMsgpack {
		return nil, nil, "payload after the header block without a known kind byte"
	}
	headers = make(map[string]string)
	for at < stop {
		var key, val string
		if key, at, ok = field(p, at, stop); !ok || key == "" {
			return nil, nil, "bad header key in the header block"
		}
		if val, at, ok = field(p, at, stop); !ok {
			return nil, nil, "bad header value in the header block"
		}
		if _, dup := headers[key]; dup {
			return nil, nil, "duplicate header key in the header block"
		}
		headers[key] = val
	}
	return headers, p[stop:], ""
}

// length reads "<decimal>:" at p[at:]: at most MaxLengthDigits digits, no
// leading zero (but "0" itself). It returns the number and the position
// after the colon.
func length(p []byte, at int) (int, int, bool) {
	n, i := 0, at
	for ; i < len(p) && i-at <= MaxLengthDigits && p[i] >= '0' && p[i] <= '9'; i++ {
		n = n*10 + int(p[i]-'0')
	}
	digits := i - at
	if digits == 0 || digits > MaxLengthDigits || (digits > 1 && p[at] == '0') || i >= len(p) || p[i] != ':' {
		return 0, 0, false
	}
	return n, i + 1, true
}

// field reads one length-prefixed string that ends by stop.
func field(p []byte, at, stop int) (string, int, bool) {
	n, at, ok := length(p[:stop], at)
	if !ok || at+n > stop {
		return "", 0, false
	}
	return string(p[at : at+n]), at + n, true
}

// AppendHeaders appends the header block of headers (keys in sorted
// order, so equal headers always encode alike) to dst, kind byte
// included. The caller appends the payload proper after it; no headers
// append nothing.
func AppendHeaders(dst []byte, headers map[string]string) []byte {
	if len(headers) == 0 {
		return dst
	}
	keys := make([]string, 0, len(headers))
	size := 0
	for k, v := range headers {
		keys = append(keys, k)
		size += BlockLen(k, v)
	}
	sort.Strings(keys)
	dst = append(dst, KindHeaders)
	dst = strconv.AppendInt(dst, int64(size), 10)
	dst = append(dst, ':')
	for _, k := range keys {
		dst = appendField(dst, k)
		dst = appendField(dst, headers[k])
	}
	return dst
}

func appendField(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

// BlockLen is what one header adds to a header block.
func BlockLen(k, v string) int {
	return len(strconv.Itoa(len(k))) + 1 + len(k) + len(strconv.Itoa(len(v))) + 1 + len(v)
}

// HeadersLen is the length of the whole header block of headers: what
// AppendHeaders adds (0 for no headers).
func HeadersLen(headers map[string]string) int {
	if len(headers) == 0 {
		return 0
	}
	size := 0
	for k, v := range headers {
		size += BlockLen(k, v)
	}
	return 1 + len(strconv.Itoa(size)) + 1 + size
}
