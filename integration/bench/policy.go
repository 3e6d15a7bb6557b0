package main

import (
	"context"
	"fmt"
	"time"

	"github.com/syncfanout/syncfanout/queue"
)

// W7: barrier policies. Window W lets a room have W messages in flight,
// so subscribers overlap their round trips; a quorum completes a message
// without a slow member. Each row runs the W1 lock-step room with the
// room's policy set first; W=1 rows are the same run's lock-step
// reference.

// W7Row is one policy configuration.
type W7Row struct {
	Mode   string
	S      int
	Slow   int          // slow subscribers (see slowLoop)
	Policy queue.Policy // of the room
	Quorum int          // acks that complete a message in the sink (0: S)
	Rate   Figure       // messages per second complete
	Cost   CostFigures
}

// Label names the row in logs and tables.
func (row *W7Row) Label() string {
	l := fmt.Sprintf("%s S=%d", row.Mode, row.S)
	if row.Slow > 0 {
		l += fmt.Sprintf(" (%d slow)", row.Slow)
	}
	p := row.Policy.String()
	if p == "" {
		p = "lock-step"
	}
	return l + " " + p
}

// w7SlowDelay is how long a slow subscriber takes per batch of messages.
const w7SlowDelay = 2 * time.Millisecond

func w7Rows(cfg Config) []*W7Row {
	var rows []*W7Row
	modes := []string{ModeProcess, ModeSeparate}
	if len(cfg.W1Modes) > 0 {
		modes = cfg.W1Modes
	}
	for _, mode := range modes {
		if mode == ModeGateway {
			continue
		}
		for _, s := range []int{1, 10} {
			for _, w := range []int{0, 4, 16} {
				rows = append(rows, &W7Row{Mode: mode, S: s, Policy: queue.Policy{Window: w}})
			}
		}
	}
	// Quorum 2 of 3, one member slow: against every member's ack (the slow
	// one sets the pace) and a window of 16 (it acks its backlog at once).
	for _, p := range []queue.Policy{{}, {Quorum: 2}, {Window: 16}} {
		row := &W7Row{Mode: ModeProcess, S: 3, Slow: 1, Policy: p}
		if p.Quorum > 0 {
			row.Quorum = p.Quorum
		}
		rows = append(rows, row)
	}
	return rows
}

func runW7(ctx context.Context, env *Env, rep *Report) error {
	for _, row := range w7Rows(env.cfg) {
		rep.W7 = append(rep.W7, row)
		for i := 0; i < env.cfg.Reps; i++ {
			n := env.cfg.W1Msgs(row.S)
			if row.Slow > 0 {
				n = env.cfg.W1Msgs(10) // the lock-step reference runs at the slow member's pace
			}
			spec := lockstepSpec{
				Mode: row.Mode, S: row.S, N: n, Window: env.cfg.W1Window, Producers: 2,
				Policy: row.Policy, Quorum: row.Quorum, Slow: row.Slow,
			}
			res, err := runLockstep(ctx, env, spec)
			if err != nil {
				return fmt.Errorf("W7 %s: %w", row.Label(), err)
			}
			row.Rate.Add(res.Rate)
			row.Cost.add(res.Cost, res.Msgs)
			env.logf("W7 %s: %s msgs/s, %s Redis CPU/msg, %.2f cmds/msg, %.1f inner/msg",
				row.Label(), fInt(res.Rate), fMicros(res.Cost.CPUMicros/float64(res.Msgs)),
				float64(res.Cost.TopLevel)/float64(res.Msgs), float64(res.Cost.Inner)/float64(res.Msgs))
		}
	}
	return nil
}

// loop returns how subscriber i consumes: slowLoop for the first
// spec.Slow ones, subscriberLoop for the others.
func (k *sink) loop(i int) func(context.Context, int, *queue.Subscription) {
	if i < k.spec.Slow {
		return k.slowLoop
	}
	return k.subscriberLoop
}

// slowLoop is a subscriber that takes w7SlowDelay per batch: after each
// wait it takes every message already delivered to it and acks the last
// one only (acks are cumulative), so under a window or a quorum it falls
// behind by about what the room releases in w7SlowDelay, not without end.
func (k *sink) slowLoop(ctx context.Context, i int, sub *queue.Subscription) {
	done, cancel := context.WithCancel(ctx)
	cancel() // Next on a done context returns only what is buffered
	var acked uint64
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				k.fail(fmt.Errorf("slow subscriber %d: Next: %w", i, err))
			}
			return
		}
		k.delivered(i, m.ID)
		select {
		case <-ctx.Done():
			return
		case <-time.After(w7SlowDelay):
		}
		for {
			more, err := sub.Next(done)
			if err != nil {
				break
			}
			k.delivered(i, more.ID)
			m = more
		}
		k.acking(i, m.ID)
		if err := m.Ack(ctx); err != nil {
			if ctx.Err() == nil {
				k.fail(fmt.Errorf("slow subscriber %d: Ack(%d): %w", i, m.ID, err))
			}
			return
		}
		for id := acked + 1; id <= m.ID; id++ {
			k.acked(id)
		}
		acked = m.ID
		if m.ID >= uint64(k.spec.N) {
			return
		}
	}
}

// markdownW7 writes the W7 section.
func (r *Report) markdownW7(p func(format string, args ...any)) {
	if len(r.W7) == 0 {
		return
	}
	p("## W7 barrier policies")
	p("")
	p("The W1 room (the producer keeps %d messages outstanding, every subscriber acks every", r.Config.W1Window)
	p("message) under a room policy set before the run. `window=W` lets W messages be in flight")
	p("at once; the lock-step rows are the same run's W=1 reference. The last rows have 3")
	p("subscribers of which one is slow: it waits %v, then takes everything delivered to it", w7SlowDelay)
	p("and acks the last message only (acks are cumulative); `quorum=2` completes a message on")
	p("two acks. Rate: messages per second complete; **x PING rate** is the rate over this run's")
	p("PING rate (limit references above); costs per message as in W1")
	p("(x Streams fanout: over the same run's plain fanout to as many readers, where measured).")
	p("")
	ping := r.Refs.PingRate.Median()
	p("| configuration | msgs/s | x PING rate | x Streams fanout | Redis CPU/msg | round trips/msg | inner commands/msg |")
	p("| --- | --- | --- | --- | --- | --- | --- |")
	for _, row := range r.W7 {
		fan := "-"
		if f := r.Refs.Fanout[row.S]; f != nil && f.OK() {
			fan = f2(row.Rate.Median() / f.Median())
		}
		p("| %s | %s | %s | %s | %s | %s | %s |", row.Label(), row.Rate.Fmt(fInt), f2(row.Rate.Median()/ping), fan,
			row.Cost.CPU.Fmt(fMicros), row.Cost.RTs.Fmt(f2), row.Cost.Inner.Fmt(f1))
	}
	p("")
}
