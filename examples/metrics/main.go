// Command metrics serves a Queue's Prometheus metrics while a small live
// workload runs, so the syncfanout_ series can be seen moving:
//
//	go run ./examples/metrics                  # starts a throwaway redis-server
//	curl -s 127.0.0.1:2112/metrics | grep ^syncfanout_
//
// The workload: three rooms with three members each that ack after a few
// milliseconds, a producer sending to them, an out-of-band message now and
// then, a member that sometimes acks twice (a stale ack) and one in room-2
// that sometimes stalls past the ack timeout, is evicted and joins again.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/syncfanout/syncfanout/examples/internal/exredis"
	"github.com/syncfanout/syncfanout/metrics"
	"github.com/syncfanout/syncfanout/queue"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:2112", "listen address of the /metrics endpoint")
	flag.StringVar(&cfg.redis, "redis", exredis.EnvValue(),
		"Redis host:port or URL, several comma-separated host:port for a cluster (default $REDIS_URL, else $REDIS_ADDR; empty: start a throwaway redis-server)")
	flag.StringVar(&cfg.prefix, "prefix", "syncfanout-example", "key prefix of the example's rooms")
	duration := flag.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	flag.Parse()

	ctx, stop := exredis.RunContext(*duration)
	defer stop()
	cfg.ready = func(addr, redisAddr string) {
		fmt.Printf("Redis: %s\nserving http://%s/metrics (Ctrl-C to stop)\n", redisAddr, addr)
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "metrics example:", err)
		os.Exit(1)
	}
}

type config struct {
	addr   string
	redis  string
	prefix string
	// ready is told the address the endpoint listens on once it serves.
	ready func(addr, redisAddr string)
}

// run serves /metrics and drives the workload until ctx ends.
func run(ctx context.Context, cfg config) error {
	redisAddr := cfg.redis
	if redisAddr == "" {
		srv, err := exredis.Start(ctx)
		if err != nil {
			return err
		}
		defer srv.Stop()
		redisAddr = srv.Addr + " (throwaway redis-server, stopped at exit)"
		cfg.redis = srv.Addr
	}
	rdb, err := exredis.Connect(ctx, cfg.redis)
	if err != nil {
		return err
	}
	defer rdb.Close()

	q, err := queue.New(ctx, rdb, queue.Options{
		Prefix:        cfg.prefix,
		ClientTimeout: 3 * time.Second,
		AckTimeout:    time.Second,
	})
	if err != nil {
		return err
	}
	defer q.Close()

	// The collector goes on a registry of our own: never the default one
	// behind anybody's back.
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(q, metrics.Options{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "syncfanout metrics example: see /metrics")
	})
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	var wg sync.WaitGroup
	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	rooms := []string{"room-0", "room-1", "room-2"}
	for _, room := range rooms {
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				member(work, q, room, behaviour(room, i))
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		produce(work, q, rooms)
	}()
	if cfg.ready != nil {
		cfg.ready(ln.Addr().String(), redisAddr)
	}

	select {
	case <-ctx.Done():
	case err = <-served:
	}
	stopWork()
	wg.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := hs.Shutdown(sctx); err == nil && serr != nil {
		err = serr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

type kind int

const (
	steady  kind = iota
	doubler      // sometimes acks twice: the second is a stale ack
	staller      // sometimes stalls past the ack timeout and is evicted
)

func behaviour(room string, i int) kind {
	switch {
	case i == 1:
		return doubler
	case i == 2 && room == "room-2":
		return staller
	}
	return steady
}

// member joins a room and acks what it gets; after an eviction it joins
// again, as a real subscriber would.
func member(ctx context.Context, q *queue.Queue, room string, k kind) {
	for ctx.Err() == nil {
		sub, err := q.Join(ctx, room)
		if err != nil {
			pause(ctx, 200*time.Millisecond)
			continue
		}
		var prev *queue.Message
		for m, err := range sub.Messages(ctx) {
			if err != nil {
				break // evicted or removed: join again
			}
			wait := time.Duration(rand.IntN(15)) * time.Millisecond
			if k == staller && rand.IntN(40) == 0 {
				wait = 1500 * time.Millisecond // past AckTimeout
			}
			if !pause(ctx, wait) {
				break
			}
			_ = m.Ack(ctx)
			if k == doubler && prev != nil && rand.IntN(10) == 0 {
				_ = prev.Ack(ctx) // stale: counted under reason="stale"
			}
			if m.AckToken != "" {
				prev = m
			}
		}
		closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = sub.Close(closeCtx)
		cancel()
	}
}

func produce(ctx context.Context, q *queue.Queue, rooms []string) {
	for n := 0; ctx.Err() == nil; n++ {
		room := rooms[rand.IntN(len(rooms))]
		_, _ = q.Send(ctx, room, map[string]any{"n": n, "at": time.Now().UnixMilli()},
			queue.Priority(rand.IntN(10)), queue.Producer("example"))
		if n%50 == 0 {
			_, _ = q.SendOutOfBand(ctx, room, "heads up", queue.Producer("example"))
		}
		if !pause(ctx, 20*time.Millisecond) {
			return
		}
	}
}

// pause waits d or until ctx ends; it reports whether ctx is still alive.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
