package queue_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestDefaultPathInnerCommands: the Redis commands each room script runs
// inside itself on the default policy's path (docs/bench/inner-commands.md),
// counted on a private server, script by script. Not a rule of the
// contract but the per-message cost: a change that makes the path read or
// write more fails here and must say why in that page.
func TestDefaultPathInnerCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	d := newScriptDeployment(t, redistest.NameStandalone)
	rdb := d.connect("", "")
	e := lua.NewEngine(rdb, lua.ModeFunctions, nil)
	l, err := keys.New("inner", 1)
	require.NoError(t, err)
	room := "r"
	k := l.RoomKeys(room)
	cfg := lua.RoomConfig{MaxLen: 1000}
	// inner runs s and returns its reply and how many commands it ran
	// besides the FCALL itself.
	inner := func(s *lua.Script, extra ...any) ([]any, int64) {
		t.Helper()
		d.do(t, ctx, "CONFIG", "RESETSTAT")
		v, err := e.Run(ctx, rdb, s, k, cfg.Args(room, extra...)...).Slice()
		require.NoError(t, err)
		n := int64(0)
		for name, c := range d.calls(t, ctx) {
			if name != "fcall" {
				n += c
			}
		}
		// CONFIG RESETSTAT itself is counted after the reset.
		return v, n - 1
	}
	msg := "r" + "payload"
	j, _ := inner(lua.Join, "a", "m", 60000)
	inc := j[6].(string)
	epoch := j[2].(string)

	// A send into an empty room releases at once; one into a room with a
	// message in flight only queues.
	_, sendFree := inner(lua.Send, "5", "p", msg)
	_, sendQueued := inner(lua.Send, "5", "p", msg)
	// The only member's ack completes message 1 and releases message 2;
	// its ack of message 2 completes it with nothing left to release.
	_, ackNext := inner(lua.Ack, "a", 1, epoch, inc)
	_, ackLast := inner(lua.Ack, "a", 2, epoch, inc)

	// Two members in one process (a gateway, coalesced q.Join acks): one
	// batch acks for both; a heartbeat while the message is in flight.
	j, _ = inner(lua.Join, "b", "m", 60000)
	incB := j[6].(string)
	_, _ = inner(lua.Send, "5", "p", msg)
	_, beat := inner(lua.Heartbeat, 60000, "a", "b")
	_, batch := inner(lua.AckBatch, epoch, 3, "a", "b", inc, incB)

	got := map[string]int64{"send, released at once": sendFree, "send, queued": sendQueued,
		"ack, releases the next": ackNext, "ack, nothing pending": ackLast,
		"heartbeat, in flight": beat, "ack batch of 2, nothing pending": batch}
	want := map[string]int64{"send, released at once": 10, "send, queued": 7,
		"ack, releases the next": 13, "ack, nothing pending": 8,
		"heartbeat, in flight": 9, "ack batch of 2, nothing pending": 9}
	require.Equal(t, want, got)

	// A heartbeat of more clients than one command's chunk: every one
	// answered, the members among them alive.
	many := []any{60000}
	for i := range 2500 {
		many = append(many, fmt.Sprintf("c%d", i))
	}
	many = append(many, "b", "a")
	v, _ := inner(lua.Heartbeat, many...)
	require.Len(t, v, 2+2502)
	require.Equal(t, []any{int64(1), int64(1)}, v[2+2500:])
	require.Equal(t, int64(0), v[2+1700])
}

// TestAppendFollowsForeignEntries: the ID an append says it follows (the
// reply's and the notification's "previous ID") is the stream's newest
// even when something other than this version's scripts appended last,
// such as an older version's during an upgrade: a subscriber at the
// previous ID would otherwise skip that entry. (A cache of the last
// appended ID in meta, trusted as is, fails here; see
// docs/bench/inner-commands.md.)
func TestAppendFollowsForeignEntries(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		rdb := b.Client
		e := lua.NewEngine(rdb, lua.ModeAuto, nil)
		l, err := keys.New(b.Prefix, 1)
		require.NoError(t, err)
		room := "r"
		k := l.RoomKeys(room)
		cfg := lua.RoomConfig{MaxLen: 1000}
		run := func(s *lua.Script, extra ...any) []any {
			t.Helper()
			v, err := e.Run(ctx, rdb, s, k, cfg.Args(room, extra...)...).Slice()
			require.NoError(t, err)
			return v
		}
		j := run(lua.Join, "a", "m", 60000)
		inc, epoch := j[6].(string), j[2].(string)
		v := run(lua.Send, "5", "p", "rone")
		own := v[7].([]any)[0].([]any)[0].(string) // message 1's entry
		run(lua.Send, "5", "p", "rtwo")
		foreign, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: l.Stream(room), Values: []any{"t", "l", "c", "z", "r", "left", "o", "m"}}).Result()
		require.NoError(t, err)
		require.Greater(t, foreign, own)
		v = run(lua.Ack, "a", 1, epoch, inc)
		require.Equal(t, foreign, v[5], "the release of message 2 follows the foreign entry")
		// And with nothing foreign, the stored ID is the previous one.
		next := v[6].([]any)[0].([]any)[0].(string)
		run(lua.Send, "5", "p", "rthree")
		v = run(lua.Ack, "a", 2, epoch, inc)
		require.Equal(t, next, v[5])
	})
}
