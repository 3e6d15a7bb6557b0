package queue

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// Client-side costs of the ack path, per call: a gateway pays them once
// per client per message (make bench-short runs them once; go test -bench
// Token ./queue measures them).

var benchToken = token{epoch: "1764000000123456", room: "table-42", client: "1k-0123456789abcdef", inc: "1764000000123-0", seq: 123456}

func BenchmarkTokenEncode(b *testing.B) {
	for _, secret := range [][]byte{nil, []byte("bench-secret-0123456789")} {
		b.Run(signedName(secret), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = benchToken.encode(secret)
			}
		})
	}
}

func BenchmarkParseToken(b *testing.B) {
	for _, secret := range [][]byte{nil, []byte("bench-secret-0123456789")} {
		s := benchToken.encode(secret)
		b.Run(signedName(secret), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseToken(s, secret); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func signedName(secret []byte) string {
	if secret == nil {
		return "unsigned"
	}
	return "signed"
}

// TestSignWithoutPool: past maxMacPools secrets, signing falls back to a
// fresh HMAC and gives the same MACs.
func TestSignWithoutPool(t *testing.T) {
	body := []byte("token body")
	var want [][]byte
	for i := range maxMacPools + 3 {
		secret := []byte("secret-for-pool-test-" + string(rune('a'+i)))
		var m1, m2 [32]byte
		a := append([]byte(nil), sign(&m1, secret, body)...)
		b := append([]byte(nil), sign(&m2, secret, body)...)
		h := hmac.New(sha256.New, secret)
		h.Write(body)
		if direct := h.Sum(nil)[:macLen]; string(a) != string(direct) || string(b) != string(direct) {
			t.Fatalf("secret %d: MACs %x, %x, want %x", i, a, b, direct)
		}
		want = append(want, a)
		for j := range want[:i] {
			if string(want[j]) == string(a) {
				t.Fatalf("secrets %d and %d give the same MAC", j, i)
			}
		}
	}
	if n := len(*macPools.Load()); n > maxMacPools {
		t.Fatalf("%d pools, at most %d", n, maxMacPools)
	}
}
