// Command stdout traces one message through a room of three subscribers
// and prints the spans, as JSON, on standard output: the producer's
// "send" span and one consumer span per subscriber, all in one trace.
//
//	go run ./examples/stdout -redis 127.0.0.1:6379
//	REDIS_ADDR=host:port go run ./examples/stdout
//
// It uses its own key prefix and deletes nothing else.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/syncfanout/syncfanout/contrib/otelsyncfanout"
	"github.com/syncfanout/syncfanout/queue"
)

func main() {
	def := os.Getenv("REDIS_ADDR")
	if def == "" {
		def = "127.0.0.1:6379"
	}
	addr := flag.String("redis", def, "Redis host:port (default $REDIS_ADDR, else 127.0.0.1:6379)")
	prefix := flag.String("prefix", "sfotel-example", "key prefix")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, *addr, *prefix, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "stdout:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, prefix string, out io.Writer) error {
	exp, err := stdouttrace.New(stdouttrace.WithWriter(out), stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	// A syncer exports each span as it ends; production code would batch.
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tracer := otelsyncfanout.NewTracer(otelsyncfanout.WithTracerProvider(tp))

	// Each Queue stands for a process: its own client, the same tracer
	// configuration, the same prefix.
	newQueue := func() (*queue.Queue, func(), error) {
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix, Tracer: tracer})
		if err != nil {
			_ = rdb.Close()
			return nil, nil, err
		}
		return q, func() { _ = q.Close(); _ = rdb.Close() }, nil
	}
	producer, closeProducer, err := newQueue()
	if err != nil {
		return err
	}
	defer closeProducer()

	const room = "traced-room"
	var subs []*queue.Subscription
	for range 3 {
		q, closeQ, err := newQueue()
		if err != nil {
			return err
		}
		defer closeQ()
		s, err := q.Join(ctx, room)
		if err != nil {
			return err
		}
		subs = append(subs, s)
	}

	ctx, span := tp.Tracer("example").Start(ctx, "handle request")
	if _, err := producer.Send(ctx, room, "hello, traced world", queue.Producer("example")); err != nil {
		return err
	}
	span.End()
	for _, s := range subs {
		m, err := s.Next(ctx)
		if err != nil {
			return err
		}
		// m.Context() carries the consumer span: start child spans from it.
		if err := m.Ack(ctx); err != nil {
			return err
		}
		if err := s.Close(ctx); err != nil {
			return err
		}
	}
	return nil
}
