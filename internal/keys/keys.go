// Package keys builds every Redis key name syncfanout uses and validates
// the user-supplied names that end up inside them.
//
// Layout: "<prefix>:{<shard tag>}:<type>[:<name>]". The prefix cannot
// contain braces, so the first "{" always opens the shard's hash tag, and the
// type comes before the user's name, so two rooms can never produce the same
// key whatever characters they contain.
//
// A room maps to shard crc32(room) % NumShards; every key of a room and of
// its shard carries the shard's tag and so lands in one cluster slot. The
// tags are precomputed so that shard i hashes near the centre of the i-th
// equal slice of the 16384 slots: short tags like "s1", "s2" collide under
// CRC16 and leave nodes idle.
package keys

import (
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

const (
	// MaxNameLen bounds room, client and producer names in bytes.
	MaxNameLen = 256
	// MaxPrefixLen bounds the key prefix in bytes.
	MaxPrefixLen = 64
	// MaxShards is the largest NumShards accepted.
	MaxShards = 1024
	// Levels is the number of priority levels (0 is released first).
	Levels = 10
)

// Room key indices in KEYS (1-based, as Lua sees them). Every room script
// receives the same list, so the release step can be shared.
const (
	KMeta       = 1  // HASH: seq, pend, ep (epoch), f (in-flight seq), fs, rt, ad
	KMem        = 2  // ZSET: voting member -> heartbeat deadline (server ms)
	KSeen       = 3  // HASH: member or observer -> last heartbeat (server ms)
	KAck        = 4  // HASH: member -> ack time of the in-flight message (0 = joined after release); windowed room: member -> "<position>:<ack ms>"
	KObs        = 5  // ZSET: observer -> heartbeat deadline
	KStream     = 6  // STREAM: delivery events
	KRooms      = 7  // shard ZSET: room -> backlog, rooms with members, backlog or in-flight; idle rooms kept for their history score -(expiry ms), -1 when kept forever
	KDue        = 8  // shard ZSET: room -> earliest deadline (heartbeat, ack timeout; an idle room's expiry or stream trim)
	KStats      = 9  // shard HASH: backlog, members, observers, expired (idle rooms deleted)
	KQueue0     = 10 // LIST per priority level: KQueue0+p
	KInc        = 20 // HASH: member -> incarnation (stream ID of its join), after the Levels lists
	NumRoomKeys = KInc
)

// Layout names the keys of one prefix and shard count.
type Layout struct {
	prefix string
	tags   []string
}

// New validates prefix and numShards and precomputes the shard tags.
func New(prefix string, numShards int) (*Layout, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if numShards < 1 || numShards > MaxShards {
		return nil, fmt.Errorf("%w: NumShards=%d, want 1..%d", sferr.ErrInvalidOption, numShards, MaxShards)
	}
	return &Layout{prefix: prefix, tags: ShardTags(numShards)}, nil
}

// ShardTags returns, for each shard, the shortest tag "<shard>.<k>" (k
// counting from 0) whose slot lies within a quarter slice of the centre of
// the shard's slice of the slot space. Deterministic: every process computes
// the same tags.
func ShardTags(n int) []string {
	tags := make([]string, n)
	width := float64(NumSlots) / float64(n)
	for i := range n {
		centre := width * (float64(i) + 0.5)
		tol := width / 4
		if tol < 0.5 {
			tol = 0.5
		}
		for k := 0; ; k++ {
			tag := strconv.Itoa(i) + "." + strconv.Itoa(k)
			s := float64(crc16(tag) % NumSlots)
			if s >= centre-tol && s < centre+tol {
				tags[i] = tag
				break
			}
		}
	}
	return tags
}

// Prefix returns the key prefix.
func (l *Layout) Prefix() string { return l.prefix }

// NumShards returns the number of virtual shards.
func (l *Layout) NumShards() int { return len(l.tags) }

// ShardOf returns the shard of a room or client name.
func (l *Layout) ShardOf(name string) int {
	return int(crc32.ChecksumIEEE([]byte(name)) % uint32(len(l.tags)))
}

func (l *Layout) base(shard int) string {
	return l.prefix + ":{" + l.tags[shard] + "}:"
}

// RoomKeys returns the KEYS list of every room script, in the K* order.
// It runs on every script call, so the keys are cut from one string: two
// allocations instead of twenty.
func (l *Layout) RoomKeys(room string) []string {
	b := l.base(l.ShardOf(room))
	type part struct{ name, room string }
	var parts [NumRoomKeys]part
	parts[KMeta-1] = part{"meta:", room}
	parts[KMem-1] = part{"mem:", room}
	parts[KSeen-1] = part{"seen:", room}
	parts[KAck-1] = part{"ack:", room}
	parts[KObs-1] = part{"obs:", room}
	parts[KStream-1] = part{"s:", room}
	parts[KRooms-1] = part{"rooms", ""}
	parts[KDue-1] = part{"due", ""}
	parts[KStats-1] = part{"stats", ""}
	for p := range Levels {
		parts[KQueue0-1+p] = part{queueNames[p], room}
	}
	parts[KInc-1] = part{"inc:", room}
	n := 0
	for _, pt := range parts {
		n += len(b) + len(pt.name) + len(pt.room)
	}
	var sb strings.Builder
	sb.Grow(n)
	var ends [NumRoomKeys]int
	for i, pt := range parts {
		sb.WriteString(b)
		sb.WriteString(pt.name)
		sb.WriteString(pt.room)
		ends[i] = sb.Len()
	}
	all := sb.String()
	ks := make([]string, NumRoomKeys)
	start := 0
	for i, end := range ends {
		ks[i] = all[start:end]
		start = end
	}
	return ks
}

// queueNames are the name parts of the priority lists' keys ("q0:"..).
var queueNames = func() [Levels]string {
	var q [Levels]string
	for p := range q {
		q[p] = "q" + strconv.Itoa(p) + ":"
	}
	return q
}()

// Stream returns the key of a room's delivery stream.
func (l *Layout) Stream(room string) string {
	return l.base(l.ShardOf(room)) + "s:" + room
}

// ShardRooms, ShardDue and ShardStats return the per-shard index keys.
func (l *Layout) ShardRooms(shard int) string { return l.base(shard) + "rooms" }
func (l *Layout) ShardDue(shard int) string   { return l.base(shard) + "due" }
func (l *Layout) ShardStats(shard int) string { return l.base(shard) + "stats" }

// Client returns the SET of rooms a client joined, kept in the client's own
// shard so Ping can find them without scanning.
func (l *Layout) Client(clientID string) string {
	return l.base(l.ShardOf(clientID)) + "c:" + clientID
}

// globalTag is the hash tag of the deployment-wide keys. It must not depend
// on NumShards (shard tags do): a process configured with another shard
// count has to find the same config hash, or the mismatch goes unnoticed.
const globalTag = "global"

// Config returns the HASH holding settings every client must agree on
// (NumShards), and ClientSeq the counter behind CreateClientID.
func (l *Layout) Config() string    { return l.prefix + ":{" + globalTag + "}:config" }
func (l *Layout) ClientSeq() string { return l.prefix + ":{" + globalTag + "}:clientseq" }

// ValidatePrefix checks a key prefix.
func ValidatePrefix(p string) error {
	if p == "" || len(p) > MaxPrefixLen {
		return fmt.Errorf("%w: Prefix must be 1..%d bytes, got %d", sferr.ErrInvalidOption, MaxPrefixLen, len(p))
	}
	if why := badChars(p); why != "" {
		return fmt.Errorf("%w: Prefix %q %s", sferr.ErrInvalidOption, p, why)
	}
	return nil
}

// ValidateRoom checks a room name.
func ValidateRoom(room string) error { return validateName(sferr.ErrInvalidRoom, "room", room, false) }

// ValidateClientID checks a client ID.
func ValidateClientID(id string) error {
	return validateName(sferr.ErrInvalidClientID, "client ID", id, false)
}

// ValidateProducer checks a producer ID; the empty producer is allowed.
func ValidateProducer(id string) error {
	return validateName(sferr.ErrInvalidProducer, "producer", id, true)
}

func validateName(sentinel error, what, s string, emptyOK bool) error {
	if s == "" && !emptyOK {
		return fmt.Errorf("%w: empty %s", sentinel, what)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", sentinel, what, len(s), MaxNameLen)
	}
	if why := badChars(s); why != "" {
		return fmt.Errorf("%w: %s %q %s", sentinel, what, s, why)
	}
	return nil
}

func badChars(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case r == '{' || r == '}':
			return "contains a brace (braces would change the cluster hash tag)"
		case unicode.IsControl(r):
			return "contains a control character"
		}
	}
	return ""
}
