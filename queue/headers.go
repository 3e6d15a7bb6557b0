package queue

import (
	"fmt"
	"unicode/utf8"

	"github.com/syncfanout/syncfanout/internal/payload"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Limits of message headers. They are checked at Send, before anything
// is written; a message without headers is stored exactly as if headers
// did not exist.
const (
	// MaxHeaders is the most headers one message carries.
	MaxHeaders = 64
	// MaxHeaderKeyBytes is the longest header key.
	MaxHeaderKeyBytes = 256
	// MaxHeaderBytes caps the encoded header block of one message: each
	// header costs its key and value plus their lengths in decimal and two
	// separators, and the block a few bytes more. It is counted apart from
	// Options.MaxPayloadBytes.
	MaxHeaderBytes = 8 << 10
)

// Header adds the header key: value to the message, kept beside the
// payload in the queue and the room's stream and delivered with it
// (Message.Headers). A key is 1..MaxHeaderKeyBytes bytes of printable
// ASCII other than '=' (so "key=value" reads back unambiguously, as the
// CLI's --header does); a value is any valid UTF-8, possibly empty. A
// later Header with the same key replaces the value. Bad headers and
// headers over the limits (MaxHeaders, MaxHeaderBytes) fail the call with
// ErrInvalidHeader and nothing is sent.
func Header(key, value string) SendOption {
	return func(o *sendOptions) error {
		if err := checkHeader(key, value); err != nil {
			return err
		}
		if o.headers == nil {
			o.headers = make(map[string]string, 1)
		}
		o.headers[key] = value
		return nil
	}
}

// Headers adds every entry of h as Header does. The map is copied: the
// caller may change it afterwards.
func Headers(h map[string]string) SendOption {
	return func(o *sendOptions) error {
		for k, v := range h {
			if err := checkHeader(k, v); err != nil {
				return err
			}
		}
		if len(h) > 0 && o.headers == nil {
			o.headers = make(map[string]string, len(h))
		}
		for k, v := range h {
			o.headers[k] = v
		}
		return nil
	}
}

func checkHeader(key, value string) error {
	if key == "" || len(key) > MaxHeaderKeyBytes {
		return fmt.Errorf("%w: key %q is %d bytes, want 1..%d", sferr.ErrInvalidHeader, key, len(key), MaxHeaderKeyBytes)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c > '~' || c == '=' {
			return fmt.Errorf("%w: key %q: byte %#x at %d, want printable ASCII other than '='", sferr.ErrInvalidHeader, key, c, i)
		}
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("%w: the value of %q is not valid UTF-8", sferr.ErrInvalidHeader, key)
	}
	return nil
}

// checkHeaders applies the limits on the whole set, once every option ran.
func checkHeaders(h map[string]string) error {
	if len(h) > MaxHeaders {
		return fmt.Errorf("%w: %d headers, limit %d", sferr.ErrInvalidHeader, len(h), MaxHeaders)
	}
	if n := payload.HeadersLen(h); n > MaxHeaderBytes {
		return fmt.Errorf("%w: header block of %d bytes, limit %d (MaxHeaderBytes)", sferr.ErrInvalidHeader, n, MaxHeaderBytes)
	}
	return nil
}
