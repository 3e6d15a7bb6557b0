// Command worker delivers messages to clients and acks them on their
// behalf, like the original library's worker example, printing the
// worker's metrics every second.
//
// By default it is a follow-all worker, the original deployment: the
// clients are subscribed by another process (examples/sub keeps them alive
// with Ping) and this worker delivers for every member of every room.
// With -clients N it is a gateway instead: it hosts N clients of -room
// itself (Worker.Subscribe) and keeps them alive.
//
//	go run ./examples/sub -clients 2 &      # members, pinged
//	go run ./examples/worker                # delivers and acks for them
//	go run ./examples/pub                   # one message a second
//
//	go run ./examples/worker -clients 3 -room demo-room   # self-hosted clients
//
// It stops on Ctrl-C or after -duration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/syncfanout/syncfanout/examples/internal/exredis"
	"github.com/syncfanout/syncfanout/queue"
)

type config struct {
	addr, prefix, room string
	duration, work     time.Duration
	clients            int
}

func main() {
	var c config
	flag.StringVar(&c.addr, "redis", exredis.AddrDefault(), "Redis host:port or URL (default $REDIS_URL, else $REDIS_ADDR, else 127.0.0.1:6379)")
	flag.StringVar(&c.prefix, "prefix", "syncfanout", "key prefix, the same for every process of a deployment")
	flag.StringVar(&c.room, "room", "demo-room", "with -clients: the room they join; otherwise the room whose deliveries are printed (\"\" for all)")
	flag.DurationVar(&c.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	flag.IntVar(&c.clients, "clients", 0, "host this many clients of -room here instead of following every room")
	flag.DurationVar(&c.work, "work", 0, "time each client spends on a message before acking it")
	flag.Parse()

	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	ctx, stop := exredis.RunContext(c.duration)
	defer stop()

	rdb, err := exredis.Connect(ctx, c.addr)
	if err != nil {
		return err
	}
	defer rdb.Close()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: c.prefix, ClientTimeout: 15 * time.Second})
	if err != nil {
		return err
	}
	defer q.Close()

	w, err := q.NewWorker(queue.WorkerOptions{
		FollowAll:     c.clients == 0,
		AutoHeartbeat: c.clients > 0,
		HandleMessage: func(ctx context.Context, clientID string, m *queue.Message) error {
			var text string
			if err := m.Decode(&text); err != nil {
				text = fmt.Sprintf("(%d bytes)", len(m.Data()))
			}
			if c.room == "" || m.Room == c.room || c.clients > 0 {
				kind := fmt.Sprintf("p%d", m.Priority)
				if m.OutOfBand {
					kind = "OOB"
				}
				fmt.Printf("received: client[%s] room[%s] #%d %s: %q\n", clientID, m.Room, m.ID, kind, text)
			}
			if c.work > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(c.work):
				}
			}
			// The end client would ack when done with the message; here the
			// worker acks for it (acks of one room are sent together).
			if err := m.Ack(ctx); err != nil && !errors.Is(err, queue.ErrStaleAck) && ctx.Err() == nil {
				return fmt.Errorf("ack #%d: %w", m.ID, err)
			}
			return nil
		},
		HandleClientTimeout: func(_ context.Context, clientID, room string) error {
			fmt.Printf("client %s timed out in room %q\n", clientID, room)
			return nil
		},
	})
	if err != nil {
		return err
	}
	// Close leaves the rooms of the clients hosted here, so nobody waits
	// for them after this process is gone.
	defer w.Close()

	for range c.clients {
		id, err := q.CreateClientID(ctx)
		if err != nil {
			return err
		}
		if err := w.Subscribe(ctx, id, c.room); err != nil {
			return err
		}
		fmt.Printf("hosting client %s in room %q\n", id, c.room)
	}
	if c.clients == 0 {
		fmt.Println("following every room; subscribe clients with examples/sub")
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		m := w.Stats()
		fmt.Printf("%s  metrics: received=%d delivered=%d invalid=%d handler errors=%d timeouts=%d acks=%d in %d calls | rooms=%d clients=%d | latency min/avg/max %v/%v/%v over %d\n",
			time.Now().Format("15:04:05"), m.Received, m.Delivered, m.Invalid, m.HandlerErrors+m.HandlerPanics, m.ClientTimeouts,
			m.Acks, m.AckCalls, m.Rooms, m.Clients,
			m.LatencyMin.Round(time.Microsecond), m.LatencyAvg.Round(time.Microsecond), m.LatencyMax.Round(time.Microsecond), m.LatencySamples)
	}
}
