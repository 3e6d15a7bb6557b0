// Package lua embeds the Lua scripts behind every atomic state change of a
// room. Each script is one file with a header listing its KEYS, ARGV and
// return values; scripts that change a room share room.lua, which is
// inserted after their first line so that each stays a single EVALSHA.
package lua

import (
	"embed"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

//go:embed *.lua
var files embed.FS

const includeRoom = "-- include: room.lua"

// Source returns the full text of a script as Redis receives it.
func Source(name string) string {
	body := mustRead(name)
	if !strings.Contains(body, includeRoom) {
		return body
	}
	first, rest, _ := strings.Cut(body, "\n")
	return first + "\n" + mustRead("room.lua") + rest
}

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		// Only reachable through a typo in this package: the files are embedded.
		panic(fmt.Sprintf("lua: missing embedded script %s: %v", name, err))
	}
	return string(b)
}

// The scripts, loaded once per process; go-redis sends EVALSHA and falls
// back to EVAL on NOSCRIPT.
var (
	Send      = redis.NewScript(Source("send.lua"))
	OOB       = redis.NewScript(Source("oob.lua"))
	Join      = redis.NewScript(Source("join.lua"))
	Leave     = redis.NewScript(Source("leave.lua"))
	Ack       = redis.NewScript(Source("ack.lua"))
	Heartbeat = redis.NewScript(Source("heartbeat.lua"))
	Reap      = redis.NewScript(Source("reap.lua"))
	Due       = redis.NewScript(Source("due.lua"))
	Peek      = redis.NewScript(Source("peek.lua"))
	State     = redis.NewScript(Source("state.lua"))
	AckBatch  = redis.NewScript(Source("ack_batch.lua"))
)

// All lists every script, for preloading before pipelines (pipelines get
// no EVAL fallback on NOSCRIPT).
var All = []*redis.Script{Send, OOB, Join, Leave, Ack, Heartbeat, Reap, Due, Peek, State, AckBatch}

// RoomConfig is the common ARGV part (1-5) of every script that includes
// room.lua.
type RoomConfig struct {
	MaxLen       int64 // stream MAXLEN ~, 0 for none
	MaxAgeMillis int64 // stream MINID ~ now-age, 0 for none
	AckTimeoutMs int64 // 0 for none
	Hold         bool  // keep messages pending while a room has no members
}

// Args returns the ARGV of a room script: the common part, then extra.
func (c RoomConfig) Args(room string, extra ...any) []any {
	hold := "0"
	if c.Hold {
		hold = "1"
	}
	return append([]any{room, c.MaxLen, c.MaxAgeMillis, c.AckTimeoutMs, hold}, extra...)
}
