// Command pub sends a message to a room every interval, like the
// original library's publishing example.
//
//	go run ./examples/pub -room demo-room -priority 3
//	go run ./examples/pub -oob          # out-of-band: ignores the barrier
package main

import (
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
	room := flag.String("room", "demo-room", "room to send to")
	duration := flag.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	interval := flag.Duration("interval", time.Second, "time between two sends")
	priority := flag.Int("priority", queue.DefaultPriority, "priority, 0 (released first) to 9")
	producer := flag.String("producer", "pub", "producer ID stored with each message")
	oob := flag.Bool("oob", false, "send out-of-band: delivered at once, never acked")
	flag.Parse()

	if err := run(*addr, *prefix, *room, *duration, *interval, *priority, *producer, *oob); err != nil {
		fmt.Fprintln(os.Stderr, "pub:", err)
		os.Exit(1)
	}
}

func run(addr, prefix, room string, duration, interval time.Duration, priority int, producer string, oob bool) error {
	ctx, stop := exredis.RunContext(duration)
	defer stop()

	rdb, err := exredis.Connect(ctx, addr)
	if err != nil {
		return err
	}
	defer rdb.Close()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		return err
	}
	defer q.Close()

	fmt.Printf("sending to room %q on %s every %v (Ctrl-C to stop)\n", room, addr, interval)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 1; ; i++ {
		text := fmt.Sprintf("message %d from %s", i, producer)
		var id uint64
		if oob {
			id, err = q.SendOutOfBand(ctx, room, text, queue.Producer(producer))
		} else {
			id, err = q.Send(ctx, room, text, queue.Priority(priority), queue.Producer(producer))
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fmt.Printf("%s  sent #%d %q\n", time.Now().Format("15:04:05.000"), id, text)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
