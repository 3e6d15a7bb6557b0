// Command demo shows lock-step fanout on a real Redis in a few seconds:
// one room, three in-process subscribers of different speeds, a producer
// sending prioritized messages and one out-of-band message, then a replay
// of the room's delivery stream.
//
//	go run ./examples/demo              # starts a throwaway redis-server
//	REDIS_ADDR=host:port go run ./examples/demo
//	go run ./examples/demo -duration 1m # repeat the scenario for a minute
//
// The room stays for inspection with the syncfanout command: on a
// throwaway server, the demo keeps the server up until Enter or Ctrl-C
// when it runs in a terminal (or with -keep), and prints the commands to
// run meanwhile; on your own server, -keep leaves its keys in place.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/examples/internal/exredis"
	"github.com/syncfanout/syncfanout/queue"
)

func main() {
	addr := flag.String("redis", "", "Redis host:port or URL (default $REDIS_URL, else $REDIS_ADDR, else a throwaway redis-server)")
	duration := flag.Duration("duration", 0, "repeat the scenario for this long (0: run it once)")
	keep := flag.Bool("keep", false, "keep the room for inspection: the throwaway server stays up until Enter or Ctrl-C even when stdin is not a terminal; on your server, its keys are not deleted")
	flag.Parse()

	if err := run(*addr, *duration, *keep); err != nil {
		if errors.Is(err, exredis.ErrNoRedisServer) {
			fmt.Fprintln(os.Stderr, err)
		} else {
			fmt.Fprintln(os.Stderr, "demo:", err)
		}
		os.Exit(1)
	}
}

func run(addr string, duration time.Duration, keep bool) error {
	ctx, stop := exredis.RunContext(0)
	defer stop()

	if addr == "" {
		addr = exredis.EnvValue()
	}
	prefix := "sfdemo"
	external := addr != ""
	if external {
		// A shared server: keep to our own keys and remove them at the end.
		prefix = "sfdemo-" + randomHex(4)
	} else {
		srv, err := exredis.Start(ctx)
		if err != nil {
			return err
		}
		defer srv.Stop()
		addr = srv.Addr
		fmt.Printf("Redis: started a throwaway redis-server on %s (no persistence, stopped at exit)\n", addr)
	}

	rdb, err := exredis.Connect(ctx, addr)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if external && !keep {
		fmt.Printf("Redis: %s (keys under %q, deleted at exit)\n", exredis.Redact(addr), prefix)
		defer deleteKeys(rdb, prefix)
	} else if external {
		fmt.Printf("Redis: %s (keys under %q, kept at exit)\n", exredis.Redact(addr), prefix)
	}
	// On a throwaway server, the room is kept while the server is: until
	// Enter when someone is at the terminal to press it.
	keep = keep || (!external && exredis.IsTerminal(os.Stdin))
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		return err
	}
	defer q.Close()

	begin := time.Now()
	for round := 1; ; round++ {
		room := fmt.Sprintf("demo-%d", round)
		r, err := runScenario(ctx, rdb, q, room)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Println("\ninterrupted")
				return nil
			}
			return err
		}
		if round == 1 {
			r.print()
			if err := replay(ctx, q, r); err != nil {
				return err
			}
			if keep {
				defer inspect(ctx, addr, prefix, room, external)
			}
		} else {
			fmt.Printf("round %d: %s\n", round, r.summary())
			if !r.ok() {
				r.print()
			}
		}
		if !r.ok() {
			return errors.New("a check failed")
		}
		if duration <= 0 || time.Since(begin) >= duration {
			return nil
		}
	}
}

// inspect prints the commands that show the room with the syncfanout
// tool and, on a throwaway server, waits for Enter (or Ctrl-C) before the
// server stops.
func inspect(ctx context.Context, addr, prefix, room string, external bool) {
	if ctx.Err() != nil {
		return
	}
	fmt.Printf("\nThe room is kept for inspection. From this repository, in another terminal:\n")
	for _, cmd := range []string{"state", "replay"} {
		fmt.Printf("  go run ./cmd/syncfanout --redis %s --prefix %s %s %s\n", exredis.Redact(addr), prefix, cmd, room)
	}
	if external {
		return
	}
	fmt.Printf("Press Enter (or Ctrl-C) to stop the throwaway redis-server and exit.\n")
	exredis.WaitForEnter(ctx, os.Stdin)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// deleteKeys removes what the demo wrote on a server it did not start.
func deleteKeys(rdb redis.UniversalClient, prefix string) {
	// The run's context may already be cancelled (Ctrl-C).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+":*", 500).Iterator()
	for iter.Next(ctx) {
		rdb.Unlink(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: deleting keys %s:*: %v\n", prefix, err)
	}
}
