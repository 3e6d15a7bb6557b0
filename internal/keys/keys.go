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
	n := 0
	for i, name := range roomKeyNames {
		n += len(b) + len(name)
		if !shardKey(i + 1) {
			n += len(room)
		}
	}
	var sb strings.Builder
	sb.Grow(n)
	var ends [NumRoomKeys]int
	for i, name := range roomKeyNames {
		sb.WriteString(b)
		sb.WriteString(name)
		if !shardKey(i + 1) {
			sb.WriteString(room)
		}
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

// roomKeyNames are the type parts of a room's keys, in the K* order: the
// single table behind RoomKeys and the one-key accessors below, so the two
// cannot disagree.
var roomKeyNames = func() [NumRoomKeys]string {
	var n [NumRoomKeys]string
	n[KMeta-1] = "meta:"
	n[KMem-1] = "mem:"
	n[KSeen-1] = "seen:"
	n[KAck-1] = "ack:"
	n[KObs-1] = "obs:"
	n[KStream-1] = "s:"
	n[KRooms-1] = "rooms"
	n[KDue-1] = "due"
	n[KStats-1] = "stats"
	for p := range Levels {
		n[KQueue0-1+p] = "q" + strconv.Itoa(p) + ":"
	}
	n[KInc-1] = "inc:"
	return n
}()

// shardKey reports the KEYS indices of the shard's index keys, which are
// shared by the shard's rooms and so do not carry a room name.
func shardKey(k int) bool { return k >= KRooms && k <= KStats }

// roomKey returns the key at 1-based KEYS index k of a room-local key
// (not a shard index key).
func (l *Layout) roomKey(room string, k int) string {
	return l.base(l.ShardOf(room)) + roomKeyNames[k-1] + room
}

// One key of a room, for Go code that reads a room's state directly
// (inspection, reset, tests); the scripts get them all through RoomKeys.
// Each is RoomKeys(room)[K*-1] without building the other nineteen.

// Meta returns the key of a room's meta HASH (KMeta).
func (l *Layout) Meta(room string) string { return l.roomKey(room, KMeta) }

// Members returns the key of a room's voting members ZSET (KMem).
func (l *Layout) Members(room string) string { return l.roomKey(room, KMem) }

// Seen returns the key of a room's last-heartbeat HASH (KSeen).
func (l *Layout) Seen(room string) string { return l.roomKey(room, KSeen) }

// Acks returns the key of the HASH of the in-flight message's acks (KAck).
func (l *Layout) Acks(room string) string { return l.roomKey(room, KAck) }

// Observers returns the key of a room's observers ZSET (KObs).
func (l *Layout) Observers(room string) string { return l.roomKey(room, KObs) }

// Stream returns the key of a room's delivery stream (KStream).
func (l *Layout) Stream(room string) string { return l.roomKey(room, KStream) }

// Queue returns the key of a room's pending LIST of priority p
// (KQueue0+p), 0 <= p < Levels.
func (l *Layout) Queue(room string, p int) string { return l.roomKey(room, KQueue0+p) }

// Incarnations returns the key of a room's member -> incarnation HASH (KInc).
func (l *Layout) Incarnations(room string) string { return l.roomKey(room, KInc) }

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
