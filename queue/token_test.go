package queue

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// encodeV1 writes t in the token format of version 1, which had no
// incarnation: tokens issued before the format changed.
func encodeV1(t token, secret []byte) string {
	var flags byte
	if secret != nil {
		flags = flagSigned
	}
	b := []byte{1, flags}
	for _, s := range []string{t.epoch, t.room, t.client} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, t.seq)
	if secret != nil {
		var mac [sha256.Size]byte
		b = append(b, sign(&mac, secret, b)...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestTokenIncarnation: a token carries its client's incarnation, which
// must look like a stream ID; tokens of version 1, without one, are
// refused as malformed whether signed or not.
func TestTokenIncarnation(t *testing.T) {
	secret := []byte("token-test-secret-0123456789")
	tok := token{epoch: "1764000000123456", room: "r", client: "c", inc: "1764000000123-4", seq: 9}
	for _, s := range [][]byte{nil, secret} {
		got, err := parseToken(tok.encode(s), s)
		require.NoError(t, err)
		require.Equal(t, tok, got)
		_, err = parseToken(encodeV1(tok, s), s)
		require.ErrorIs(t, err, sferr.ErrInvalidToken, "a version 1 token")
		_, err = parseToken(encodeV1(tok, s), nil)
		require.ErrorIs(t, err, sferr.ErrInvalidToken, "a version 1 token, no secret")
	}
	for _, inc := range []string{"", "-", "1", "1-", "-1", "a-1", "1-a", "1-2-3", " 1-2", "123456789012345678901-0"} {
		bad := tok
		bad.inc = inc
		_, err := parseToken(bad.encode(nil), nil)
		require.ErrorIs(t, err, sferr.ErrInvalidToken, "incarnation %q", inc)
	}
	for _, inc := range []string{"0-0", "1-2", "1764000000123-18446744073709551615"} {
		ok := tok
		ok.inc = inc
		got, err := parseToken(ok.encode(nil), nil)
		require.NoError(t, err, "incarnation %q", inc)
		require.Equal(t, ok, got)
	}
}
