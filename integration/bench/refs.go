package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Refs are the limit references, measured in the same run as the workloads
// so that every figure can be read as a ratio.
type Refs struct {
	PingRate Figure // PINGs per second on one connection, one at a time
	PingRTT  Figure // median PING round trip, µs
	PingCPU  Figure // Redis CPU per PING, µs: the floor of one round trip's server cost
	// Fanout[S]: messages per second that reach all S readers when a
	// producer XADDs (one at a time) and each reader XREADs on its own
	// connection: Redis Streams fanout with no barrier.
	Fanout map[int]*Figure
}

// RTTMicros is the run's round trip: the median of the PING medians.
func (r *Refs) RTTMicros() float64 { return r.PingRTT.Median() }

func measureRefs(ctx context.Context, env *Env, rep *Report) error {
	r := &rep.Refs
	r.Fanout = map[int]*Figure{}
	for i := 0; i < env.cfg.Reps; i++ {
		s0, err := env.snapshot(ctx)
		if err != nil {
			return err
		}
		rate, p50, err := pingLoop(ctx, env, env.cfg.PingN)
		if err != nil {
			return err
		}
		s1, err := env.snapshot(ctx)
		if err != nil {
			return err
		}
		cpu := costBetween(s0, s1).CPUMicros / float64(env.cfg.PingN)
		r.PingRate.Add(rate)
		r.PingRTT.Add(micros(p50))
		r.PingCPU.Add(cpu)
		env.logf("ref PING: %s/s, p50 %s, %s Redis CPU per PING", fInt(rate), fMicros(micros(p50)), fMicros(cpu))
	}
	for _, s := range env.cfg.FanoutS {
		fig := &Figure{}
		r.Fanout[s] = fig
		for i := 0; i < env.cfg.Reps; i++ {
			rate, err := streamsFanout(ctx, env, s, env.cfg.FanoutN(s))
			if err != nil {
				return err
			}
			fig.Add(rate)
			env.logf("ref streams fanout S=%d: %s msgs/s", s, fInt(rate))
		}
	}
	return nil
}

// pingLoop sends n PINGs one after the other on one connection.
func pingLoop(ctx context.Context, env *Env, n int) (rate float64, p50 time.Duration, err error) {
	c := env.client(1)
	defer env.closeClients()
	if err := c.Ping(ctx).Err(); err != nil { // dial outside the measurement
		return 0, 0, err
	}
	lat := make(Latencies, n)
	start := time.Now()
	for i := range lat {
		t := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			return 0, 0, err
		}
		lat[i] = time.Since(t)
	}
	el := time.Since(start)
	return float64(n) / el.Seconds(), lat.Quantile(0.5), nil
}

// streamsFanout is the ceiling of fanout without a barrier: one producer
// connection XADDs n messages one at a time, s readers (a connection each)
// XREAD them; the rate counts until the slowest reader has them all.
func streamsFanout(ctx context.Context, env *Env, s, n int) (float64, error) {
	prefix := newPrefix("ref")
	defer func() { _ = env.cleanup(context.WithoutCancel(ctx), prefix) }()
	defer env.closeClients()
	key := prefix + ":s"
	payload := make([]byte, env.cfg.PayloadBytes)

	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	readers := make([]*redis.Client, s)
	for i := range readers {
		readers[i] = env.client(1)
		if err := readers[i].Ping(ctx).Err(); err != nil {
			return 0, err
		}
	}
	var wg sync.WaitGroup
	var failed error
	var once sync.Once
	ready := make(chan struct{}, s)
	for _, c := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last, got := "0-0", 0
			ready <- struct{}{}
			for got < n {
				res, err := c.XRead(ctx, &redis.XReadArgs{Streams: []string{key, last}, Count: 1000, Block: 5 * time.Second}).Result()
				if errors.Is(err, redis.Nil) {
					continue
				}
				if err != nil {
					once.Do(func() { failed = err; cancel() })
					return
				}
				for _, st := range res {
					got += len(st.Messages)
					if len(st.Messages) > 0 {
						last = st.Messages[len(st.Messages)-1].ID
					}
				}
			}
		}()
	}
	for range readers {
		<-ready
	}
	// The readers' first XREADs are (almost surely) blocked by now; one
	// that is not simply reads the first entries from 0-0.
	prod := env.client(1)
	if err := prod.Ping(ctx).Err(); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := prod.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"d", payload}}).Err(); err != nil {
			cancel()
			wg.Wait()
			return 0, fmt.Errorf("XADD: %w", err)
		}
	}
	wg.Wait()
	el := time.Since(start)
	if failed != nil {
		return 0, fmt.Errorf("XREAD: %w", failed)
	}
	return float64(n) / el.Seconds(), nil
}
