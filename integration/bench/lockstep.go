package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/syncfanout/syncfanout/queue"
)

// How the subscribers of a lock-step room are hosted.
const (
	// ModeGateway: one process, one gateway worker (q.NewWorker) hosting
	// every subscriber.
	ModeGateway = "gateway"
	// ModeSeparate: every subscriber is a process of its own: its own
	// connections, its own Queue, q.Join.
	ModeSeparate = "separate"
	// ModeProcess: one process, one Queue, one q.Join per subscriber.
	ModeProcess = "process"
)

// lockstepSpec describes one run of a lock-step room.
type lockstepSpec struct {
	Mode      string
	S         int  // subscribers
	N         int  // messages measured: IDs 1..N
	Window    int  // messages the producer keeps outstanding (sent, not yet acked by all)
	Prefill   bool // send Window messages before anyone joins (HoldWhenEmpty), concurrently
	Producers int  // producer goroutines
	OOB       bool // send out-of-band messages (counted when every subscriber received them)
	// Batch > 1: each producer waits until Batch messages may be sent and
	// sends them with one SendBatch call, instead of one Send per message.
	Batch int
	// Barrier policies (W7, policy.go): the room's policy, the acks that
	// complete a message (0: S), and how many subscribers (the first ones)
	// are slow.
	Policy queue.Policy
	Quorum int
	Slow   int
}

type lockstepResult struct {
	Rate    float64   // messages per second fully acked by every subscriber
	Release Latencies // last ack of k (sent) -> k+1 delivered, one sample per subscriber and message
	Cost    Cost      // Redis cost between the completion of the warm-up and of message N
	Msgs    int       // messages in the cost window
	// ProcCPU is the CPU time (user+system) of this benchmark process over
	// the cost window: the client side's cost when the subscribers live in
	// this process (gateway, process modes).
	ProcCPU time.Duration
	// Mallocs is the heap allocations of this process over the cost
	// window, Wakeups the goroutines it made runnable again (estimated from
	// the scheduler's sampled latencies): per delivery, the client side's
	// allocations and hand-offs in gateway and process modes.
	Mallocs uint64
	Wakeups float64
	Done    []int64 // [id] ns since the start that message id was complete

	sink *sink
}

// releaseBetween returns the release latencies of messages lo+1..hi: from
// the moment the last subscriber called Ack(id) to each subscriber's Next
// returning id+1.
func (r lockstepResult) releaseBetween(lo, hi int) Latencies {
	k := r.sink
	var out Latencies
	for id := lo; id < hi; id++ {
		var last int64
		for i := range k.spec.S {
			last = max(last, k.ack[i][id])
		}
		for i := range k.spec.S {
			if d := k.deliv[i][id+1]; d > 0 && last > 0 {
				out = append(out, time.Duration(d-last))
			}
		}
	}
	return out
}

// rateBetween returns the completion rate of messages lo+1..hi.
func (r lockstepResult) rateBetween(lo, hi int) float64 {
	return float64(hi-lo) / time.Duration(r.Done[hi]-r.Done[lo]).Seconds()
}

// sink is where a hosted subscriber reports what it saw.
type sink struct {
	spec  lockstepSpec
	t0    time.Time
	deliv [][]int64 // [subscriber][id] ns since t0 that Next returned id
	ack   [][]int64 // [subscriber][id] ns since t0 that Ack(id) was called
	acks  []atomic.Int32
	done  []int64 // [id] ns since t0 that the last ack of id returned
	sem   chan struct{}
	warm  int
	warmC chan struct{}
	doneC chan struct{}
	errMu sync.Mutex
	err   error
}

func newSink(spec lockstepSpec) *sink {
	k := &sink{
		spec: spec, t0: time.Now(),
		deliv: make([][]int64, spec.S), ack: make([][]int64, spec.S),
		acks: make([]atomic.Int32, spec.N+1), done: make([]int64, spec.N+1),
		sem:  make(chan struct{}, spec.Window),
		warm: max(1, spec.N/10), warmC: make(chan struct{}), doneC: make(chan struct{}),
	}
	for i := range k.deliv {
		k.deliv[i] = make([]int64, spec.N+2)
		k.ack[i] = make([]int64, spec.N+2)
	}
	return k
}

func (k *sink) now() int64 { return int64(time.Since(k.t0)) }

func (k *sink) fail(err error) {
	k.errMu.Lock()
	if k.err == nil {
		k.err = err
	}
	k.errMu.Unlock()
}

func (k *sink) failed() error {
	k.errMu.Lock()
	defer k.errMu.Unlock()
	return k.err
}

// delivered records that subscriber i received message id.
func (k *sink) delivered(i int, id uint64) {
	if id <= uint64(k.spec.N+1) {
		k.deliv[i][id] = k.now()
	}
}

// acking records that subscriber i is about to ack id.
func (k *sink) acking(i int, id uint64) {
	if id <= uint64(k.spec.N+1) {
		k.ack[i][id] = k.now()
	}
}

// acked records that subscriber i's ack of id returned; the last one
// completes the message and lets the producer send one more.
func (k *sink) acked(id uint64) {
	if id == 0 || id > uint64(k.spec.N) {
		return
	}
	need := k.spec.S
	if k.spec.Quorum > 0 {
		need = k.spec.Quorum
	}
	if int(k.acks[id].Add(1)) != need {
		return
	}
	k.done[id] = k.now()
	k.sem <- struct{}{}
	switch int(id) {
	case k.warm:
		close(k.warmC)
	case k.spec.N:
		close(k.doneC)
	}
}

// subscriberLoop consumes a Subscription until it acked message N.
func (k *sink) subscriberLoop(ctx context.Context, i int, sub *queue.Subscription) {
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				k.fail(fmt.Errorf("subscriber %d: Next: %w", i, err))
			}
			return
		}
		k.delivered(i, m.ID)
		k.acking(i, m.ID)
		if err := m.Ack(ctx); err != nil {
			if ctx.Err() == nil {
				k.fail(fmt.Errorf("subscriber %d: Ack(%d): %w", i, m.ID, err))
			}
			return
		}
		k.acked(m.ID)
		if m.ID >= uint64(k.spec.N) {
			return
		}
	}
}

// runLockstep runs one lock-step room: S subscribers hosted as spec.Mode,
// a producer keeping Window messages outstanding, until message N is acked
// by everyone.
func runLockstep(ctx context.Context, env *Env, spec lockstepSpec) (res lockstepResult, err error) {
	prefix := newPrefix("ls")
	defer func() {
		if cerr := env.cleanup(context.WithoutCancel(ctx), prefix); err == nil && cerr != nil {
			err = cerr
		}
	}()
	defer env.closeClients()
	room := "room"
	opts := queueOptions(prefix)
	opts.HoldWhenEmpty = spec.Prefill
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	prodQ, err := queue.New(ctx, env.client(spec.Producers+2), opts)
	if err != nil {
		return res, err
	}
	defer prodQ.Close()
	if spec.Policy != (queue.Policy{}) {
		if err := prodQ.SetPolicy(ctx, room, spec.Policy); err != nil {
			return res, err
		}
	}
	payload := make([]byte, env.cfg.PayloadBytes)
	k := newSink(spec)
	total := spec.N + spec.Window
	var sent atomic.Int64
	if spec.Prefill {
		if err := sendConcurrently(ctx, prodQ, room, payload, spec.Window, 32); err != nil {
			return res, fmt.Errorf("prefill: %w", err)
		}
		sent.Store(int64(spec.Window))
	} else {
		for range spec.Window {
			k.sem <- struct{}{}
		}
	}

	subCtx, stopSubs := context.WithCancel(ctx)
	var subs sync.WaitGroup
	closers, err := hostSubscribers(ctx, subCtx, env, opts, room, k, &subs)
	defer func() {
		stopSubs()
		subs.Wait()
		for _, c := range closers {
			c()
		}
	}()
	if err != nil {
		return res, err
	}

	var prod sync.WaitGroup
	prodCtx, stopProd := context.WithCancel(ctx)
	defer func() { stopProd(); prod.Wait() }()
	for range spec.Producers {
		prod.Add(1)
		go func() {
			defer prod.Done()
			for {
				select {
				case <-prodCtx.Done():
					return
				case <-k.sem:
				}
				if spec.Batch > 1 {
					if err := sendBatch(prodCtx, prodQ, room, payload, spec.Batch, k.sem, &sent, int64(total)); err != nil {
						if prodCtx.Err() == nil {
							k.fail(err)
							cancel()
						}
						return
					}
					continue
				}
				if sent.Add(1) > int64(total) {
					return
				}
				send := prodQ.Send
				if spec.OOB {
					send = prodQ.SendOutOfBand
				}
				if _, err := send(prodCtx, room, payload); err != nil {
					if prodCtx.Err() == nil {
						k.fail(fmt.Errorf("Send: %w", err))
						cancel()
					}
					return
				}
			}
		}()
	}

	var s0, s1 Snapshot
	var cpu0, cpu1 time.Duration
	var rt0, rt1 runtimeCounts
	select {
	case <-k.warmC:
		cpu0 = processCPU()
		rt0 = readRuntimeCounts()
		if s0, err = env.snapshot(ctx); err != nil {
			return res, err
		}
	case <-ctx.Done():
		return res, errors.Join(fmt.Errorf("lock-step %s S=%d: no progress", spec.Mode, spec.S), k.failed(), ctx.Err())
	}
	select {
	case <-k.doneC:
		stopProd()
		cpu1 = processCPU()
		rt1 = readRuntimeCounts()
		if s1, err = env.snapshot(ctx); err != nil {
			return res, err
		}
	case <-ctx.Done():
		return res, errors.Join(fmt.Errorf("lock-step %s S=%d: stalled", spec.Mode, spec.S), k.failed(), ctx.Err())
	}
	// Stop the subscribers before reading what they recorded: under a
	// quorum or a window the room completes while a slow member still
	// receives, and its loop would go on writing the sink's arrays.
	stopSubs()
	subs.Wait()
	if err := k.failed(); err != nil {
		return res, err
	}
	res.Msgs = spec.N - k.warm
	res.Rate = float64(res.Msgs) / time.Duration(k.done[spec.N]-k.done[k.warm]).Seconds()
	res.Cost = costBetween(s0, s1)
	res.ProcCPU = cpu1 - cpu0
	res.Mallocs = rt1.mallocs - rt0.mallocs
	res.Wakeups = float64(rt1.schedSamples-rt0.schedSamples) * schedSamplePeriod
	res.Done = k.done
	res.sink = k
	res.Release = res.releaseBetween(k.warm, spec.N)
	return res, nil
}

// hostSubscribers starts the S subscribers of room as spec.Mode and returns
// what closes them. Every subscriber has joined when it returns.
func hostSubscribers(ctx, subCtx context.Context, env *Env, opts queue.Options, room string, k *sink, wg *sync.WaitGroup) ([]func(), error) {
	var closers []func()
	switch k.spec.Mode {
	case ModeSeparate:
		subsQ := make([]*queue.Queue, k.spec.S)
		for i := range subsQ {
			q, err := queue.New(ctx, env.client(4), opts)
			if err != nil {
				return closers, err
			}
			closers = append(closers, func() { _ = q.Close() })
			subsQ[i] = q
		}
		for i, q := range subsQ {
			sub, err := q.Join(ctx, room)
			if err != nil {
				return closers, fmt.Errorf("join %d: %w", i, err)
			}
			wg.Add(1)
			go func() { defer wg.Done(); k.loop(i)(subCtx, i, sub) }()
		}
	case ModeProcess:
		q, err := queue.New(ctx, env.client(0), opts)
		if err != nil {
			return closers, err
		}
		closers = append(closers, func() { _ = q.Close() })
		for i := range k.spec.S {
			sub, err := q.Join(ctx, room)
			if err != nil {
				return closers, fmt.Errorf("join %d: %w", i, err)
			}
			wg.Add(1)
			go func() { defer wg.Done(); k.loop(i)(subCtx, i, sub) }()
		}
	case ModeGateway:
		return hostGateway(ctx, subCtx, env, opts, room, k, wg)
	default:
		return nil, fmt.Errorf("unknown mode %q", k.spec.Mode)
	}
	return closers, nil
}

// sendConcurrently sends n messages to room from c goroutines.
func sendConcurrently(ctx context.Context, q *queue.Queue, room string, payload []byte, n, c int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := q.Send(ctx, room, payload); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// sendBatch collects the rest of a batch of n send permits (the first is
// taken) from sem and sends that many messages with one SendBatch call.
func sendBatch(ctx context.Context, q *queue.Queue, room string, payload []byte, n int, sem chan struct{}, sent *atomic.Int64, total int64) error {
	for got := 1; got < n; got++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sem:
		}
	}
	if sent.Add(int64(n))-int64(n) >= total {
		return nil
	}
	batch := make([]any, n)
	for i := range batch {
		batch[i] = payload
	}
	if _, err := q.SendBatch(ctx, room, batch); err != nil {
		return fmt.Errorf("SendBatch: %w", err)
	}
	return nil
}

// processCPU returns the user and system CPU time this process has used so
// far (zero where getrusage fails, which only loses the figure).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runtimeCounts are cumulative counters of the Go runtime.
type runtimeCounts struct {
	mallocs      uint64 // heap objects allocated
	schedSamples uint64 // samples of the time goroutines spent runnable
}

// schedSamplePeriod: the runtime records the scheduling latency of one in
// this many transitions of a goroutine to running (gTrackingPeriod), so
// samples times it estimates the goroutines woken.
const schedSamplePeriod = 8

func readRuntimeCounts() runtimeCounts {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	var c runtimeCounts
	if s[0].Value.Kind() == metrics.KindUint64 {
		c.mallocs = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindFloat64Histogram {
		for _, n := range s[1].Value.Float64Histogram().Counts {
			c.schedSamples += n
		}
	}
	return c
}
