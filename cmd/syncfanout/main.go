// Command syncfanout inspects and debugs a syncfanout deployment: rooms
// by backlog, who a room is waiting on, pending messages, live and past
// deliveries, and test sends.
//
//	go install github.com/syncfanout/syncfanout/cmd/syncfanout@latest
//	syncfanout --redis redis://localhost:6379 state lobby
//
// It never runs housekeeping or heartbeats and changes nothing in Redis,
// except for the send and policy set commands and the admin commands
// (pause, resume, purge, release, kick, delete), which ask for
// confirmation unless --yes and record who made them (--actor) and why
// (--reason) in the room's stream. The console command serves the web
// console (package console), read-only unless --admin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/redisenv"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1 // a Redis or data error
	exitUsage       = 2 // bad flags or arguments
	exitUnreachable = 3 // Redis did not answer within --timeout
	exitNotFound    = 4 // no deployment under the prefix; admin commands: no such room or member
	// 5 and 6: admin.go.
)

// cliError carries an exit code and a message meant for people.
type cliError struct {
	code int
	msg  string
	err  error
}

func (e *cliError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *cliError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// quietLogger drops go-redis's own log lines (dial retries and the like):
// the CLI reports errors itself, once, in words.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	example string
	flags   func(fs *flag.FlagSet) // the command's own flags
	nargs   int                    // number of positional arguments
	maxArgs int                    // when above nargs: the most positional arguments
	run     func(ctx context.Context, env *env, args []string) error
}

func commands() []*command {
	return []*command{
		roomsCmd(), stateCmd(), peekCmd(), tailCmd(), replayCmd(), sendCmd(), policyCmd(),
		pauseCmd(), resumeCmd(), purgeCmd(), releaseCmd(), kickCmd(), deleteCmd(),
		consoleCmd(),
	}
}

// globals are the connection flags, accepted before or after the command.
type globals struct {
	redisURL  string
	cluster   bool
	prefix    string
	timeout   time.Duration
	shards    int
	shardsSet bool // --shards was given: it must match the deployment's
}

func (g *globals) register(fs *flag.FlagSet) {
	def, _ := redisenv.Lookup()
	if def == "" {
		def = "redis://127.0.0.1:6379"
	}
	fs.StringVar(&g.redisURL, "redis", def, "Redis `URL` (redis:// or rediss://) or host:port; several comma-separated seeds mean Redis Cluster; default $REDIS_URL, else $REDIS_ADDR")
	fs.BoolVar(&g.cluster, "cluster", false, "treat a single --redis seed as a Redis Cluster")
	fs.StringVar(&g.prefix, "prefix", "syncfanout", "key prefix of the deployment (queue.Options.Prefix)")
	fs.DurationVar(&g.timeout, "timeout", 5*time.Second, "time allowed to reach Redis and for each command's reads")
	fs.IntVar(&g.shards, "shards", 16, "NumShards of the deployment (queue.Options.NumShards); when not given, the value the deployment stored")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var g globals
	top := flag.NewFlagSet("syncfanout", flag.ContinueOnError)
	top.SetOutput(stderr)
	g.register(top)
	cmds := commands()
	// The flag package calls Usage for -h and for bad flags alike; the
	// usage is printed below instead, once, where it belongs: on stdout
	// when asked for, on stderr after a mistake.
	top.Usage = func() {}
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			mainUsage(stdout, top, cmds)
			return exitOK
		}
		mainUsage(stderr, top, cmds)
		return exitUsage
	}
	rest := top.Args()
	if len(rest) == 0 {
		mainUsage(stderr, top, cmds)
		return exitUsage
	}
	if rest[0] == "help" {
		if len(rest) > 1 {
			rest = []string{rest[1], "--help"}
		} else {
			mainUsage(stdout, top, cmds)
			return exitOK
		}
	}
	var cmd *command
	for _, c := range cmds {
		if c.name == rest[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "syncfanout: unknown command %q\n", rest[0])
		mainUsage(stderr, top, cmds)
		return exitUsage
	}
	// Values given before the command are the defaults after it; read
	// them before register resets the shared variables to the defaults.
	given := map[string]string{}
	top.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	fs := flag.NewFlagSet("syncfanout "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	for name, v := range given {
		_ = fs.Set(name, v)
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.Usage = func() {} // as for top
	pos, err := parseInterleaved(fs, rest[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(stdout, fs, cmd)
			return exitOK
		}
		commandUsage(stderr, fs, cmd)
		return exitUsage
	}
	fs.Visit(func(f *flag.Flag) { g.shardsSet = g.shardsSet || f.Name == "shards" })
	if len(pos) < cmd.nargs || len(pos) > max(cmd.nargs, cmd.maxArgs) {
		fmt.Fprintf(stderr, "syncfanout %s: want %s, got %d argument(s)\n", cmd.name, plural(cmd.nargs, cmd.args), len(pos))
		fmt.Fprintf(stderr, "run 'syncfanout %s --help' for usage\n", cmd.name)
		return exitUsage
	}
	// The command's own flags that were given, for commands whose flags
	// only make sense in one form (policy set).
	global := map[string]bool{"format": true}
	top.VisitAll(func(f *flag.Flag) { global[f.Name] = true })
	var own []string
	fs.Visit(func(f *flag.Flag) {
		if !global[f.Name] {
			own = append(own, f.Name)
		}
	})
	e := &env{g: g, stdin: os.Stdin, stdout: stdout, stderr: stderr, given: own}
	defer e.close()
	err = cmd.run(ctx, e, pos)
	if err == nil {
		return exitOK
	}
	var ce *cliError
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "syncfanout %s: %v\n", cmd.name, err)
		if ce.code == exitUsage {
			fmt.Fprintf(stderr, "run 'syncfanout %s --help' for usage\n", cmd.name)
		}
		return ce.code
	}
	if errors.Is(err, context.Canceled) {
		return exitOK // interrupted by the user
	}
	fmt.Fprintf(stderr, "syncfanout %s: %v\n", cmd.name, err)
	return exitFailure
}

func plural(n int, args string) string {
	if n == 0 {
		return "no arguments"
	}
	return args
}

// parseInterleaved parses flags that may come after positional arguments
// ("replay ROOM --since 10m"). Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		consumed := len(args) - fs.NArg()
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, fs.Args()...), nil
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func mainUsage(w io.Writer, fs *flag.FlagSet, cmds []*command) {
	fmt.Fprintf(w, `syncfanout inspects a syncfanout deployment. It changes nothing in Redis,
except for send, policy set and the admin commands (pause, resume, purge,
release, kick, delete), which ask for confirmation unless --yes, and the
web console's admin buttons (console --admin).

Usage:
  syncfanout [global flags] COMMAND [flags] [ARGS]

Commands:
`)
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Example:
  syncfanout --redis redis://localhost:6379 state lobby

Global flags (also accepted after the command):
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, `
Exit codes: 0 ok, 1 error, 2 bad usage, 3 Redis unreachable, 4 no deployment
under the prefix (admin commands: no such room or member), 5 refused by the
room's state (already paused, not paused, nothing in flight), 6 not
confirmed. A room that holds nothing is shown empty, with a note.
Run 'syncfanout COMMAND --help' for a command's flags.
`)
}

func commandUsage(w io.Writer, fs *flag.FlagSet, c *command) {
	line := "syncfanout " + c.name + " [flags]"
	if c.args != "" {
		line += " " + c.args
	}
	fmt.Fprintf(w, "Usage:\n  %s\n\n%s\n\nExample:\n", line, c.summary)
	for _, l := range strings.Split(strings.TrimSpace(c.example), "\n") {
		fmt.Fprintf(w, "  %s\n", l)
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
}
