package main

import (
	"fmt"
	"strings"
)

// analysis is the written part of the report: what bounds each figure and
// what would move it, quoting this run's figures. The profile findings it
// cites come from perf runs on redis-server made while writing it (see the
// text); everything else is computed from the report.
func analysis(r *Report) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	med := func(f Figure) float64 { return f.Median() }
	us := func(v float64) string {
		if v != v || v <= 0 { // NaN or missing
			return "n/a"
		}
		return fMicros(v)
	}
	verdict := func(name string) string {
		for _, t := range r.Targets {
			if t.Name == name {
				if t.Pass {
					return "PASS"
				}
				return "MISS"
			}
		}
		return "not run"
	}

	pingCPU, rtt, pingRate := med(r.Refs.PingCPU), r.Refs.RTTMicros(), med(r.Refs.PingRate)
	var queuedCPU, queuedScript float64
	if r.W4 != nil {
		queuedCPU, queuedScript = med(r.W4.QueuedCPU), med(r.W4.QueuedScript)
	}
	s1, _ := r.w1Best(ModeSeparate, 1)
	if s1 == nil {
		s1 = &W1Row{}
	}
	perMsg, perScript, perSys := med(s1.Cost.CPU), med(s1.Cost.Script), med(s1.Cost.Sys)

	p("**Where the time goes.** Every state change is one Lua script call (`FCALL`), and every")
	p("call is a socket round trip. In this run Redis spent %s of CPU on a PING round trip", us(pingCPU))
	p("(reading the request, writing the reply: on this virtual machine the sockets are the")
	p("expensive part), %s on a send that only enqueues (%s of it running the script, W4), and",
		us(queuedCPU), us(queuedScript))
	p("%s per lock-step message with one subscriber (W1 S=1, %s: %s running scripts, %s in",
		us(perMsg), s1.Producer(), us(perScript), us(perSys))
	p("the kernel). What a script costs is mostly what it asks of Redis from Lua. Measured with")
	p("a micro-benchmark on this server while writing this report (2,000-20,000 calls each, commandstats):")
	p("an empty script given a room's 19 KEYS costs 1.6 µs, the shared prelude (`room.lua`) 6.3 µs,")
	p("a small command called from Lua about 0.3 µs, ZMSCORE of 99 members 50 µs (each score is")
	p("formatted as a double), an HSET of 99 fields into a listpack hash 40 µs (each insert scans")
	p("it). Cutting calls and per-element work is what moved the figures of this report: the")
	p("prelude reads and writes a room's meta hash once, reaping costs one lookup when nothing")
	p("expired, index writes that cannot change are skipped (an ack cycle went from 22 Redis calls")
	p("to about 15), `SendBatch` enqueues many messages in one call, and an ack batch that")
	p("completes its message no longer writes the acks its release deletes (100 acks: 110 -> 55 µs).")
	p("")

	p("- **W1 S=1, %s.** The cycle is one round trip: the ack's reply carries the next message to", verdict("W1 S=1 lock-step rate"))
	p("  the subscriber, and the producer's sends overlap it (with `SendBatch`, one call per 32")
	p("  messages). %s msgs/s = %s x the PING rate: each cycle is a PING-like round trip plus",
		fInt(med(s1.Rate)), f2(med(s1.Rate)/pingRate))
	p("  the ack script (%s of scripts per message) plus the client's own work on the same two", us(perScript))
	p("  cores. Measured (docs/bench/release-latency.md): the ack's script call is 90-96%% of the")
	p("  release latency as the caller sees it; the library's own work from the reply to `Next` is")
	p("  4-6 µs. Not publishing the entry to the acking process (an unsafe build, as an upper bound)")
	p("  moved the p50 by 0-4%% with SendBatch; one call for many rooms saved 1.6-4.4%% of Redis's")
	p("  instructions (docs/bench/multi-room-calls.md). What is left is each step's Lua: 192k of")
	p("  Redis's 691k instructions per message run in the Lua VM (docs/bench/script-profile.md).")
	if s1.P50.OK() {
		p("- **Release latency, %s.** The p50 (%s = %s round trips) is the ack's round trip, the",
			verdict("W1 S=1 p50 release latency"), us(med(s1.P50)), f2(med(s1.P50)/rtt))
		p("  ack script (which completes the message, releases the next and returns it) and the")
		p("  hand-off to `Next`. The target leaves half a round trip (%s) for the script and the", us(0.5*rtt))
		p("  client together; the ack script alone is about %s of Redis CPU here, the client's", us(perScript))
		p("  part after the reply 4-6 µs.")
	}
	busy := func(rate, cpu float64) string { return fmt.Sprintf("%.0f%%", 100*rate*cpu/1e6) }
	for _, tc := range []struct {
		s    int
		name string
	}{{10, "W1 S=10, every subscriber a q.Join in one process"}, {100, "W1 S=100, every subscriber a q.Join in one process"}} {
		row, _ := r.w1Best(ModeProcess, tc.s)
		if row == nil || !row.Rate.OK() {
			continue
		}
		c := med(row.Cost.CPU)
		p("- **W1 S=%d, q.Join in one process, %s.** %s msgs/s (%s) = %s x the PING rate, %s Redis",
			tc.s, verdict(tc.name), fInt(med(row.Rate)), row.Producer(), f2(med(row.Rate)/pingRate), f2(med(row.Cost.Cmds)))
		p("  calls per message: the acks of a room's local subscriptions wait for each other and go")
		p("  in one `ack_batch` call. Redis spends %s per message (%s in scripts), so it is busy %s", us(c), us(med(row.Cost.Script)), busy(med(row.Rate), c))
		p("  of the time; the rest of each cycle is the client: %d subscriptions' `Next` and `Ack`", tc.s)
		p("  hand-offs and the ack batch's wake-ups, on the two cores the benchmark shares with Redis.")
		p("  Release p50 is %s (%s round trips). The client's CPU per delivery, measured with", us(med(row.P50)), f2(med(row.P50)/rtt))
		p("  getrusage (docs/bench/client-cpu.md): 4.6 µs at S=100, 18 µs at S=10 (8.5 and 25 before")
		p("  this session's cuts), with at least one park and wake per delivery, since each")
		p("  subscriber's goroutine waits for its own ack's reply.")
	}
	g, _ := r.w1Best(ModeGateway, 100)
	if g != nil && g.Rate.OK() {
		gc, gs := med(g.Cost.CPU), med(g.Cost.Script)
		p("- **W1 S=100 in one gateway, %s.** %s msgs/s (%s): %s top-level commands per message, the",
			verdict("W1 S=100 through one gateway"), fInt(med(g.Rate)), g.Producer(), f2(med(g.Cost.Cmds)))
		p("  worker's acks for a message waiting for each other (`AckCoalesce`) and going in one")
		p("  call. Redis spends %s per message (%s in scripts), so it is busy %s of the time:",
			us(gc), us(gs), busy(med(g.Rate), gc))
		p("  the rest of the cycle is the gateway's work, in series with the call: 100 handler calls,")
		p("  ack tokens made and parsed, a delivery goroutine per client mailbox, a channel per ack.")
		p("  Measured: 4.0 µs of gateway CPU per delivery (5.4 before this session's cuts: tokens in")
		p("  one allocation, pooled ack requests; docs/bench/client-cpu.md), ~400 µs of client CPU per")
		p("  message next to Redis's. A fixed delivery pool was left out: a blocked handler would")
		p("  hold up other clients, and it would not remove the per-delivery hand-off.")
	}
	if w := r.w2(100); w != nil && w.Rate.OK() {
		wc, ws, wsys := med(w.Cost.CPU), med(w.Cost.Script), med(w.Cost.Sys)
		p("- **W2, %s.** %s msgs/s: %s script calls per message (the send and one ack per subscriber:",
			verdict("W2 100 rooms x 2 subscribers (q.Join, two processes)"), fInt(med(w.Rate)), f2(med(w.Cost.Evals)))
		p("  the two subscribers of a room live in two processes, so their acks cannot share a call),")
		p("  in %s round trips (socket writes) per message: a Queue sends the single acks that arrive", f2(med(w.Cost.RTs)))
		p("  while another is in flight together, in one round trip, and so do its concurrent sends")
		p("  (queue/shardbatch.go). Redis spends %s of CPU per message (%s in the kernel; scripts %s by", us(wc), us(wsys), us(ws))
		p("  commandstats, which also counts time the server waited for a CPU on this loaded machine)")
		p("  = %s x its CPU per PING (target ≤ 2.5x). Redis is busy %s of the time (it alone would", f1(wc/pingCPU), busy(med(w.Rate), wc))
		p("  cap the rate near %s msgs/s), but busy is not idle: measured with /proc/<pid>/schedstat,", fInt(1e6/wc))
		p("  Redis is runnable 89-96%% of a W2 run at 1, 10 and 100 rooms alike (running 52-68%%,")
		p("  waiting for one of the two cores, shared with the benchmark's six Queues and other work,")
		p("  28-37%%), so the rate hardly grows with rooms: one room already saturates it. No client")
		p("  stage is serial: the subscribers wait in Next or on the ack batch in flight, whose round")
		p("  trip is Redis's queue (docs/bench/w2-what-bounds-it.md). Each script call costs Redis at least what a")
		p("  PING does unless pipelined, and a room script more, so three calls per message cannot")
		p("  reach 2.5 PINGs. One call carrying the acks of many rooms of a shard was built and")
		p("  measured (docs/bench/multi-room-calls.md): 1.6-4.4%% fewer Redis instructions per message,")
		p("  not kept. Each step's own Lua and inner commands are 74%% of Redis's instructions per W2")
		p("  message (docs/bench/script-profile.md): that is what remains to cut.")
	}
	if row, _ := r.w1Best(ModeSeparate, 10); row != nil && row.Rate.OK() {
		c := med(row.Cost.CPU)
		p("- **W1 S=10, one process per subscriber (reported, no target).** %s msgs/s, %s calls per", fInt(med(row.Rate)), f2(med(row.Cost.Cmds)))
		p("  message (one ack per process: nothing can share a call across processes), %s of Redis", us(c))
		p("  CPU per message = %s per call, %s of it in the kernel: Redis is busy %s of the time,", us(c/med(row.Cost.Cmds)), us(med(row.Cost.Sys)), busy(med(row.Rate), c))
		p("  so the S+1 round trips per message, and Redis's cost for each, bound it.")
	}
	p("")
	p("**The scripts run as a Redis Function library** (`FCALL`, `Options.ScriptMode`): what")
	p("`room.lua` cost on every `EVALSHA` was mostly creating its local functions, not its Redis")
	p("calls (the prelude alone 14-16 µs of script time as an `EVALSHA`, of which `TIME` and the")
	p("meta `HMGET` ~4 µs and an empty script ~2 µs). A library runs that once, at `FUNCTION LOAD`;")
	p("a `reap` with nothing to do costs 10-11 µs as a function against 18-19 µs as an `EVALSHA` of the")
	p("same code (docs/bench/default-policy-cost.md has the per-message figures, before and after).")
	p("")
	if r.W4 != nil && r.W4.QueuedDelta.OK() {
		p("- **W4, %s.** Pending messages are LIST entries, one list per priority level: the payload", verdict("W4 memory per queued 100-byte message"))
		p("  and a ~25-byte header (`seq:enqueue-ms:producer-length:producer`) in a listpack, %s bytes", f1(med(r.W4.QueuedDelta)))
		p("  per 100-byte message. A retained stream entry costs %s: the stream shares its field", f1(med(r.W4.StreamDelta)))
		p("  names across entries, and an entry also stores its ID and the event's fields.")
	}
	if n := len(r.W6Ping); n >= 2 {
		a, z := r.W6Ping[0], r.W6Ping[n-1]
		p("- **Ping, %s.** A Ping reads the client's room set (SMEMBERS, in the client's shard) and", verdict("W6 Ping Redis CPU, 10 -> 20,000 clients"))
		p("  runs one heartbeat script per room of that client: %s top-level commands here, whatever", f2(med(z.Cmds)))
		p("  the number of clients: %s -> %s from %s to %s clients (x%s). What grows is not the work",
			us(med(a.CPU)), us(med(z.CPU)), fInt(float64(a.Clients)), fInt(float64(z.Clients)), f2(med(z.CPU)/med(a.CPU)))
		p("  but where it lands. Pinging the same client again and again costs %s -> %s (x%s):",
			us(med(a.HotCPU)), us(med(z.HotCPU)), f2(med(z.HotCPU)/med(a.HotCPU)))
		p("  the per-shard indexes a heartbeat touches (listpacks searched linearly while a shard")
		p("  has at most 128 rooms, skiplists beyond) cost next to nothing now that a heartbeat")
		p("  reaps with one lookup of the room's deadline and leaves the room index alone. The")
		p("  growth for a random client is memory locality: with 10 clients every Ping finds its")
		p("  room's keys in the CPU caches; with 20,000 each Ping touches a cold room (a dozen keys")
		p("  and their dictionary entries).")
	}
	if n := len(r.W6Rooms); n >= 2 {
		a, z := r.W6Rooms[0], r.W6Rooms[n-1]
		p("- **Rooms followed, %s.** Readers wait on sharded pub/sub notifications published by the", verdict("W6 reader following 10,000 rooms vs 1"))
		p("  scripts (one channel per room, one connection per shard), so a delivery costs Redis one")
		p("  push whatever the number of rooms followed: %s -> %s from %s to %s rooms. The first",
			us(med(a.CPU)), us(med(z.CPU)), fInt(float64(a.Rooms)), fInt(float64(z.Rooms)))
		p("  reader blocked in an XREAD naming every followed stream of its shard: measured with this")
		p("  program before the change, 136 µs -> 2,070 µs per delivery from 1 to 10,000 rooms, and 39 s")
		p("  to join the 10,000 rooms (2 s now).")
	}
	if n := len(r.W6Backlog); n >= 1 {
		z := r.W6Backlog[n-1]
		p("- **Backlog.** Releasing the next message is one LMPOP over the ten priority lists, O(1)")
		p("  whatever the backlog: p50 release latency %s with %s messages waiting.", us(med(z.P50)), fInt(float64(z.Backlog)))
	}
	p("")
	p("**Round trips.** The original library needed S+3 round trips per message. Here a message")
	p("costs one send (or a share of a `SendBatch`) and one ack per subscriber process: S+1 with")
	p("a process per subscriber, about 1 through one gateway whatever S. Nothing is read with a")
	p("command: deliveries are pushed (W5).")
	return b.String()
}
