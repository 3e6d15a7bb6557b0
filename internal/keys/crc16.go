package keys

// crc16Table is the CRC-16/XMODEM table (polynomial 0x1021) that Redis
// Cluster uses to map keys to slots.
var crc16Table = func() [256]uint16 {
	var t [256]uint16
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crc16Table[byte(c>>8)^s[i]]
	}
	return c
}

// NumSlots is the number of hash slots of a Redis Cluster.
const NumSlots = 16384

// Slot returns the cluster hash slot of key, honouring hash tags exactly
// as Redis does: the first "{...}" with a non-empty body selects the part
// that is hashed.
func Slot(key string) int {
	if open := indexByte(key, '{'); open >= 0 {
		if end := indexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16(key) % NumSlots)
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}
