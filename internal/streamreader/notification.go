package streamreader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// decodeNotification reads what room.lua publishes: cmsgpack of the
// previous entry's ID, the entry's ID and its flat field list. Every entry
// of a followed room goes through here, usually as a copy of what the
// acking process already took from its reply, so it reads the few MessagePack
// types lua-cmsgpack writes directly from the payload: a general decoder
// (a decoder, a reader and a boxed value per field) was 7.5% of a W1 S=1
// subscriber process's CPU (docs/bench/release-latency.md).
func decodeNotification(payload string) (prev string, m redis.XMessage, err error) {
	d := mpReader{b: payload}
	if prev, err = d.str(); err != nil {
		return "", m, err
	}
	if m.ID, err = d.str(); err != nil {
		return "", m, err
	}
	n, err := d.arrayLen()
	if err != nil {
		return "", m, err
	}
	if n%2 != 0 {
		return "", m, fmt.Errorf("odd field list of %d", n)
	}
	if n > len(d.b)-d.i { // every element takes a byte at least
		return "", m, errTruncated
	}
	m.Values = make(map[string]any, n/2)
	for i := 0; i < n; i += 2 {
		k, err := d.scalar()
		if err != nil {
			return "", m, err
		}
		v, err := d.scalar()
		if err != nil {
			return "", m, err
		}
		m.Values[k] = v
	}
	return prev, m, nil
}

var errTruncated = errors.New("truncated notification")

// mpReader reads MessagePack from a string.
type mpReader struct {
	b string
	i int
}

func (d *mpReader) byte() (byte, error) {
	if d.i >= len(d.b) {
		return 0, errTruncated
	}
	c := d.b[d.i]
	d.i++
	return c, nil
}

// uint reads a big-endian unsigned integer of n bytes.
func (d *mpReader) uint(n int) (uint64, error) {
	if len(d.b)-d.i < n {
		return 0, errTruncated
	}
	var buf [8]byte
	copy(buf[8-n:], d.b[d.i:d.i+n])
	d.i += n
	return binary.BigEndian.Uint64(buf[:]), nil
}

func (d *mpReader) bytes(n uint64) (string, error) {
	if uint64(len(d.b)-d.i) < n {
		return "", errTruncated
	}
	s := d.b[d.i : d.i+int(n)]
	d.i += int(n)
	return s, nil
}

// strLen returns the length of a str or bin whose code is c.
func (d *mpReader) strLen(c byte) (uint64, bool, error) {
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return uint64(c & 0x1f), true, nil
	case c == 0xd9 || c == 0xc4:
		n, err := d.uint(1)
		return n, true, err
	case c == 0xda || c == 0xc5:
		n, err := d.uint(2)
		return n, true, err
	case c == 0xdb || c == 0xc6:
		n, err := d.uint(4)
		return n, true, err
	}
	return 0, false, nil
}

// str reads a string (str or bin; nil reads as "", as msgpack's
// DecodeString did).
func (d *mpReader) str() (string, error) {
	c, err := d.byte()
	if err != nil {
		return "", err
	}
	if c == 0xc0 {
		return "", nil
	}
	n, ok, err := d.strLen(c)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("code 0x%x where a string was expected in a notification", c)
	}
	return d.bytes(n)
}

func (d *mpReader) arrayLen() (int, error) {
	c, err := d.byte()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x90 && c <= 0x9f:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n, err = d.uint(2)
	case c == 0xdd:
		n, err = d.uint(4)
	default:
		return 0, fmt.Errorf("code 0x%x where the field list was expected in a notification", c)
	}
	return int(n), err
}

// scalar reads a string or a number as the text XADD stored for it (Lua
// numbers reach XADD as integers when integral, else with 17 digits).
func (d *mpReader) scalar() (string, error) {
	c, err := d.byte()
	if err != nil {
		return "", err
	}
	if n, ok, err := d.strLen(c); ok || err != nil {
		if err != nil {
			return "", err
		}
		return d.bytes(n)
	}
	switch {
	case c <= 0x7f:
		return strconv.FormatUint(uint64(c), 10), nil
	case c >= 0xe0:
		return strconv.FormatInt(int64(int8(c)), 10), nil
	}
	switch c {
	case 0xcc, 0xcd, 0xce, 0xcf:
		u, err := d.uint(1 << (c - 0xcc))
		return strconv.FormatUint(u, 10), err
	case 0xd0, 0xd1, 0xd2, 0xd3:
		size := 1 << (c - 0xd0)
		u, err := d.uint(size)
		shift := 64 - 8*size
		return strconv.FormatInt(int64(u<<shift)>>shift, 10), err
	case 0xca:
		u, err := d.uint(4)
		return formatFloat(float64(math.Float32frombits(uint32(u)))), err
	case 0xcb:
		u, err := d.uint(8)
		return formatFloat(math.Float64frombits(u)), err
	}
	return "", fmt.Errorf("unexpected code 0x%x in a notification", c)
}

func formatFloat(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
		return strconv.FormatInt(int64(x), 10)
	}
	return strconv.FormatFloat(x, 'g', 17, 64)
}
