package keys

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

func TestSlotMatchesRedisReference(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	require.Equal(t, 12739, Slot("123456789"))
	require.Equal(t, 11058, Slot("somekey"))
	require.Equal(t, 2515, Slot("foo{hash_tag}"))
	require.Equal(t, Slot("user1000"), Slot("foo{user1000}bar"))
	require.Equal(t, Slot("foo{}{bar}"), int(crc16("foo{}{bar}")%NumSlots), "empty tag hashes the whole key")
	require.Equal(t, Slot("{bar"), int(crc16("{bar")%NumSlots))
}

func TestShardTagsSpreadEvenly(t *testing.T) {
	for _, n := range []int{1, 2, 3, 16, 64, 1024} {
		tags := ShardTags(n)
		width := NumSlots / n
		for i, tag := range tags {
			s := Slot("{" + tag + "}")
			require.GreaterOrEqual(t, s, i*width, "n=%d shard %d", n, i)
			require.Less(t, s, (i+1)*width+1, "n=%d shard %d", n, i)
		}
	}
	// With the default slot ranges of a 3-master cluster, 16 shards split 5/6/5.
	owners := map[int]int{}
	for _, tag := range ShardTags(16) {
		s := Slot("{" + tag + "}")
		switch {
		case s <= 5460:
			owners[0]++
		case s <= 10922:
			owners[1]++
		default:
			owners[2]++
		}
	}
	for m, n := range owners {
		require.True(t, n == 5 || n == 6, "master %d owns %d shards", m, n)
	}
}

func roomKeysInOneSlot(t testing.TB, l *Layout, room string) {
	ks := l.RoomKeys(room)
	want := Slot(ks[0])
	for _, k := range append(ks, l.Stream(room)) {
		if Slot(k) != want {
			t.Fatalf("room %q: key %q in slot %d, want %d", room, k, Slot(k), want)
		}
	}
	shard := l.ShardOf(room)
	for _, k := range []string{l.ShardRooms(shard), l.ShardDue(shard), l.ShardStats(shard)} {
		if Slot(k) != want {
			t.Fatalf("shard key %q in slot %d, want %d", k, Slot(k), want)
		}
	}
}

func TestEveryKeyOfARoomInOneSlot(t *testing.T) {
	l, err := New("app", 16)
	require.NoError(t, err)
	for _, room := range []string{"a", "table-7", "x:y::z", "ünïcødé", strings.Repeat("r", MaxNameLen)} {
		roomKeysInOneSlot(t, l, room)
	}
}

// TestRoomKeysLayout pins the documented layout of a room's KEYS.
func TestRoomKeysLayout(t *testing.T) {
	l, err := New("app", 16)
	require.NoError(t, err)
	b := "app:{" + l.tags[l.ShardOf("r")] + "}:"
	want := []string{b + "meta:r", b + "mem:r", b + "seen:r", b + "ack:r", b + "obs:r", b + "s:r", b + "rooms", b + "due", b + "stats"}
	for p := range Levels {
		want = append(want, fmt.Sprintf("%sq%d:r", b, p))
	}
	want = append(want, b+"inc:r")
	require.Equal(t, KQueue0+Levels, KInc, "the incarnations follow the priority lists")
	require.Equal(t, want, l.RoomKeys("r"))
	require.Equal(t, want[KStream-1], l.Stream("r"))
}

// TestRoomKeyAccessorsMatchRoomKeys: the one-key accessors Go code uses
// name the same keys the scripts receive at the K* positions.
func TestRoomKeyAccessorsMatchRoomKeys(t *testing.T) {
	l, err := New("app", 16)
	require.NoError(t, err)
	for _, room := range []string{"r", "table-7", "a:b"} {
		ks := l.RoomKeys(room)
		require.Equal(t, ks[KMeta-1], l.Meta(room))
		require.Equal(t, ks[KMem-1], l.Members(room))
		require.Equal(t, ks[KSeen-1], l.Seen(room))
		require.Equal(t, ks[KAck-1], l.Acks(room))
		require.Equal(t, ks[KObs-1], l.Observers(room))
		require.Equal(t, ks[KStream-1], l.Stream(room))
		require.Equal(t, ks[KInc-1], l.Incarnations(room))
		for p := range Levels {
			require.Equal(t, ks[KQueue0-1+p], l.Queue(room, p))
		}
		shard := l.ShardOf(room)
		require.Equal(t, ks[KRooms-1], l.ShardRooms(shard))
		require.Equal(t, ks[KDue-1], l.ShardDue(shard))
		require.Equal(t, ks[KStats-1], l.ShardStats(shard))
	}
}

func TestRoomKeysNeverCollide(t *testing.T) {
	l, err := New("p", 4)
	require.NoError(t, err)
	seen := map[string]string{}
	for _, room := range []string{"a", "a:q0", "q0:a", "mem:a", "a:mem", "inc:a", "a:inc", ":", "::"} {
		for _, k := range l.RoomKeys(room) {
			if strings.HasSuffix(k, "}:rooms") || strings.HasSuffix(k, "}:due") || strings.HasSuffix(k, "}:stats") {
				continue
			}
			if other, ok := seen[k]; ok {
				t.Fatalf("rooms %q and %q share key %q", room, other, k)
			}
			seen[k] = room
		}
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name, room string
		ok         bool
	}{
		{"plain", "table-7", true},
		{"colons", "a::b:c", true},
		{"unicode", "salle-été", true},
		{"max", strings.Repeat("x", MaxNameLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("x", MaxNameLen+1), false},
		{"open brace", "a{b", false},
		{"close brace", "a}b", false},
		{"newline", "a\nb", false},
		{"nul", "a\x00b", false},
		{"del", "a\x7fb", false},
		{"invalid utf8", "a\xffb", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateRoom(c.room)
			if c.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, sferr.ErrInvalidRoom)
			require.ErrorIs(t, ValidateClientID(c.room), sferr.ErrInvalidClientID)
			if c.room != "" {
				require.ErrorIs(t, ValidateProducer(c.room), sferr.ErrInvalidProducer)
			}
		})
	}
	require.NoError(t, ValidateProducer(""))
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, p := range []string{"", "a{b", "a}b", "a\x01", strings.Repeat("p", MaxPrefixLen+1)} {
		_, err := New(p, 16)
		require.ErrorIs(t, err, sferr.ErrInvalidOption, "prefix %q", p)
	}
	for _, n := range []int{0, -1, MaxShards + 1} {
		_, err := New("p", n)
		require.True(t, errors.Is(err, sferr.ErrInvalidOption), "n=%d", n)
	}
}

func FuzzRoomKeys(f *testing.F) {
	for _, s := range []string{"a", "table-7", "x:y", "{", "}", "{a}", "\x00", "ü", ""} {
		f.Add("app", s)
	}
	f.Fuzz(func(t *testing.T, prefix, room string) {
		l, err := New(prefix, 16)
		if err != nil {
			if !errors.Is(err, sferr.ErrInvalidOption) {
				t.Fatalf("prefix %q: untyped error %v", prefix, err)
			}
			return
		}
		if err := ValidateRoom(room); err != nil {
			if !errors.Is(err, sferr.ErrInvalidRoom) {
				t.Fatalf("room %q: untyped error %v", room, err)
			}
			return
		}
		roomKeysInOneSlot(t, l, room)
		roomKeysInOneSlot(t, l, "other"+room)
	})
}

// BenchmarkRoomKeys: every script call builds its room's KEYS.
func BenchmarkRoomKeys(b *testing.B) {
	l, err := New("app", 16)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		_ = l.RoomKeys("table-42")
	}
}
