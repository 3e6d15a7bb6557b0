// Package payload holds the one rule every reader applies to a stored
// payload: it starts with a kind byte saying how to read the rest. The
// queue package encodes payloads; the stream decoder, Peek and the room
// scripts (internal/lua/room.lua, release_entry) check them against this
// same rule, so no reader can accept what another refuses.
package payload

import (
	"fmt"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Kind bytes. room.lua checks for the same two bytes.
const (
	KindRaw     = 'r' // []byte sent as is
	KindMsgpack = 'm' // any other value, msgpack-encoded
)

// Problem says why no reader can decode a payload (empty, or without a
// known kind byte), or returns "" when it is well-formed.
func Problem(p []byte) string {
	switch {
	case len(p) == 0:
		return "empty payload"
	case p[0] != KindRaw && p[0] != KindMsgpack:
		return "payload without a known kind byte"
	}
	return ""
}

// Check is Problem as an error matching sferr.ErrDecode.
func Check(p []byte) error {
	if why := Problem(p); why != "" {
		return fmt.Errorf("%w: %s", sferr.ErrDecode, why)
	}
	return nil
}
