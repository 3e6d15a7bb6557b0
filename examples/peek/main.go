// Command peek prints, every second, the head of a room's pending queue
// in release order, like the original library's peek example. It changes
// nothing in the room.
//
//	go run ./examples/peek -room demo-room -limit 10
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/syncfanout/syncfanout/examples/internal/exredis"
	"github.com/syncfanout/syncfanout/queue"
)

func main() {
	addr := flag.String("redis", exredis.AddrDefault(), "Redis host:port or URL (default $REDIS_URL, else $REDIS_ADDR, else 127.0.0.1:6379)")
	prefix := flag.String("prefix", "syncfanout", "key prefix, the same for every process of a deployment")
	room := flag.String("room", "demo-room", "room to look at")
	duration := flag.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	limit := flag.Int("limit", 10, "pending messages to show")
	flag.Parse()

	if err := run(*addr, *prefix, *room, *duration, *limit); err != nil {
		fmt.Fprintln(os.Stderr, "peek:", err)
		os.Exit(1)
	}
}

func run(addr, prefix, room string, duration time.Duration, limit int) error {
	ctx, stop := exredis.RunContext(duration)
	defer stop()

	rdb, err := exredis.Connect(ctx, addr)
	if err != nil {
		return err
	}
	defer rdb.Close()
	// Housekeeping is for processes that stay around; a read-only tool
	// leaves it to the others.
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix, DisableHousekeeping: true})
	if err != nil {
		return err
	}
	defer q.Close()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := show(ctx, q, room, limit); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func show(ctx context.Context, q *queue.Queue, room string, limit int) error {
	st, err := q.RoomState(ctx, room)
	if err != nil {
		return err
	}
	msgs, err := q.Peek(ctx, room, 0, limit)
	if err != nil {
		return err
	}
	inFlight := "none"
	if st.InFlight != nil {
		inFlight = fmt.Sprintf("#%d for %v, waiting for %d of %d members", st.InFlight.Seq, st.InFlight.Age.Round(time.Millisecond), len(st.Missing), len(st.Members))
	}
	fmt.Printf("%s  room %q: %d pending, in flight: %s\n", time.Now().Format("15:04:05"), room, st.Pending, inFlight)
	for i, m := range msgs {
		var text string
		if err := m.Decode(&text); err != nil {
			text = fmt.Sprintf("(%d bytes)", len(m.Data()))
		}
		fmt.Printf("  %2d: #%d p%d from %q, queued %v ago: %s\n", i, m.ID, m.Priority, m.Producer, st.Now.Sub(m.EnqueuedAt).Round(time.Millisecond), text)
	}
	return nil
}
