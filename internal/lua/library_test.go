package lua

import (
	"context"
	"errors"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestRoomStateReset: every top-level local of room.lua that some code
// changes (assigns, or stores into) is set by begin, or by a function
// begin calls. As a function library, room.lua's top level runs once, at
// FUNCTION LOAD; a variable begin misses keeps the previous call's value,
// from whatever room that call was in.
func TestRoomStateReset(t *testing.T) {
	src := mustRead("room.lua")
	names, err := fs.Glob(files, "*.lua")
	require.NoError(t, err)
	var code []string // every line of every script that is not a declaration
	for _, name := range names {
		for _, l := range strings.Split(mustRead(name), "\n") {
			if l = strings.TrimSpace(l); !strings.HasPrefix(l, "local ") && !strings.HasPrefix(l, "--") {
				code = append(code, l)
			}
		}
	}
	changes := func(n string) bool {
		re := regexp.MustCompile(`^(?:[\w, ]*\b)?` + n + `(?:\b[\w, ]*|\[.*\]|\.\w+)\s*=[^=]`)
		for _, l := range code {
			if re.MatchString(l) {
				return true
			}
		}
		return false
	}
	decl := regexp.MustCompile(`^local ([A-Za-z_][\w, ]*?)(?: = .*)?$`)
	var state []string
	for _, l := range strings.Split(src, "\n") {
		if strings.HasPrefix(l, "local function ") {
			continue
		}
		if m := decl.FindStringSubmatch(l); m != nil {
			for _, n := range strings.Split(m[1], ",") {
				// Functions assigned once at the top level (win,
				// load_policy) are no state.
				n = strings.TrimSpace(n)
				if changes(n) && !regexp.MustCompile(`(?m)^`+n+` = function\(`).MatchString(src) {
					state = append(state, n)
				}
			}
		}
	}
	require.Contains(t, state, "META")

	// The text that runs on every call: begin's body and the bodies of
	// the top-level functions it calls.
	body := func(name string) string {
		start := regexp.MustCompile(`(?m)^(?:local function ` + name + `\(|` + name + ` = function\()`).FindStringIndex(src)
		require.NotNil(t, start, "function %s", name)
		end := strings.Index(src[start[1]:], "\nend\n")
		require.Positive(t, end, "end of %s", name)
		return src[start[1] : start[1]+end]
	}
	begin := body("begin")
	run := begin
	for _, m := range regexp.MustCompile(`(?m)^\s+(\w+)\(\)$`).FindAllStringSubmatch(begin, -1) {
		run += body(m[1])
	}
	for _, n := range state {
		set := regexp.MustCompile(`(?m)^\s+(?:[\w, ]*\b)?` + n + `\b[\w, ]*=[^=]`)
		require.True(t, set.MatchString(run), "room.lua: a call changes %s but begin does not set it", n)
	}
}

// TestLibraryHoldsEveryScript: the library registers one function per
// script, named with the library's version, with no-writes exactly where
// the script's shebang has it, and nothing else at its top level calls
// Redis (FUNCTION LOAD offers no redis.call).
func TestLibraryHoldsEveryScript(t *testing.T) {
	require.Regexp(t, `^syncfanout_[0-9a-f]{12}$`, LibraryName)
	require.True(t, strings.HasPrefix(Library, "#!lua name="+LibraryName+"\n"))
	for _, s := range all {
		require.Equal(t, LibraryName+"_"+s.name, s.Function())
		want := "function_name = '" + s.Function() + "', "
		if s.ReadOnly() {
			want += "flags = {'no-writes'}, "
		}
		require.Contains(t, Library, want+"callback = function(")
	}
	for _, s := range []*Script{Peek, State, Due} {
		require.True(t, s.ReadOnly(), s.name)
	}
	require.Equal(t, len(all), strings.Count(Library, "redis.register_function{"))
}

// TestCalled: every script is found by each of its three commands.
func TestCalled(t *testing.T) {
	ctx := context.Background()
	for _, s := range all {
		for _, cmd := range []*redis.Cmd{
			redis.NewCmd(ctx, "fcall", s.Function(), 1, "k"),
			redis.NewCmd(ctx, "evalsha", s.Hash(), 1, "k"),
			redis.NewCmd(ctx, "eval", Source(s.file), 1, "k"),
		} {
			require.Same(t, s, Called(cmd), "%s %v", s.name, cmd.Args()[0])
		}
	}
	require.Nil(t, Called(redis.NewCmd(ctx, "get", "k")))
}

// TestRefusalsAndMisses: what makes ScriptsAuto fall back, and what a
// pipeline sends again: replies that refuse FCALL or FUNCTION LOAD
// themselves, or say the function is missing; never a refusal inside a
// function, which may come after it wrote.
func TestRefusalsAndMisses(t *testing.T) {
	for msg, refused := range map[string]bool{
		"NOPERM User u has no permissions to run the 'fcall' command":                                                                         true,
		"NOPERM this user has no permissions to run the 'function|load' command":                                                              true,
		"ERR unknown command 'FCALL', with args beginning with: 'syncfanout_0123456789ab_ack' '20' ":                                          true,
		"ERR unknown command `FCALL`, with args beginning with: `syncfanout_0123456789ab_ack`, `20`, ":                                        true,
		"ERR The user executing the script can't run this command or subcommand script: syncfanout_0123456789ab_send, on @user_function:812.": false,
		"NOPERM No permissions to access a key":                                                                                               false,
		"ERR Function not found":                                                                                                              false,
	} {
		require.Equal(t, refused, isRefused(errors.New(msg)), msg)
		require.Equal(t, refused || msg == "ERR Function not found", NotRun(errors.New(msg)), msg)
	}
}
