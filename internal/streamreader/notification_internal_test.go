package streamreader

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// messageNotification is what room.lua publishes for a released message
// (cmsgpack of prev, id and {'t','m','id',seq,'p',producer,'pr',p,'et',enq,'d',payload}).
func messageNotification(tb testing.TB) string {
	var sb strings.Builder
	enc := msgpack.NewEncoder(&sb)
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(enc.EncodeString("1796600000000-0"))
	must(enc.EncodeString("1796600000001-0"))
	must(enc.EncodeArrayLen(12))
	for _, v := range []any{"t", "m", "id", uint64(123456), "p", "producer-1f3a", "pr", uint64(5), "et", uint64(1796600000000), "d", strings.Repeat("x", 100)} {
		must(enc.Encode(v))
	}
	return sb.String()
}

func BenchmarkDecodeNotification(b *testing.B) {
	p := messageNotification(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeNotification(p); err != nil {
			b.Fatal(err)
		}
	}
}

// decodeNotificationMsgpack is the decoder used before notification.go
// (msgpack's general decoder): the reference the fuzz test compares with.
func decodeNotificationMsgpack(payload string) (prev string, m redis.XMessage, err error) {
	dec := msgpack.NewDecoder(bytes.NewReader([]byte(payload)))
	if prev, err = dec.DecodeString(); err != nil {
		return "", m, err
	}
	if m.ID, err = dec.DecodeString(); err != nil {
		return "", m, err
	}
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return "", m, err
	}
	if n < 0 || n%2 != 0 {
		return "", m, fmt.Errorf("odd field list of %d", n)
	}
	if n > len(payload) {
		// Not in the old decoder, which sized its map by the declared
		// length: a length of 2^31 made it allocate gigabytes.
		return "", m, errTruncated
	}
	m.Values = make(map[string]any, n/2)
	for i := 0; i < n; i += 2 {
		k, err := scalarMsgpack(dec)
		if err != nil {
			return "", m, err
		}
		v, err := scalarMsgpack(dec)
		if err != nil {
			return "", m, err
		}
		m.Values[k] = v
	}
	return prev, m, nil
}

func scalarMsgpack(dec *msgpack.Decoder) (string, error) {
	// The old decoder decoded any value and then refused what is not a
	// string or a number; refusing those codes first gives the same
	// outcome without decoding containers by their declared length (a
	// map of 2^31 entries in 5 bytes, which the fuzzer finds at once).
	c, err := dec.PeekCode()
	if err != nil {
		return "", err
	}
	if !(c <= 0x7f || c >= 0xe0 || (c >= 0xa0 && c <= 0xbf) || (c >= 0xc4 && c <= 0xc6) || (c >= 0xca && c <= 0xd3) || (c >= 0xd9 && c <= 0xdb)) {
		return "", fmt.Errorf("unexpected code 0x%x in a notification", c)
	}
	v, err := dec.DecodeInterfaceLoose()
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), nil
		}
		return strconv.FormatFloat(x, 'g', 17, 64), nil
	}
	return "", fmt.Errorf("unexpected %T in a notification", v)
}

func BenchmarkDecodeNotificationMsgpack(b *testing.B) {
	p := messageNotification(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeNotificationMsgpack(p); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeNotification: whatever the payload, the decoder reads what the
// general MessagePack decoder read, and refuses what it refused.
func FuzzDecodeNotification(f *testing.F) {
	f.Add(messageNotification(f))
	for _, v := range [][]any{
		{"0-0", "1-1", []any{"t", "o", "id", int64(-1), "d", ""}},
		{"1-0", "2-0", []any{"et", 1.5, "n", float32(2.25), "x", int8(-100), "y", int16(-30000), "z", int32(-2000000000), "w", int64(-1 << 62)}},
		{"1-0", "2-0", []any{"u8", uint8(200), "u16", uint16(60000), "u32", uint32(4000000000), "u64", uint64(1 << 63), "big", 1e300, "nan", math.Inf(1)}},
		{"1-0", "2-0", []any{"s", strings.Repeat("y", 40), "m", strings.Repeat("z", 300), "l", strings.Repeat("w", 70000), "b", []byte{0, 1, 2}}},
		{nil, "2-0", []any{"t", "m"}},
		{"1-0", "2-0", []any{"odd"}},
		{"1-0", "2-0", []any{"t", nil}},
		{"1-0", "2-0", []any{"t", true}},
		{"1-0", "2-0", map[string]any{"t": "m"}},
		{"1-0", "2-0", nil},
	} {
		var sb strings.Builder
		enc := msgpack.NewEncoder(&sb)
		for _, x := range v {
			if err := enc.Encode(x); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(sb.String())
	}
	f.Fuzz(func(t *testing.T, payload string) {
		prev, m, err := decodeNotification(payload)
		wprev, wm, werr := decodeNotificationMsgpack(payload)
		if (err == nil) != (werr == nil) {
			t.Fatalf("error %v, msgpack's decoder: %v", err, werr)
		}
		if err != nil {
			return
		}
		require.Equal(t, wprev, prev)
		require.Equal(t, wm, m)
	})
}

// TestDecodeNotificationOfCmsgpack: what a script publishes with cmsgpack
// (as room.lua's append does) decodes to the entry XADD stored, field by
// field, for the kinds of values the scripts append: strings (empty,
// binary, past each length class), integers of every width and sign.
func TestDecodeNotificationOfCmsgpack(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := t.Context()
		key := b.Prefix + ":{n}:s:room"
		const script = `
local lists = {
  {'t', 'm', 'id', 123456, 'p', 'producer-1', 'pr', 5, 'et', tonumber(ARGV[1]), 'd', ARGV[2]},
  {'t', 'o', 'id', -7, 'p', '', 'd', ''},
  {'t', 's', 'id', '', 'c', 'client', 'r', 'ack-deadline'},
  {'a', 127, 'b', 128, 'c', 255, 'd', 256, 'e', 65535, 'f', 65536, 'g', 4294967296, 'h', 2^53},
  {'a', -1, 'b', -32, 'c', -33, 'd', -128, 'e', -129, 'f', -32768, 'g', -32769, 'h', -2^40},
  {'s31', string.rep('x', 31), 's32', string.rep('y', 32), 's256', string.rep('z', 256), 'big', ARGV[3]},
}
local out, prev = {}, '0-0'
for _, f in ipairs(lists) do
  local id = redis.call('XADD', KEYS[1], '*', unpack(f))
  out[#out + 1] = cmsgpack.pack(prev, id, f)
  prev = id
end
return out`
		bin := make([]byte, 300)
		for i := range bin {
			bin[i] = byte(i * 7)
		}
		v, err := b.Client.Eval(ctx, script, []string{key}, "1796600000000", bin, strings.Repeat("w", 70000)).StringSlice()
		require.NoError(t, err)
		stored, err := b.Client.XRange(ctx, key, "-", "+").Result()
		require.NoError(t, err)
		require.Len(t, v, len(stored))
		prev := "0-0"
		for i, payload := range v {
			p, m, err := decodeNotification(payload)
			require.NoError(t, err, "entry %d", i)
			require.Equal(t, prev, p, "entry %d", i)
			require.Equal(t, stored[i], m, "entry %d", i)
			_, wm, err := decodeNotificationMsgpack(payload)
			require.NoError(t, err)
			require.Equal(t, wm, m, "entry %d", i)
			prev = m.ID
		}
	})
}
