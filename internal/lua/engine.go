package lua

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Script is one script of the package, runnable two ways: as a function of
// the library (FCALL) and as a script (EVALSHA, EVAL on NOSCRIPT).
type Script struct {
	file     string // e.g. "ack.lua"
	name     string // e.g. "ack"
	fn       string // its function's name in the library, set by buildLibrary
	readOnly bool   // flags=no-writes
	eval     *redis.Script
}

func newScript(name string) *Script {
	file := name + ".lua"
	first, _, _ := strings.Cut(mustRead(file), "\n")
	return &Script{
		file:     file,
		name:     name,
		readOnly: strings.Contains(first, "no-writes"),
		eval:     redis.NewScript(Source(file)),
	}
}

// Hash is the SHA1 of the script's EVAL form (what EVALSHA names).
func (s *Script) Hash() string { return s.eval.Hash() }

// Eval is the script's EVAL form.
func (s *Script) Eval() *redis.Script { return s.eval }

// Function is the name of the script's function in the library.
func (s *Script) Function() string { return s.fn }

// ReadOnly says the script never writes (flags=no-writes).
func (s *Script) ReadOnly() bool { return s.readOnly }

// buildLibrary makes the Redis Function library from the same files as
// the EVAL scripts. room.lua runs once, at FUNCTION LOAD: its functions
// are created then, and each call runs only its begin and the script's
// own code. Creating room.lua's closures is most of what its prelude
// costs when it runs on every EVALSHA (each captures many of its locals).
// KEYS and ARGV are locals of the library that each call sets, since a
// function gets them as arguments and may not assign globals.
//
// The name carries a hash of the sources, as do the function names, so a
// process only ever calls the functions of its own version: during a
// rolling upgrade the old and the new library are both loaded, each
// process calling its own.
func buildLibrary() (text, name, version string) {
	room := mustRead("room.lua")
	h := sha1.New()
	h.Write([]byte(libraryFormat))
	h.Write([]byte(room))
	for _, s := range all {
		h.Write([]byte(s.file))
		h.Write([]byte(mustRead(s.file)))
	}
	version = hex.EncodeToString(h.Sum(nil))[:12]
	name = "syncfanout_" + version
	var b strings.Builder
	fmt.Fprintf(&b, "#!lua name=%s\nlocal KEYS, ARGV\n%s\n", name, room)
	for _, s := range all {
		s.fn = name + "_" + s.name
		flags := ""
		if s.readOnly {
			flags = "flags = {'no-writes'}, "
		}
		_, body, _ := strings.Cut(mustRead(s.file), "\n") // the shebang line
		if strings.Contains(body, includeRoom) {
			fmt.Fprintf(&b, "redis.register_function{function_name = '%s', %scallback = function(keys, argv)\nKEYS, ARGV = keys, argv\nbegin()\n%s\nend}\n", s.fn, flags, body)
		} else {
			// Scripts without room.lua need no shared state: the
			// arguments keep their EVAL names. They follow room.lua in
			// the library, so its locals bound to Lua's libraries
			// (tonumber, string...) hide the globals: bind them first,
			// as begin does, in case no room script ran yet.
			fmt.Fprintf(&b, "redis.register_function{function_name = '%s', %scallback = function(KEYS, ARGV)\nif not rcall then bind() end\n%s\nend}\n", s.fn, flags, body)
		}
	}
	return b.String(), name, version
}

// libraryFormat changes when buildLibrary's wrapping does, so that the
// version follows it.
const libraryFormat = "2"

// Client is what a script runs on: a go-redis client, or Queue's wrapper
// of one (WaitReplicas).
type Client interface {
	redis.Scripter
	FCall(ctx context.Context, function string, keys []string, args ...any) *redis.Cmd
}

// Mode says how scripts run.
type Mode int32

const (
	// ModeAuto runs the library's functions, and falls back to EVALSHA
	// for good when Redis has no FUNCTION command (before 7.0) or refuses
	// FCALL or FUNCTION LOAD (ACL).
	ModeAuto Mode = iota
	// ModeFunctions runs the functions and never falls back.
	ModeFunctions
	// ModeEval runs every script with EVALSHA.
	ModeEval
)

// Engine runs the scripts for one Queue; make one with NewEngine. A nil
// Engine runs them with EVALSHA.
type Engine struct {
	mode Mode
	// loader is the caller's client, which FUNCTION LOAD goes through: on
	// a cluster, to the master of the key that missed.
	loader redis.UniversalClient
	// eval is set once ModeAuto fell back.
	eval atomic.Bool
	// onFallback, if set, is told once why ModeAuto fell back.
	onFallback func(error)
}

// AutoIs, when not ModeAuto, is what NewEngine makes of ModeAuto. Only
// the test harness sets it (redistest.Main, from SYNCFANOUT_SCRIPTS), so
// that a whole suite can run on one path; it is no option of the library.
var AutoIs = ModeAuto

// NewEngine returns an Engine that loads the library through rdb.
func NewEngine(rdb redis.UniversalClient, mode Mode, onFallback func(error)) *Engine {
	if mode == ModeAuto {
		mode = AutoIs
	}
	if mode != ModeAuto && mode != ModeFunctions {
		mode = ModeEval
	}
	return &Engine{mode: mode, loader: rdb, onFallback: onFallback}
}

// Functions says whether scripts run as functions now.
func (e *Engine) Functions() bool {
	return e != nil && e.mode != ModeEval && !e.eval.Load()
}

// Pipe queues s in p, as FCALL or EVALSHA (a pipeline has no fallback: a
// function or script not loaded comes back as an error, and the caller
// runs the call again with Run).
func (e *Engine) Pipe(ctx context.Context, p redis.Pipeliner, s *Script, keys []string, args ...any) *redis.Cmd {
	if e.Functions() {
		return p.FCall(ctx, s.fn, keys, args...)
	}
	return s.eval.EvalSha(ctx, p, keys, args...)
}

// run runs s once: FCALL, loading the library on the node that answered
// that it does not have the function (a restart without persistence, a
// new master, FUNCTION FLUSH); EVALSHA when the Engine runs scripts so.
func (e *Engine) run(ctx context.Context, c Client, s *Script, keys []string, args []any) *redis.Cmd {
	if e.Functions() {
		cmd := c.FCall(ctx, s.fn, keys, args...)
		refusal := cmd.Err() // FCALL's or FUNCTION LOAD's, if refused
		// Twice: a load can reach a master that stopped owning the slot
		// just before, and the next answer comes from the new one.
		for range 2 {
			err := cmd.Err()
			if err == nil || !isNoFunction(err) {
				break
			}
			if err = e.load(ctx, keys); err != nil {
				refusal = err
				cmd.SetErr(fmt.Errorf("loading the script library %s: %w", LibraryName, err))
				break
			}
			cmd = c.FCall(ctx, s.fn, keys, args...)
			refusal = cmd.Err()
		}
		if cmd.Err() == nil || e.mode != ModeAuto || refusal == nil || !isRefused(refusal) {
			return cmd
		}
		if e.eval.CompareAndSwap(false, true) && e.onFallback != nil {
			e.onFallback(cmd.Err())
		}
	}
	return s.eval.Run(ctx, c, keys, args...)
}

// load loads the library on the master of keys[0]. A library that exists
// already (another process or call loaded it meanwhile) is no error.
func (e *Engine) load(ctx context.Context, keys []string) error {
	var node redis.Cmdable = e.loader
	if cc, ok := e.loader.(*redis.ClusterClient); ok && len(keys) > 0 {
		n, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return err
		}
		node = n
	}
	return loadOn(ctx, node)
}

func loadOn(ctx context.Context, node redis.Cmdable) error {
	err := node.FunctionLoad(ctx, Library).Err()
	if err != nil && strings.Contains(err.Error(), "already exists") {
		return nil
	}
	return err
}

// Load loads the library on every master of rdb, so that the first calls
// do not each miss; what it cannot reach is loaded on first use instead.
func Load(ctx context.Context, rdb redis.UniversalClient) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return loadOn(ctx, c) })
	case *redis.Client:
		return loadOn(ctx, c)
	}
	return errors.New("lua: Load needs a *redis.Client or *redis.ClusterClient")
}

// isNoFunction reports Redis's answer to FCALL of a function it does not
// have.
func isNoFunction(err error) bool {
	return strings.Contains(err.Error(), "Function not found")
}

// isRefused reports the answers of a Redis without functions (before 7.0:
// an unknown command) and of an ACL user not allowed FCALL or FUNCTION
// LOAD: replies that name those commands. A refusal of a command a
// function runs names that command instead (and may come after the
// function wrote), and a refusal of keys refuses EVALSHA alike: neither
// counts.
func isRefused(err error) bool {
	msg := strings.ToLower(err.Error())
	if !strings.HasPrefix(msg, "noperm") && !strings.Contains(msg, "unknown command") {
		return false
	}
	for _, name := range []string{"'fcall'", "`fcall`", "'function|load'", "'function'", "`function`"} {
		if strings.Contains(msg, name) {
			return true
		}
	}
	return false
}

// byCall finds a script by what its commands name: the function's name
// is built from LibraryName here, not read from s.fn, so that this map is
// initialized after the library (Go orders package variables by what
// their initializers refer to).
var byCall = func() map[string]*Script {
	m := map[string]*Script{}
	for _, s := range all {
		m["evalsha\x00"+s.Hash()] = s
		m["eval\x00"+Source(s.file)] = s
		m["fcall\x00"+LibraryName+"_"+s.name] = s
	}
	return m
}()

// Called returns the script that cmd runs (EVALSHA, EVAL or FCALL of one
// of the package's scripts), or nil. Their arguments have one layout from
// the third on: the number of keys, the keys, then ARGV.
func Called(cmd redis.Cmder) *Script {
	args := cmd.Args()
	if len(args) < 2 {
		return nil
	}
	name, _ := args[0].(string)
	arg, _ := args[1].(string)
	return byCall[strings.ToLower(name)+"\x00"+arg]
}
