package console

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"

	"github.com/syncfanout/syncfanout/internal/payload"
)

// Payload is a message payload made readable.
type Payload struct {
	// Encoding: "msgpack" (a Go value sent with Send; JSON holds it as
	// JSON), "bytes" (sent as []byte; Text holds it when it is UTF-8, Hex
	// and Base64 always) or "invalid" (Error says why).
	Encoding string `json:"encoding"`
	JSON     string `json:"json,omitempty"`
	Text     string `json:"text,omitempty"`
	Hex      string `json:"hex,omitempty"`
	Base64   string `json:"base64,omitempty"`
	Error    string `json:"error,omitempty"`
	// Size is the payload's length in bytes (the msgpack encoding for a
	// decoded value); Truncated says the fields above show only its first
	// Options.MaxPayloadBytes.
	Size      int  `json:"size"`
	Truncated bool `json:"truncated,omitempty"`
}

// decodable is what both a history message and a pending one offer.
type decodable interface {
	Raw() bool
	Data() []byte
	Decode(any) error
}

func (h *Handler) payload(m decodable) Payload {
	limit := h.opts.MaxPayloadBytes
	b := m.Data()
	p := Payload{Size: len(b)}
	if m.Raw() {
		p.Encoding = "bytes"
		shown := b
		if len(shown) > limit {
			shown, p.Truncated = shown[:limit], true
		}
		if t := trimRune(shown); utf8.Valid(t) {
			p.Text = string(t)
		}
		p.Hex = hex.EncodeToString(shown)
		p.Base64 = base64.StdEncoding.EncodeToString(shown)
		return p
	}
	var v any
	if err := m.Decode(&v); err != nil {
		return Payload{Encoding: "invalid", Error: err.Error(), Size: len(b)}
	}
	out, err := json.MarshalIndent(payload.JSONable(v, "base64:"), "", "  ")
	if err != nil {
		return Payload{Encoding: "invalid", Error: err.Error(), Size: len(b)}
	}
	p.Encoding = "msgpack"
	if len(out) > limit {
		out, p.Truncated = trimRune(out[:limit]), true
	}
	p.JSON = string(out)
	return p
}

// trimRune drops a rune cut in half at the end of b.
func trimRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}
