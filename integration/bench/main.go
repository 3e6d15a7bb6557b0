// Command bench measures syncfanout against a real Redis and regenerates
// BENCHMARKS.md and its plots.
//
// It starts its own redis-server on a free loopback port (or uses
// REDIS_ADDR), measures the limit references first (the round-trip rate of
// one connection, plain Redis Streams fanout without a barrier), then the
// workloads W1-W7, each repeated (median, min-max), and writes the report.
//
//	go run ./bench            # full run (make bench), writes ../BENCHMARKS.md and ../docs/bench/
//	go run ./bench -short     # tiny sizes, writes to a temporary directory
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

func main() {
	short := flag.Bool("short", false, "tiny sizes (a few seconds); the report goes to a temporary directory")
	out := flag.String("out", "", "directory receiving BENCHMARKS.md and docs/bench/ (default: the repository root, or a temporary directory with -short)")
	reps := flag.Int("reps", 0, "repetitions per figure in each round (default 1)")
	rounds := flag.Int("rounds", 0, "rounds, each against a redis-server of its own started afresh; figures are medians over every round's repetitions (default 3)")
	only := flag.String("only", "", "comma-separated workloads to run (refs are always measured), e.g. W1,W4")
	w1Modes := flag.String("w1-modes", "", "comma-separated W1 modes to run (gateway,separate,process; default all)")
	w1S := flag.String("w1-s", "", "comma-separated W1 subscriber counts (default 1,10,100)")
	w2Rooms := flag.String("w2-rooms", "", "comma-separated W2 room counts (default 100,1000)")
	w6Parts := flag.String("w6-parts", "", "comma-separated parts of W6 to run (clients,rooms,backlog; default all)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the benchmark process during the workloads (not the references) to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile of the benchmark process (every allocation since the start, references included) to this file at the end")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg := FullConfig()
	if *short {
		cfg = ShortConfig()
	}
	if *reps > 0 {
		cfg.Reps = *reps
	}
	if *rounds > 0 {
		cfg.Rounds = *rounds
	}
	if *only != "" {
		cfg.Only = strings.Split(strings.ToUpper(*only), ",")
	}
	if *w1Modes != "" {
		cfg.W1Modes = strings.Split(*w1Modes, ",")
	}
	if *w1S != "" {
		cfg.W1S = nil
		for _, v := range strings.Split(*w1S, ",") {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "bench: -w1-s: bad count %q\n", v)
				os.Exit(2)
			}
			cfg.W1S = append(cfg.W1S, n)
		}
	}
	if *w2Rooms != "" {
		cfg.W2Rooms = nil
		for _, v := range strings.Split(*w2Rooms, ",") {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "bench: -w2-rooms: bad count %q\n", v)
				os.Exit(2)
			}
			cfg.W2Rooms = append(cfg.W2Rooms, n)
		}
	}
	cfg.CPUProfile = *cpuProfile
	cfg.MemProfile = *memProfile
	if *w6Parts != "" {
		cfg.W6Parts = strings.Split(*w6Parts, ",")
	}
	cfg.OutDir = *out
	if cfg.OutDir == "" {
		var err error
		if cfg.OutDir, err = defaultOutDir(*short); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	rep, err := Run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("\nwrote %s (%d targets: %d PASS, %d MISS)\n",
		filepath.Join(cfg.OutDir, "BENCHMARKS.md"), len(rep.Targets), rep.passes(), len(rep.Targets)-rep.passes())
}

// defaultOutDir is the repository root for a full run (found by walking up
// to the go.mod of the library), and a new temporary directory for -short,
// so that CI never rewrites the committed report.
func defaultOutDir(short bool) (string, error) {
	if short {
		return os.MkdirTemp("", "syncfanout-bench-")
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/syncfanout/syncfanout\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found (run from inside the repository or pass -out)")
		}
		dir = parent
	}
}

// Run measures everything cfg asks for, in cfg.Rounds rounds of a fresh
// redis-server each, writes the report and plots under cfg.OutDir and
// returns the report. Progress goes to log.
func Run(ctx context.Context, cfg Config, log io.Writer) (*Report, error) {
	started := time.Now()
	rep := &Report{Config: cfg, Machine: machineInfo(), Started: started}
	profiling := false
	for i := range max(cfg.Rounds, 1) {
		round := &Report{Config: cfg}
		t0 := time.Now()
		if err := runRound(ctx, cfg, log, i+1, round, &profiling); err != nil {
			return nil, err
		}
		rep.RedisVersion, rep.RedisSource = round.RedisVersion, round.RedisSource
		rep.Rounds = append(rep.Rounds, Round{Started: t0, Elapsed: time.Since(t0), PING: round.Refs.PingRate.Median()})
		rep.mergeRound(round)
	}
	if profiling {
		pprof.StopCPUProfile()
	}
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return nil, err
		}
	}
	rep.Elapsed = time.Since(started)
	rep.evaluate()
	if err := rep.write(cfg.OutDir); err != nil {
		return nil, err
	}
	return rep, nil
}

// runRound measures every step of cfg once (cfg.Reps repetitions each)
// against a redis-server of its own, into rep. The CPU profile, if asked
// for, starts with the first round's workloads and covers every round.
func runRound(ctx context.Context, cfg Config, log io.Writer, n int, rep *Report, profiling *bool) error {
	env, err := newEnv(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer env.close()
	rep.RedisVersion, rep.RedisSource = env.redisVersion, env.source
	env.logf("round %d of %d: redis %s at %s (%s); %d repetitions per figure", n, max(cfg.Rounds, 1), env.redisVersion, env.addr, env.source, cfg.Reps)

	steps := []struct {
		name string
		run  func(context.Context, *Env, *Report) error
	}{
		{"REFS", measureRefs},
		{"W1", runW1},
		{"W2", runW2},
		{"W3", runW3},
		{"W4", runW4},
		{"W6", runW6},
		{"W7", runW7},
	}
	for _, s := range steps {
		if !cfg.wants(s.name) {
			continue
		}
		if s.name != "REFS" && cfg.CPUProfile != "" && !*profiling {
			f, err := os.Create(cfg.CPUProfile)
			if err != nil {
				return err
			}
			// Closed at exit: the profile runs until the last round ends.
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			*profiling = true
		}
		t0 := time.Now()
		env.logf("== %s", s.name)
		if err := s.run(ctx, env, rep); err != nil {
			return fmt.Errorf("round %d: %s: %w", n, s.name, err)
		}
		env.logf("== %s done in %v", s.name, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// writeHeapProfile writes the allocation profile (pprof's allocs: read it
// with -sample_index=alloc_objects or alloc_space) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC() // so the profile is up to date
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
