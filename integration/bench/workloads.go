package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/queue"
)

// CostFigures are the per-message Redis costs of a workload.
type CostFigures struct {
	CPU    Figure // Redis CPU µs per message
	Sys    Figure // of which in the kernel
	Script Figure // of which running scripts
	Cmds   Figure // top-level commands per message
	RTs    Figure // round trips (socket writes) per message
	Inner  Figure // commands run inside scripts per message
	Evals  Figure // script calls (FCALL, EVALSHA, EVAL) per message
	Reads  Figure // XREADs per message
}

func (c *CostFigures) add(cost Cost, msgs int) {
	n := float64(msgs)
	c.CPU.Add(cost.CPUMicros / n)
	c.Sys.Add(cost.SysMicros / n)
	c.Script.Add(cost.ScriptMicros / n)
	c.Cmds.Add(float64(cost.TopLevel) / n)
	c.RTs.Add(float64(cost.RoundTrips) / n)
	c.Inner.Add(float64(cost.Inner) / n)
	c.Evals.Add(float64(cost.ByCommand["fcall"]+cost.ByCommand["evalsha"]+cost.ByCommand["eval"]) / n)
	c.Reads.Add(float64(cost.ByCommand["xread"]) / n)
}

// W1Row is one lock-step configuration.
type W1Row struct {
	Mode        string
	S           int
	Batch       int    // > 1: the producer sends with SendBatch, this many per call
	Rate        Figure // messages per second fully acked
	P50, P99    Figure // release latency, µs
	Cost        CostFigures
	Samples     Latencies // every release latency of every repetition
	NotMeasured string
}

func runW1(ctx context.Context, env *Env, rep *Report) error {
	modes := env.cfg.W1Modes
	if len(modes) == 0 {
		modes = []string{ModeGateway, ModeSeparate, ModeProcess}
	}
	for _, mode := range modes {
		for _, s := range env.cfg.W1S {
			batches := []int{0}
			if env.cfg.W1Batch > 1 {
				batches = append(batches, env.cfg.W1Batch)
			}
			for _, batch := range batches {
				if err := runW1Row(ctx, env, rep, mode, s, batch); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func runW1Row(ctx context.Context, env *Env, rep *Report, mode string, s, batch int) error {
	row := &W1Row{Mode: mode, S: s, Batch: batch}
	rep.W1 = append(rep.W1, row)
	for i := 0; i < env.cfg.Reps; i++ {
		spec := lockstepSpec{Mode: mode, S: s, N: env.cfg.W1Msgs(s), Window: env.cfg.W1Window, Producers: 2}
		if batch > 1 {
			spec.Producers, spec.Batch = 1, batch
		}
		res, err := runLockstep(ctx, env, spec)
		if err != nil {
			return fmt.Errorf("W1 %s: %w", row.Label(), err)
		}
		row.Rate.Add(res.Rate)
		row.P50.Add(micros(res.Release.Quantile(0.5)))
		row.P99.Add(micros(res.Release.Quantile(0.99)))
		row.Cost.add(res.Cost, res.Msgs)
		row.Samples = append(row.Samples, res.Release...)
		env.logf("W1 %s: %s msgs/s, release p50 %s p99 %s, %s Redis CPU/msg (%.0f%% kernel), %.2f cmds/msg, %s bench-process CPU/msg (%s/delivery, %.1f allocs/delivery, %.2f wakeups/delivery)",
			row.Label(), fInt(res.Rate), fMicros(micros(res.Release.Quantile(0.5))), fMicros(micros(res.Release.Quantile(0.99))),
			fMicros(res.Cost.CPUMicros/float64(res.Msgs)), 100*res.Cost.SysMicros/res.Cost.CPUMicros, float64(res.Cost.TopLevel)/float64(res.Msgs),
			fMicros(micros(res.ProcCPU)/float64(res.Msgs)), fMicros(micros(res.ProcCPU)/float64(res.Msgs*s)),
			float64(res.Mallocs)/float64(res.Msgs*s), res.Wakeups/float64(res.Msgs*s))
	}
	return nil
}

// Producer names how the row's producer sends.
func (row *W1Row) Producer() string {
	if row.Batch > 1 {
		return fmt.Sprintf("SendBatch of %d", row.Batch)
	}
	return "Send"
}

// Label names the row in logs and tables.
func (row *W1Row) Label() string {
	l := fmt.Sprintf("%s S=%d", row.Mode, row.S)
	if row.Batch > 1 {
		l += fmt.Sprintf(" SendBatch %d", row.Batch)
	}
	return l
}

// W2Row is one many-rooms configuration.
type W2Row struct {
	Rooms      int
	Rate       Figure // messages per second fully acked
	Deliveries Figure // deliveries per second (messages x 2)
	Cost       CostFigures
}

const (
	w2Producers          = 4
	w2SendersPerProducer = 4
)

func runW2(ctx context.Context, env *Env, rep *Report) error {
	for _, rooms := range env.cfg.W2Rooms {
		row := &W2Row{Rooms: rooms}
		rep.W2 = append(rep.W2, row)
		for i := 0; i < env.cfg.Reps; i++ {
			rate, deliv, cost, msgs, err := w2Once(ctx, env, rooms)
			if err != nil {
				return fmt.Errorf("W2 %d rooms: %w", rooms, err)
			}
			row.Rate.Add(rate)
			row.Deliveries.Add(deliv)
			row.Cost.add(cost, msgs)
			env.logf("W2 %d rooms x 2: %s msgs/s, %s deliveries/s, %s Redis CPU/msg, %.2f cmds/msg",
				rooms, fInt(rate), fInt(deliv), fMicros(cost.CPUMicros/float64(msgs)), float64(cost.TopLevel)/float64(msgs))
		}
	}
	return nil
}

// w2Once runs rooms lock-step rooms of two subscribers each, hosted by two
// processes (one Queue each, one q.Join per room), fed by 4 producers that
// keep W2Window messages outstanding in every room.
func w2Once(ctx context.Context, env *Env, rooms int) (rate, deliv float64, cost Cost, msgs int, err error) {
	const subsPerRoom = 2
	prefix := newPrefix("w2")
	defer func() {
		if cerr := env.cleanup(context.WithoutCancel(ctx), prefix); err == nil && cerr != nil {
			err = cerr
		}
	}()
	defer env.closeClients()
	opts := queueOptions(prefix)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	names := make([]string, rooms)
	for i := range names {
		names[i] = fmt.Sprintf("room-%d", i)
	}
	type roomAcks struct{ ring [16]atomic.Int32 }
	acks := make([]roomAcks, rooms)
	tokens := make(chan int, rooms*env.cfg.W2Window)
	var completed, delivered atomic.Int64
	var failure error
	var failOnce sync.Once
	fail := func(e error) {
		failOnce.Do(func() { failure = e; cancel() })
	}

	var wg sync.WaitGroup
	var queues []*queue.Queue
	defer func() {
		cancel()
		wg.Wait()
		for _, q := range queues {
			_ = q.Close()
		}
	}()
	for range subsPerRoom {
		q, err := queue.New(ctx, env.client(0), opts)
		if err != nil {
			return 0, 0, cost, 0, err
		}
		queues = append(queues, q)
		err = forEachConcurrently(ctx, rooms, 16, func(r int) error {
			sub, err := q.Join(ctx, names[r])
			if err != nil {
				return err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					m, err := sub.Next(ctx)
					if err != nil {
						if ctx.Err() == nil {
							fail(fmt.Errorf("Next: %w", err))
						}
						return
					}
					delivered.Add(1)
					if err := m.Ack(ctx); err != nil {
						if ctx.Err() == nil {
							fail(fmt.Errorf("Ack: %w", err))
						}
						return
					}
					c := &acks[r].ring[m.ID%16]
					if c.Add(1) == subsPerRoom {
						c.Store(0)
						completed.Add(1)
						tokens <- r
					}
				}
			}()
			return nil
		})
		if err != nil {
			return 0, 0, cost, 0, fmt.Errorf("join: %w", err)
		}
	}

	payload := make([]byte, env.cfg.PayloadBytes)
	for range env.cfg.W2Window {
		for r := range rooms {
			tokens <- r
		}
	}
	for range w2Producers {
		q, err := queue.New(ctx, env.client(w2SendersPerProducer+1), opts)
		if err != nil {
			return 0, 0, cost, 0, err
		}
		queues = append(queues, q)
		for range w2SendersPerProducer {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					var r int
					select {
					case <-ctx.Done():
						return
					case r = <-tokens:
					}
					if _, err := q.Send(ctx, names[r], payload); err != nil {
						if ctx.Err() == nil {
							fail(fmt.Errorf("Send: %w", err))
						}
						return
					}
				}
			}()
		}
	}

	sleep(ctx, env.cfg.W2Warm)
	s0, err := env.snapshot(ctx)
	if err != nil {
		return 0, 0, cost, 0, errors.Join(err, failure)
	}
	c0, d0 := completed.Load(), delivered.Load()
	sleep(ctx, env.cfg.W2Dur)
	c1, d1 := completed.Load(), delivered.Load()
	s1, err := env.snapshot(ctx)
	if err != nil {
		return 0, 0, cost, 0, errors.Join(err, failure)
	}
	if failure != nil {
		return 0, 0, cost, 0, failure
	}
	el := s1.At.Sub(s0.At).Seconds()
	msgs = int(c1 - c0)
	if msgs <= 0 {
		return 0, 0, cost, 0, errors.New("no message completed")
	}
	return float64(msgs) / el, float64(d1-d0) / el, costBetween(s0, s1), msgs, nil
}

// W3Row is the out-of-band broadcast.
type W3Row struct {
	Mode string
	S    int
	Rate Figure // OOB messages per second received by every subscriber
	Cost CostFigures
}

func runW3(ctx context.Context, env *Env, rep *Report) error {
	for _, mode := range []string{ModeSeparate, ModeProcess} {
		row := &W3Row{Mode: mode, S: env.cfg.W3Subs}
		rep.W3 = append(rep.W3, row)
		for i := 0; i < env.cfg.Reps; i++ {
			spec := lockstepSpec{Mode: mode, S: row.S, N: env.cfg.W3N, Window: 500, Producers: 4, OOB: true}
			res, err := runLockstep(ctx, env, spec)
			if err != nil {
				return fmt.Errorf("W3 %s: %w", mode, err)
			}
			row.Rate.Add(res.Rate)
			row.Cost.add(res.Cost, res.Msgs)
			env.logf("W3 OOB %s S=%d: %s msgs/s, %s Redis CPU/msg, %.2f cmds/msg",
				mode, row.S, fInt(res.Rate), fMicros(res.Cost.CPUMicros/float64(res.Msgs)), float64(res.Cost.TopLevel)/float64(res.Msgs))
		}
	}
	return nil
}

// W4Result is the memory of queued messages and retained stream entries.
type W4Result struct {
	QueuedUsage  Figure // MEMORY USAGE of the pending lists / messages
	QueuedDelta  Figure // used_memory delta / messages
	StreamUsage  Figure // MEMORY USAGE of the stream / entries
	StreamDelta  Figure // used_memory delta / entries
	QueuedCPU    Figure // Redis CPU µs per send that only enqueues (the barrier is held)
	ReleasedCPU  Figure // Redis CPU µs per send released at once into the stream (no members)
	QueuedScript Figure // of QueuedCPU, running the script
	N            int
	PayloadBytes int
}

func runW4(ctx context.Context, env *Env, rep *Report) error {
	rep.W4 = &W4Result{N: env.cfg.W4N, PayloadBytes: env.cfg.PayloadBytes}
	for i := 0; i < env.cfg.Reps; i++ {
		if err := w4Once(ctx, env, rep.W4); err != nil {
			return err
		}
	}
	return nil
}

func w4Once(ctx context.Context, env *Env, res *W4Result) (err error) {
	prefix := newPrefix("w4")
	defer func() {
		if cerr := env.cleanup(context.WithoutCancel(ctx), prefix); err == nil && cerr != nil {
			err = cerr
		}
	}()
	defer env.closeClients()
	n := res.N
	payload := make([]byte, res.PayloadBytes)
	for i := range payload {
		payload[i] = byte('a' + i%26) // incompressible enough: listpacks do not compress anyway
	}
	layout, err := keys.New(prefix, 16)
	if err != nil {
		return err
	}

	// Queued: one member that never acks holds message 1 in flight; the
	// n messages after it wait in the room's pending lists. The sends go
	// through connections opened after the first snapshot and closed before
	// the second, so their buffers are not counted.
	opts := queueOptions(prefix)
	q, err := queue.New(ctx, env.client(2), opts)
	if err != nil {
		return err
	}
	defer q.Close()
	const held = "held"
	id, err := q.CreateClientID(ctx)
	if err != nil {
		return err
	}
	if err := q.Subscribe(ctx, id, held); err != nil {
		return err
	}
	if _, err := q.Send(ctx, held, payload); err != nil {
		return err
	}
	s0, err := env.snapshot(ctx)
	if err != nil {
		return err
	}
	if err := sendBurst(ctx, env, opts, held, payload, n); err != nil {
		return err
	}
	s1, err := env.snapshot(ctx)
	if err != nil {
		return err
	}
	var lists int64
	for p := range keys.Levels {
		u, err := env.admin.MemoryUsage(ctx, layout.Queue(held, p), 0).Result()
		if err != nil && err.Error() != "redis: nil" {
			return err
		}
		lists += u
	}
	res.QueuedUsage.Add(float64(lists) / float64(n))
	res.QueuedCPU.Add(costBetween(s0, s1).CPUMicros / float64(n))
	res.QueuedScript.Add(costBetween(s0, s1).ScriptMicros / float64(n))
	res.QueuedDelta.Add(float64(s1.UsedMemory-s0.UsedMemory) / float64(n))
	env.logf("W4 queued: MEMORY USAGE %.1f B/msg, used_memory delta %.1f B/msg", float64(lists)/float64(n), float64(s1.UsedMemory-s0.UsedMemory)/float64(n))

	// Retained: a room without members releases every message straight
	// into its stream; nothing is trimmed.
	sopts := queueOptions(prefix)
	sopts.StreamMaxLen = -1
	sq, err := queue.New(ctx, env.client(2), sopts)
	if err != nil {
		return err
	}
	defer sq.Close()
	const kept = "kept"
	if _, err := sq.Send(ctx, kept, payload); err != nil {
		return err
	}
	s2, err := env.snapshot(ctx)
	if err != nil {
		return err
	}
	if err := sendBurst(ctx, env, sopts, kept, payload, n); err != nil {
		return err
	}
	s3, err := env.snapshot(ctx)
	if err != nil {
		return err
	}
	skey := layout.Stream(kept)
	entries, err := env.admin.XLen(ctx, skey).Result()
	if err != nil {
		return err
	}
	usage, err := env.admin.MemoryUsage(ctx, skey, 0).Result()
	if err != nil {
		return err
	}
	res.StreamUsage.Add(float64(usage) / float64(entries))
	res.ReleasedCPU.Add(costBetween(s2, s3).CPUMicros / float64(n))
	res.StreamDelta.Add(float64(s3.UsedMemory-s2.UsedMemory) / float64(n))
	env.logf("W4 stream: %d entries, MEMORY USAGE %.1f B/entry, used_memory delta %.1f B/entry", entries, float64(usage)/float64(entries), float64(s3.UsedMemory-s2.UsedMemory)/float64(n))
	return nil
}

// sendBurst sends n messages to room through a Queue and connections of
// its own, closed (and gone from the server) when it returns.
func sendBurst(ctx context.Context, env *Env, opts queue.Options, room string, payload []byte, n int) error {
	before, err := env.connectedClients(ctx)
	if err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: env.addr, PoolSize: 32, Dialer: env.counter.dialer()})
	q, err := queue.New(ctx, c, opts)
	if err != nil {
		_ = c.Close()
		return err
	}
	err = sendConcurrently(ctx, q, room, payload, n, 32)
	_ = q.Close()
	_ = c.Close()
	if err != nil {
		return err
	}
	// The server frees a client's buffers when it notices the close.
	for range 100 {
		now, err := env.connectedClients(ctx)
		if err != nil {
			return err
		}
		if now <= before {
			break
		}
		sleep(ctx, 10*time.Millisecond)
	}
	return nil
}

// w6ClientsPerRoom is the room size of the Ping workload.
var w6ClientsPerRoom = 10

// W6 results.
type W6PingRow struct {
	Clients int
	CPU     Figure // Redis CPU µs per Ping of a random client
	HotCPU  Figure // Redis CPU µs per Ping of the same client again and again
	Cmds    Figure // top-level commands per Ping
	P50     Figure // Ping latency µs
}

type W6RoomsRow struct {
	Rooms int
	CPU   Figure // Redis CPU µs per delivery (send + delivery + ack)
	Reads Figure // XREADs per delivery
	P50   Figure // send -> delivered and acked, µs
}

type W6BacklogRow struct {
	Backlog  int
	P50, P99 Figure // release latency µs
	Rate     Figure // messages per second
}

func runW6(ctx context.Context, env *Env, rep *Report) error {
	if env.cfg.wantsW6("clients") {
		if err := w6Ping(ctx, env, rep); err != nil {
			return fmt.Errorf("clients: %w", err)
		}
	}
	if env.cfg.wantsW6("rooms") {
		if err := w6Rooms(ctx, env, rep); err != nil {
			return fmt.Errorf("rooms followed: %w", err)
		}
	}
	if env.cfg.wantsW6("backlog") {
		if err := w6Backlog(ctx, env, rep); err != nil {
			return fmt.Errorf("backlog: %w", err)
		}
	}
	return nil
}

// w6Ping measures what one Ping costs Redis with 10 .. 20,000 clients in
// the system. Each size is a deployment of its own (its own key prefix:
// clients in rooms of 10, one room each), all in the same server; the
// Pings of the sizes are interleaved in short rounds, so that the load of
// the (shared) machine drifting during the run weighs on every size alike.
func w6Ping(ctx context.Context, env *Env, rep *Report) (err error) {
	type system struct {
		q       *queue.Queue
		clients []string
		row     *W6PingRow
		cpu     []float64 // per repetition
		hot     []float64
		cmds    []int64
		lat     []Latencies
	}
	var systems []*system
	defer env.closeClients()
	for _, level := range env.cfg.W6Clients {
		prefix := newPrefix("w6p")
		defer func() {
			if cerr := env.cleanup(context.WithoutCancel(ctx), prefix); err == nil && cerr != nil {
				err = cerr
			}
		}()
		q, err := queue.New(ctx, env.client(40), queueOptions(prefix))
		if err != nil {
			return err
		}
		defer q.Close()
		sys := &system{q: q, clients: make([]string, level), row: &W6PingRow{Clients: level},
			cpu: make([]float64, env.cfg.Reps), hot: make([]float64, env.cfg.Reps), cmds: make([]int64, env.cfg.Reps), lat: make([]Latencies, env.cfg.Reps)}
		err = forEachConcurrently(ctx, level, 32, func(i int) error {
			id, err := q.CreateClientID(ctx)
			if err != nil {
				return err
			}
			sys.clients[i] = id
			return q.Subscribe(ctx, id, fmt.Sprintf("room-%d", i/w6ClientsPerRoom))
		})
		if err != nil {
			return err
		}
		systems = append(systems, sys)
		rep.W6Ping = append(rep.W6Ping, sys.row)
	}
	const rounds = 10
	per := max(1, env.cfg.W6PingN/rounds)
	for i := 0; i < env.cfg.Reps; i++ {
		for range rounds {
			for _, sys := range systems {
				s0, err := env.snapshot(ctx)
				if err != nil {
					return err
				}
				for range per {
					id := sys.clients[rand.IntN(len(sys.clients))]
					t := time.Now()
					if err := sys.q.Ping(ctx, id); err != nil {
						return fmt.Errorf("Ping: %w", err)
					}
					sys.lat[i] = append(sys.lat[i], time.Since(t))
				}
				s1, err := env.snapshot(ctx)
				if err != nil {
					return err
				}
				c := costBetween(s0, s1)
				sys.cpu[i] += c.CPUMicros
				sys.cmds[i] += c.TopLevel
				// The same client every time: its keys stay in the CPU's
				// caches, which isolates the work from memory locality.
				id := sys.clients[0]
				for range per {
					if err := sys.q.Ping(ctx, id); err != nil {
						return fmt.Errorf("Ping: %w", err)
					}
				}
				s2, err := env.snapshot(ctx)
				if err != nil {
					return err
				}
				sys.hot[i] += costBetween(s1, s2).CPUMicros
			}
		}
	}
	for _, sys := range systems {
		for i := range env.cfg.Reps {
			n := float64(len(sys.lat[i]))
			sys.row.CPU.Add(sys.cpu[i] / n)
			sys.row.HotCPU.Add(sys.hot[i] / n)
			sys.row.Cmds.Add(float64(sys.cmds[i]) / n)
			sys.row.P50.Add(micros(sys.lat[i].Quantile(0.5)))
		}
		env.logf("W6 Ping with %d clients: %s Redis CPU (same client: %s), %.2f cmds, p50 %s", sys.row.Clients, sys.row.CPU.Fmt(fMicros), sys.row.HotCPU.Fmt(fMicros), sys.row.Cmds.Median(), fMicros(sys.row.P50.Median()))
	}
	return nil
}

// w6Rooms grows the number of rooms one reader (one Queue, a subscription
// per room) follows, and measures the Redis cost of one lock-step delivery
// to a random one of them.
func w6Rooms(ctx context.Context, env *Env, rep *Report) (err error) {
	prefix := newPrefix("w6r")
	defer func() {
		if cerr := env.cleanup(context.WithoutCancel(ctx), prefix); err == nil && cerr != nil {
			err = cerr
		}
	}()
	defer env.closeClients()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := queueOptions(prefix)
	rq, err := queue.New(ctx, env.client(0), opts)
	if err != nil {
		return err
	}
	defer rq.Close()
	pq, err := queue.New(ctx, env.client(2), opts)
	if err != nil {
		return err
	}
	defer pq.Close()
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	got := make(chan error, 1)
	payload := make([]byte, env.cfg.PayloadBytes)
	var rooms []string
	var mu sync.Mutex
	for _, level := range env.cfg.W6Rooms {
		have := len(rooms)
		err := forEachConcurrently(ctx, level-have, 16, func(i int) error {
			room := fmt.Sprintf("room-%d", have+i)
			sub, err := rq.Join(ctx, room)
			if err != nil {
				return err
			}
			mu.Lock()
			rooms = append(rooms, room)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					m, err := sub.Next(ctx)
					if err == nil {
						err = m.Ack(ctx)
					}
					if ctx.Err() != nil {
						return
					}
					select {
					case got <- err:
					case <-ctx.Done():
						return
					}
					if err != nil {
						return
					}
				}
			}()
			return nil
		})
		if err != nil {
			return err
		}
		row := &W6RoomsRow{Rooms: level}
		rep.W6Rooms = append(rep.W6Rooms, row)
		for i := 0; i < env.cfg.Reps; i++ {
			s0, err := env.snapshot(ctx)
			if err != nil {
				return err
			}
			lat := make(Latencies, env.cfg.W6Deliveries)
			for j := range lat {
				room := rooms[rand.IntN(len(rooms))]
				t := time.Now()
				if _, err := pq.Send(ctx, room, payload); err != nil {
					return fmt.Errorf("Send: %w", err)
				}
				select {
				case err := <-got:
					if err != nil {
						return err
					}
				case <-time.After(30 * time.Second):
					return fmt.Errorf("no delivery in room %s after 30s", room)
				}
				lat[j] = time.Since(t)
			}
			s1, err := env.snapshot(ctx)
			if err != nil {
				return err
			}
			c := costBetween(s0, s1)
			n := float64(len(lat))
			row.CPU.Add(c.CPUMicros / n)
			row.Reads.Add(float64(c.ByCommand["xread"]) / n)
			row.P50.Add(micros(lat.Quantile(0.5)))
		}
		env.logf("W6 reader following %d rooms: %s Redis CPU/delivery, %.2f XREAD/delivery, p50 %s", level, fMicros(row.CPU.Median()), row.Reads.Median(), fMicros(row.P50.Median()))
	}
	return nil
}

// w6Backlog measures the release latency of one subscriber while the
// producer keeps the backlog at each size. The backlog is sent before the
// subscriber joins; the measurement is three consecutive windows of W6LatN
// messages (the repetitions).
func w6Backlog(ctx context.Context, env *Env, rep *Report) error {
	for _, b := range env.cfg.W6Backlog {
		n := env.cfg.W6LatN
		reps := env.cfg.Reps
		spec := lockstepSpec{Mode: ModeSeparate, S: 1, N: n*reps + n/10 + 1, Window: b, Prefill: true, Producers: 1}
		t0 := time.Now()
		res, err := runLockstep(ctx, env, spec)
		if err != nil {
			return fmt.Errorf("backlog %d: %w", b, err)
		}
		row := &W6BacklogRow{Backlog: b}
		rep.W6Backlog = append(rep.W6Backlog, row)
		warm := res.sink.warm
		for i := range reps {
			lo, hi := warm+i*n, min(warm+(i+1)*n, spec.N)
			rel := res.releaseBetween(lo, hi)
			row.P50.Add(micros(rel.Quantile(0.5)))
			row.P99.Add(micros(rel.Quantile(0.99)))
			row.Rate.Add(res.rateBetween(lo, hi))
		}
		env.logf("W6 backlog %d: release p50 %s p99 %s, %s msgs/s (%v with the prefill)", b, fMicros(row.P50.Median()), fMicros(row.P99.Median()), fInt(row.Rate.Median()), time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// forEachConcurrently runs fn(0..n-1) on c goroutines; the first error
// stops the rest.
func forEachConcurrently(ctx context.Context, n, c int, fn func(i int) error) error {
	if n <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for range min(c, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
