package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncfanout/syncfanout/queue"
)

// Label values of syncfanout_worker_latency_seconds.
const (
	StatMin = "min"
	StatAvg = "avg"
	StatMax = "max"
)

// WorkerCollector is a prometheus.Collector for one Worker: its in-process
// counters (Worker.Stats). It reads no Redis; register it next to the
// Collector of the worker's Queue, which exports the deployment gauges.
type WorkerCollector struct {
	w *queue.Worker

	received, delivered, invalid, handlerErrors, handlerPanics, timeouts *prometheus.Desc
	acks, ackCalls, acksRefused, acksWaiting, rooms, clients, latency    *prometheus.Desc
}

// NewWorkerCollector returns a WorkerCollector for w. Of opts, only
// Namespace and ConstLabels apply. Register it yourself.
func NewWorkerCollector(w *queue.Worker, opts Options) *WorkerCollector {
	opts = opts.withDefaults()
	c := &WorkerCollector{w: w}
	desc := describer(opts, "worker")
	c.received = desc("messages_received_total", "Messages (queued and out-of-band) the worker read from the streams of its rooms, once per message.")
	c.delivered = desc("messages_delivered_total", "HandleMessage calls of the worker, one per message and client.")
	c.invalid = desc("invalid_entries_total", "Malformed stream entries and payloads the worker skipped.")
	c.handlerErrors = desc("handler_errors_total", "HandleMessage and HandleClientTimeout calls that returned an error.")
	c.handlerPanics = desc("handler_panics_total", "HandleMessage and HandleClientTimeout calls that panicked.")
	c.timeouts = desc("client_timeouts_total", "Evictions of the worker's clients, each reported once to HandleClientTimeout.")
	c.acks = desc("acks_total", "Acks sent through Worker.Ack.")
	c.ackCalls = desc("ack_calls_total", "Ack script calls that carried the worker's acks (fewer than the acks when they are batched).")
	c.acksRefused = desc("acks_refused_total", "Acks of the worker that Redis refused (stale, not a member...).")
	c.acksWaiting = desc("acks_waiting", "Acks of the worker waiting for the next ack call.")
	c.rooms = desc("rooms", "Rooms the worker follows.")
	c.clients = desc("clients", "Clients the worker delivers for.")
	c.latency = desc("latency_seconds", "Enqueue (Redis clock) to receipt (this host's clock) over the worker's last LatencyWindow received messages: min, avg and max.", "stat")
	return c
}

// Describe sends the descriptors of every metric the WorkerCollector exports.
func (c *WorkerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.received, c.delivered, c.invalid, c.handlerErrors, c.handlerPanics, c.timeouts,
		c.acks, c.ackCalls, c.acksRefused, c.acksWaiting, c.rooms, c.clients, c.latency,
	} {
		ch <- d
	}
}

// Collect reads the worker's counters.
func (c *WorkerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.w.Stats()
	metric := emitter(ch)
	metric(c.received, prometheus.CounterValue, float64(s.Received))
	metric(c.delivered, prometheus.CounterValue, float64(s.Delivered))
	metric(c.invalid, prometheus.CounterValue, float64(s.Invalid))
	metric(c.handlerErrors, prometheus.CounterValue, float64(s.HandlerErrors))
	metric(c.handlerPanics, prometheus.CounterValue, float64(s.HandlerPanics))
	metric(c.timeouts, prometheus.CounterValue, float64(s.ClientTimeouts))
	metric(c.acks, prometheus.CounterValue, float64(s.Acks))
	metric(c.ackCalls, prometheus.CounterValue, float64(s.AckCalls))
	metric(c.acksRefused, prometheus.CounterValue, float64(s.AcksRefused))
	metric(c.acksWaiting, prometheus.GaugeValue, float64(s.AcksWaiting))
	metric(c.rooms, prometheus.GaugeValue, float64(s.Rooms))
	metric(c.clients, prometheus.GaugeValue, float64(s.Clients))
	if s.LatencySamples > 0 {
		// Without samples the window says nothing; zeros would read as
		// an instant delivery.
		metric(c.latency, prometheus.GaugeValue, s.LatencyMin.Seconds(), StatMin)
		metric(c.latency, prometheus.GaugeValue, s.LatencyAvg.Seconds(), StatAvg)
		metric(c.latency, prometheus.GaugeValue, s.LatencyMax.Seconds(), StatMax)
	}
}

var _ prometheus.Collector = (*WorkerCollector)(nil)
