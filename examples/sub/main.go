// Command sub keeps subscribers in a room, like the original library's
// subscribing example.
//
// By default it is a gateway: it creates -clients client IDs, subscribes
// them, pings for them every second and unsubscribes them on exit. Those
// members hold the room's barrier, but this process receives nothing: a
// Worker delivers their messages (see examples/worker), as in the
// original library. With -join it uses the in-process form instead: each
// subscriber is a q.Join subscription that receives, prints and acks its
// messages.
//
//	go run ./examples/sub -clients 2
//	go run ./examples/sub -join -clients 3 -work 200ms
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/syncfanout/syncfanout/examples/internal/exredis"
	"github.com/syncfanout/syncfanout/queue"
)

type config struct {
	addr, prefix, room string
	duration, work     time.Duration
	clients            int
	join               bool
}

func main() {
	var c config
	flag.StringVar(&c.addr, "redis", exredis.AddrDefault(), "Redis host:port or URL (default $REDIS_URL, else $REDIS_ADDR, else 127.0.0.1:6379)")
	flag.StringVar(&c.prefix, "prefix", "syncfanout", "key prefix, the same for every process of a deployment")
	flag.StringVar(&c.room, "room", "demo-room", "room to subscribe to")
	flag.DurationVar(&c.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	flag.IntVar(&c.clients, "clients", 1, "number of subscribers")
	flag.BoolVar(&c.join, "join", false, "in-process subscribers (q.Join) that receive and ack, instead of gateway members")
	flag.DurationVar(&c.work, "work", 0, "with -join: time spent on each message before acking it")
	flag.Parse()

	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "sub:", err)
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

	if c.join {
		err = joined(ctx, q, c)
	} else {
		err = gateway(ctx, q, c)
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// gateway is the original example's flow: client IDs, Subscribe, a Ping
// per client every second, Unsubscribe on the way out.
func gateway(ctx context.Context, q *queue.Queue, c config) error {
	var ids []string
	defer func() {
		// ctx is over by now; leaving must still reach Redis, or the room
		// waits for these members until they time out.
		bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, id := range ids {
			if err := q.Unsubscribe(bg, id, c.room); err != nil && !errors.Is(err, queue.ErrNotMember) {
				fmt.Fprintf(os.Stderr, "sub: unsubscribe %s: %v\n", id, err)
			}
		}
		fmt.Printf("unsubscribed %d clients\n", len(ids))
	}()
	for range c.clients {
		id, err := q.CreateClientID(ctx)
		if err != nil {
			return err
		}
		if err := q.Subscribe(ctx, id, c.room); err != nil {
			return err
		}
		ids = append(ids, id)
		fmt.Printf("subscribed client %s to room %q\n", id, c.room)
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		// Every client must be pinged at least once per ClientTimeout; one
		// Ping covers all the rooms of the client.
		for _, id := range ids {
			err := q.Ping(ctx, id)
			var ev *queue.EvictedError
			switch {
			case errors.As(err, &ev):
				// Evicted (this process stalled for longer than the
				// timeout): subscribe again, as the original README advises.
				fmt.Printf("client %s was evicted from %v; subscribing again\n", id, ev.Rooms)
				if err := q.Subscribe(ctx, id, c.room); err != nil {
					return err
				}
			case err != nil:
				return err
			}
		}
		if err := report(ctx, q, c.room); err != nil {
			return err
		}
	}
}

// joined runs in-process subscribers: the Queue beats for them, and each
// receives and acks its messages.
func joined(ctx context.Context, q *queue.Queue, c config) error {
	var wg sync.WaitGroup
	errs := make(chan error, c.clients)
	for n := 1; n <= c.clients; n++ {
		sub, err := q.Join(ctx, c.room)
		if err != nil {
			return err
		}
		fmt.Printf("subscriber %d joined room %q as client %s\n", n, c.room, sub.ClientID())
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Close leaves the room: nobody waits for this subscriber after
			// it is gone.
			defer sub.Close(context.WithoutCancel(ctx))
			if err := consume(ctx, sub, n, c.work); err != nil && ctx.Err() == nil {
				errs <- err
			}
		}()
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errs:
			break loop
		case <-tick.C:
			if err = report(ctx, q, c.room); err != nil && ctx.Err() == nil {
				break loop
			}
		}
	}
	wg.Wait()
	return err
}

func consume(ctx context.Context, sub *queue.Subscription, n int, work time.Duration) error {
	for m, err := range sub.Messages(ctx) {
		var re *queue.ReadError
		if errors.As(err, &re) {
			// Redis is unreachable: the subscription waits for it.
			fmt.Fprintf(os.Stderr, "subscriber %d: %v\n", n, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", n, err)
		}
		var text string
		if err := m.Decode(&text); err != nil {
			text = fmt.Sprintf("(%d bytes)", len(m.Data()))
		}
		kind := fmt.Sprintf("p%d", m.Priority)
		if m.OutOfBand {
			kind = "OOB"
		}
		fmt.Printf("subscriber %d received #%d %s %q (latency %v)\n", n, m.ID, kind, text, m.Latency().Round(time.Millisecond))
		if work > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(work):
			}
		}
		if err := m.Ack(ctx); err != nil && !errors.Is(err, queue.ErrStaleAck) {
			return fmt.Errorf("subscriber %d: ack #%d: %w", n, m.ID, err)
		}
	}
	return nil
}

// report prints the deployment's metrics (the original's GetMetrics) and
// the room's barrier.
func report(ctx context.Context, q *queue.Queue, room string) error {
	m, err := q.Metrics(ctx, 10)
	if err != nil {
		return err
	}
	st, err := q.RoomState(ctx, room)
	if err != nil {
		return err
	}
	inFlight := "none"
	if st.InFlight != nil {
		inFlight = fmt.Sprintf("#%d, waiting for %d of %d", st.InFlight.Seq, len(st.Missing), len(st.Members))
	}
	fmt.Printf("%s  metrics: rooms=%d backlog=%d members=%d top=%v | room %q: pending=%d in flight=%s\n",
		time.Now().Format("15:04:05"), m.KnownRooms, m.Backlog, m.Members, m.TopRooms, room, st.Pending, inFlight)
	return nil
}
