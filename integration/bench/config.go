package main

import (
	"slices"
	"time"
)

// Config sizes every workload. FullConfig is what make bench runs (about
// 10-15 minutes on 2 cores); ShortConfig only proves that every workload
// produces a figure.
type Config struct {
	Short  bool
	Reps   int      // repetitions per figure in each round
	Rounds int      // rounds, each on a fresh redis-server; a figure is the median over Rounds x Reps values
	Only   []string // workloads to run; empty: all
	OutDir string   // BENCHMARKS.md goes here, plots under docs/bench/

	CPUProfile string // when set, a CPU profile of the workloads (not the references) goes here
	MemProfile string // when set, the process's allocation profile goes here at the end

	PayloadBytes int // the body of every message

	PingN    int             // PINGs per repetition of the round-trip reference
	FanoutS  []int           // subscriber counts of the plain-streams reference
	FanoutN  func(s int) int // messages per repetition of the plain-streams reference
	W1S      []int           // subscriber counts of W1
	W1Modes  []string        // how W1's subscribers are hosted (default: all modes)
	W1Msgs   func(s int) int
	W1Window int // messages kept outstanding by the W1 producer
	W1Batch  int // > 1: every W1 configuration runs again with a producer sending batches of this many (SendBatch)
	W2Rooms  []int
	W2Window int // messages kept outstanding per room by the W2 producers
	W2Warm   time.Duration
	W2Dur    time.Duration
	W3Subs   int
	W3N      int
	W4N      int

	W6Parts      []string // parts of W6 to run: clients, rooms, backlog (default all)
	W6Clients    []int    // clients in the system for the Ping cost curve
	W6PingN      int      // Pings per repetition
	W6Rooms      []int    // rooms followed by one reader
	W6Deliveries int      // deliveries per repetition
	W6Backlog    []int    // backlog sizes for the release latency curve
	W6LatN       int      // messages consumed per repetition at each backlog
}

// FullConfig is the configuration of make bench.
func FullConfig() Config {
	return Config{
		Reps:         1,
		Rounds:       3,
		PayloadBytes: 100,
		PingN:        20000,
		FanoutS:      []int{1, 10, 100},
		FanoutN:      func(s int) int { return max(1000, 5000/s) },
		W1S:          []int{1, 10, 100},
		W1Msgs: func(s int) int {
			switch {
			case s <= 1:
				return 6000
			case s <= 10:
				return 2500
			}
			return 600
		},
		W1Window:     64,
		W1Batch:      32,
		W2Rooms:      []int{100, 1000},
		W2Window:     2,
		W2Warm:       time.Second,
		W2Dur:        4 * time.Second,
		W3Subs:       100,
		W3N:          4000,
		W4N:          100000,
		W6Clients:    []int{10, 100, 1000, 10000, 20000},
		W6PingN:      2000,
		W6Rooms:      []int{1, 10, 100, 1000, 10000},
		W6Deliveries: 1000,
		W6Backlog:    []int{10, 1000, 100000, 1000000},
		W6LatN:       2000,
	}
}

// ShortConfig runs every workload at tiny sizes in a few seconds.
func ShortConfig() Config {
	return Config{
		Short:        true,
		Reps:         1,
		Rounds:       1,
		PayloadBytes: 100,
		PingN:        200,
		FanoutS:      []int{1, 4},
		FanoutN:      func(int) int { return 100 },
		W1S:          []int{1, 4},
		W1Msgs:       func(int) int { return 60 },
		W1Window:     8,
		W1Batch:      4,
		W2Rooms:      []int{10},
		W2Window:     2,
		W2Warm:       50 * time.Millisecond,
		W2Dur:        250 * time.Millisecond,
		W3Subs:       4,
		W3N:          100,
		W4N:          500,
		W6Clients:    []int{10, 50},
		W6PingN:      50,
		W6Rooms:      []int{1, 20},
		W6Deliveries: 30,
		W6Backlog:    []int{10, 200},
		W6LatN:       40,
	}
}

func (c Config) wantsW6(part string) bool {
	return len(c.W6Parts) == 0 || slices.Contains(c.W6Parts, part)
}

func (c Config) wants(step string) bool {
	return step == "REFS" || len(c.Only) == 0 || slices.Contains(c.Only, step)
}
