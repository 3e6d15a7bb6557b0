// Package metrics exports the activity of a Queue and its Workers to
// Prometheus.
//
// NewCollector returns a prometheus.Collector; register it on the registry
// of your choice (the package never touches prometheus.DefaultRegisterer):
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(q, metrics.Options{}))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Counters and histograms come from the Queue's in-process statistics
// (queue.Stats): they describe what this process did. Gauges describe the
// whole deployment and are read from Redis on each scrape through
// Queue.Metrics, at a cost of one pipeline of three commands per shard,
// and then one HGET per exported top room (Queue.InFlightSince, for
// room_inflight_age_seconds), whatever the number of rooms: scraping
// often is safe.
//
// NewWorkerCollector does the same for a Worker's in-process counters
// (queue.WorkerStats); it reads no Redis.
package metrics
