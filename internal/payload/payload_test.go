package payload_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/payload"
)

// TestHeadersRoundTrip: AppendHeaders writes what Parse reads back, with
// the length HeadersLen announced, and no headers add nothing.
func TestHeadersRoundTrip(t *testing.T) {
	for _, h := range []map[string]string{
		nil,
		{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"a": "", "b": "with: colons 1:2:", "ключ": "значение"},
	} {
		p := payload.AppendHeaders(nil, h)
		require.Len(t, p, payload.HeadersLen(h))
		p = append(p, "rbody"...)
		got, body, why := payload.Parse(p)
		require.Empty(t, why)
		require.Equal(t, "rbody", string(body))
		if len(h) == 0 {
			require.Nil(t, got)
			require.Equal(t, "rbody", string(p), "no headers, no bytes")
			continue
		}
		require.Equal(t, h, got)
	}
}

// FuzzParse: any payload parses without panicking; what parses with
// headers re-encodes to the same bytes (one encoding per header set, keys
// sorted) unless its keys were out of order.
func FuzzParse(f *testing.F) {
	f.Add([]byte("rbody"))
	f.Add([]byte("h13:1:a2:111:b1:2rbody"))
	f.Add([]byte("h4:1:a0:m\x01"))
	f.Add([]byte("h12:1:a1:b1:a1:crx"))
	f.Add([]byte("h65535:"))
	f.Fuzz(func(t *testing.T, p []byte) {
		h, body, why := payload.Parse(p)
		if why != "" {
			if h != nil || body != nil {
				t.Fatalf("Parse(%q) failed (%s) but returned %v, %q", p, why, h, body)
			}
			return
		}
		if len(body) == 0 || (body[0] != payload.KindRaw && body[0] != payload.KindMsgpack) {
			t.Fatalf("Parse(%q): body %q without a kind byte", p, body)
		}
		if h == nil {
			return
		}
		again := append(payload.AppendHeaders(nil, h), body...)
		h2, body2, why := payload.Parse(again)
		if why != "" || string(body2) != string(body) || len(h2) != len(h) {
			t.Fatalf("re-encoding %v of %q: %q, %v, %q", h, p, why, h2, body2)
		}
		for k, v := range h {
			if h2[k] != v {
				t.Fatalf("re-encoding %q: header %q is %q, want %q", p, k, h2[k], v)
			}
		}
	})
}
