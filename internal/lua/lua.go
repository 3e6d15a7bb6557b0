// Package lua embeds the Lua scripts behind every atomic state change of a
// room. Each script is one file with a header listing its KEYS, ARGV and
// return values; scripts that change a room share room.lua, which is
// inserted after their first line so that each stays a single EVALSHA.
package lua

import (
	"context"
	"embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed *.lua
var files embed.FS

const includeRoom = "-- include: room.lua"

// Source returns the full text of a script as EVAL receives it: room.lua
// after the first line, and a call of its begin (the state of the call)
// before the script's own code.
func Source(name string) string {
	body := mustRead(name)
	if !strings.Contains(body, includeRoom) {
		return body
	}
	first, rest, _ := strings.Cut(body, "\n")
	return first + "\n" + mustRead("room.lua") + "\nbegin()\n" + rest
}

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		// Only reachable through a typo in this package: the files are embedded.
		panic(fmt.Sprintf("lua: missing embedded script %s: %v", name, err))
	}
	return string(b)
}

// The scripts. Each runs as a function of the library (Library) or, where
// Redis has no functions or refuses them, with EVALSHA (see Engine).
var (
	Send      = newScript("send")
	OOB       = newScript("oob")
	Join      = newScript("join")
	Leave     = newScript("leave")
	Ack       = newScript("ack")
	Heartbeat = newScript("heartbeat")
	Reap      = newScript("reap")
	Due       = newScript("due")
	Peek      = newScript("peek")
	State     = newScript("state")
	AckBatch  = newScript("ack_batch")
	SetPolicy = newScript("policy")
)

// The operators' transitions (queue.Admin), one script each.
var (
	AdminPause   = newScript("admin_pause")
	AdminResume  = newScript("admin_resume")
	AdminPurge   = newScript("admin_purge")
	AdminRelease = newScript("admin_release")
	AdminKick    = newScript("admin_kick")
	AdminDelete  = newScript("admin_delete")
)

// Config is housekeeping's check of the deployment-wide settings.
var Config = newScript("config")

// all lists every script, in the order the library registers them.
var all = []*Script{Send, OOB, Join, Leave, Ack, Heartbeat, Reap, Due, Peek, State, AckBatch, SetPolicy,
	AdminPause, AdminResume, AdminPurge, AdminRelease, AdminKick, AdminDelete, Config}

// Library is the text of the Redis Function library that holds every
// script, LibraryName its name and Version the hash both carry (see
// buildLibrary).
var Library, LibraryName, Version = buildLibrary()

// RoomConfig is the common ARGV part (1-5) of every script that includes
// room.lua.
type RoomConfig struct {
	// Engine runs the scripts (nil: EVALSHA); it is no part of ARGV.
	Engine       *Engine
	MaxLen       int64 // stream MAXLEN ~, 0 for none
	MaxAgeMillis int64 // stream MINID ~ now-age, 0 for none
	AckTimeoutMs int64 // 0 for none
	Hold         bool  // keep messages pending while a room has no members
	// IdleTTLMillis: how long a room stays idle (no members, observers,
	// backlog or message in flight) before it is deleted with its history;
	// negative or 0: never.
	IdleTTLMillis int64
	// DefaultPolicy is the text form of queue.Options.DefaultPolicy, for
	// rooms without a stored policy; "" (the default policy) adds nothing
	// to the arguments, so the default costs no parsing.
	DefaultPolicy string
}

// Args returns the ARGV of a room script: the common part, then extra.
func (c RoomConfig) Args(room string, extra ...any) []any {
	hold := "0:"
	if c.Hold {
		hold = "1:"
	}
	ttl := c.IdleTTLMillis
	if ttl <= 0 {
		ttl = -1
	}
	common := hold + strconv.FormatInt(ttl, 10)
	if c.DefaultPolicy != "" {
		common += ";" + c.DefaultPolicy
	}
	return append([]any{room, c.MaxLen, c.MaxAgeMillis, c.AckTimeoutMs, common}, extra...)
}

// tryAgainFor bounds how long Run keeps retrying a script that Redis
// Cluster refused because its slot is moving. A slot migration refuses
// every room script of the slot's shard from its first MIGRATING until its
// last SETSLOT NODE (their KEYS always include keys that do not exist, such
// as empty priority lists, so the source answers ASK and the target
// TRYAGAIN), so this must cover a whole migration, not a blip.
const tryAgainFor = 30 * time.Second

// Run runs s, with the library's function or EVALSHA (see Engine), and retries, with a backoff of 2ms doubling to
// 100ms, while Redis Cluster refuses it because its slot is moving:
// TRYAGAIN, and the ASK, MOVED and CLUSTERDOWN replies that go-redis
// returns once its MaxRedirects quick attempts are spent. Each of them
// means the script did not run, so running it again is safe. It stops at
// ctx's end or after tryAgainFor.
// A nil Engine runs every script with EVALSHA.
func (e *Engine) Run(ctx context.Context, c Client, s *Script, keys []string, args ...any) *redis.Cmd {
	backoff := 2 * time.Millisecond
	var deadline time.Time
	for {
		cmd := e.run(ctx, c, s, keys, args)
		if !slotMoving(cmd.Err()) {
			return cmd
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(tryAgainFor)
		} else if now.After(deadline) {
			return cmd
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return cmd
		case <-t.C:
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

// NotRun reports whether err is a reply that refused a script call
// without running it: the script or function is not loaded (NOSCRIPT, or
// no such function: a pipeline cannot fall back from either), functions
// are refused (Engine.Run falls back), or its slot is moving. Such a call
// can be sent again as it was.
func NotRun(err error) bool {
	if err == nil {
		return false
	}
	return redis.HasErrorPrefix(err, "NOSCRIPT") || isNoFunction(err) || isRefused(err) || slotMoving(err)
}

// slotMoving reports the cluster replies that refuse a command, without
// running it, while a slot moves or the cluster reconfigures.
func slotMoving(err error) bool {
	if err == nil {
		return false
	}
	if redis.IsTryAgainError(err) || redis.IsClusterDownError(err) {
		return true
	}
	if _, ok := redis.IsAskError(err); ok {
		return true
	}
	_, ok := redis.IsMovedError(err)
	return ok
}
