package queue

import (
	"sync"
	"sync/atomic"
	"time"
)

type workerCounters struct {
	received, delivered, invalid            atomic.Uint64
	handlerErrors, handlerPanics, timeouts  atomic.Uint64
	kicked                                  atomic.Uint64
	acks, ackCalls, ackRefused, acksWaiting atomic.Int64
}

// WorkerStats is a snapshot of a worker's in-process counters and its
// latency over the last LatencyWindow messages (Stats, as for a Queue:
// Metrics are the deployment's gauges read from Redis).
type WorkerStats struct {
	// Received counts the messages (queued and out-of-band) read from the
	// streams of the rooms the worker delivers for, once per message.
	Received uint64
	// Delivered counts HandleMessage calls (one per message and client).
	Delivered uint64
	// Invalid counts malformed stream entries and payloads, skipped.
	Invalid uint64
	// HandlerErrors and HandlerPanics count failed callbacks.
	HandlerErrors, HandlerPanics uint64
	// ClientTimeouts counts evictions of the worker's clients (each one
	// reported once to HandleClientTimeout).
	ClientTimeouts uint64
	// ClientsKicked counts the worker's clients an operator removed (each
	// one reported once to HandleClientKicked).
	ClientsKicked uint64
	// Acks counts acks sent through Worker.Ack, AckCalls the script calls
	// that carried them, AcksRefused those Redis refused (stale, not a
	// member...), AcksWaiting those waiting for the next call.
	Acks, AckCalls, AcksRefused, AcksWaiting int64
	// Rooms and Clients: followed rooms and the clients delivered for.
	Rooms, Clients int
	// Latency, from enqueue (server clock) to receipt (this host's clock),
	// over the last LatencySamples received messages: the original
	// library's latency. Clock skew between this host and Redis shows up
	// in it (and can make it negative).
	LatencyMin, LatencyMax, LatencyAvg time.Duration
	LatencySamples                     int
}

// Stats returns a snapshot of the worker's counters. It reads no Redis.
func (w *Worker) Stats() WorkerStats {
	m := WorkerStats{
		Received: w.m.received.Load(), Delivered: w.m.delivered.Load(), Invalid: w.m.invalid.Load(),
		HandlerErrors: w.m.handlerErrors.Load(), HandlerPanics: w.m.handlerPanics.Load(),
		ClientTimeouts: w.m.timeouts.Load(), ClientsKicked: w.m.kicked.Load(),
		Acks: w.m.acks.Load(), AckCalls: w.m.ackCalls.Load(), AcksRefused: w.m.ackRefused.Load(),
		AcksWaiting: w.m.acksWaiting.Load(),
	}
	w.mu.Lock()
	rooms := make([]*workerRoom, 0, len(w.rooms))
	for _, r := range w.rooms {
		rooms = append(rooms, r)
	}
	w.mu.Unlock()
	m.Rooms = len(rooms)
	for _, r := range rooms {
		r.mu.Lock()
		m.Clients += len(r.clients)
		r.mu.Unlock()
	}
	m.LatencyMin, m.LatencyMax, m.LatencyAvg, m.LatencySamples = w.latency.stats()
	return m
}

// latencyRing keeps the last n latencies; stats are computed over exactly
// those, so an old spike leaves the window after n messages.
type latencyRing struct {
	mu   sync.Mutex
	buf  []time.Duration
	next int
	full bool
}

func newLatencyRing(n int) *latencyRing { return &latencyRing{buf: make([]time.Duration, n)} }

func (l *latencyRing) add(d time.Duration) {
	l.mu.Lock()
	l.buf[l.next] = d
	l.next++
	if l.next == len(l.buf) {
		l.next, l.full = 0, true
	}
	l.mu.Unlock()
}

func (l *latencyRing) stats() (lo, hi, avg time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = l.next
	if l.full {
		n = len(l.buf)
	}
	if n == 0 {
		return 0, 0, 0, 0
	}
	lo, hi = l.buf[0], l.buf[0]
	var sum int64 // 1000 samples of even an hour each fit comfortably
	for _, d := range l.buf[:n] {
		lo, hi = min(lo, d), max(hi, d)
		sum += int64(d)
	}
	return lo, hi, time.Duration(sum / int64(n)), n
}
