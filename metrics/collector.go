package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncfanout/syncfanout/queue"
)

// Options configure a Collector. The zero value of every field selects the
// documented default.
type Options struct {
	// Namespace starts every metric name (default "syncfanout"). A name
	// Prometheus does not accept makes Register fail.
	Namespace string
	// TopRooms is how many rooms with the largest backlog are exported
	// with a room label (default 10, at most queue.MaxTopRooms; negative:
	// none). It bounds the cardinality of the only per-room metric.
	TopRooms int
	// ScrapeTimeout bounds the Redis reads of one scrape (default 3s).
	ScrapeTimeout time.Duration
	// ConstLabels are added to every metric, for example to tell apart
	// the collectors of two Queues registered on one registry.
	ConstLabels prometheus.Labels
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = "syncfanout"
	}
	switch {
	case o.TopRooms == 0:
		o.TopRooms = 10
	case o.TopRooms < 0:
		o.TopRooms = 0
	case o.TopRooms > queue.MaxTopRooms:
		o.TopRooms = queue.MaxTopRooms
	}
	if o.ScrapeTimeout <= 0 {
		o.ScrapeTimeout = 3 * time.Second
	}
	return o
}

// Label values of the vector metrics.
const (
	ReasonStale     = "stale"      // ack of a message no longer in flight
	ReasonInvalid   = "invalid"    // malformed, altered, foreign or pre-reset token
	ReasonNotMember = "not-member" // ack from a non-member or an observer

	ReasonTimeout    = "timeout"     // no heartbeat within ClientTimeout
	ReasonAckTimeout = "ack-timeout" // no ack within AckTimeout
	ReasonLeave      = "leave"       // removed by someone else's Unsubscribe
	ReasonMaxLag     = "max-lag"     // more than the room's Policy.MaxLag messages behind
	ReasonKick       = "kick"        // removed by an operator (Admin.Kick, Admin.DeleteRoom)
)

// Label values of admin_actions_total: the operators' transitions.
const (
	ActionPause   = "pause"
	ActionResume  = "resume"
	ActionPurge   = "purge"
	ActionRelease = "release"
	ActionKick    = "kick"
	ActionDelete  = "delete"
)

// Collector is a prometheus.Collector for one Queue.
type Collector struct {
	q    *queue.Queue
	opts Options

	sent, released, oob, delivered, acked, malformed *prometheus.Desc
	expired, idleRooms                               *prometheus.Desc
	ackRejected, evictions                           *prometheus.Desc
	releaseLatency, barrierWait, endToEnd            *prometheus.Desc
	rooms, backlog, members, observers, roomBacklog  *prometheus.Desc
	roomInFlightAge                                  *prometheus.Desc
	malformedPending                                 *prometheus.Desc
	redisUp, scrapeSeconds                           *prometheus.Desc
	shardConflict, configRestored                    *prometheus.Desc

	// Room policies (queue.Policy).
	dropped, skipped *prometheus.Desc
	adminActions     *prometheus.Desc
}

// NewCollector returns a Collector for q. Register it yourself.
func NewCollector(q *queue.Queue, opts Options) *Collector {
	opts = opts.withDefaults()
	c := &Collector{q: q, opts: opts}
	desc := describer(opts, "")
	c.sent = desc("messages_sent_total", "Messages this process enqueued with Send.")
	c.released = desc("messages_released_total", "Messages released by this process's sends and acks (the barrier let them through).")
	c.oob = desc("oob_messages_sent_total", "Out-of-band messages this process sent.")
	c.delivered = desc("messages_delivered_total", "Messages handed to subscribers of this process, one per subscriber.")
	c.acked = desc("acks_total", "Acks of this process that Redis accepted.")
	c.ackRejected = desc("acks_rejected_total", "Acks of this process that were refused, by reason: stale (message no longer in flight), invalid (malformed, altered or foreign token), not-member (the client is not a voting member).", "reason")
	c.evictions = desc("evictions_total", "Subscribers of this process removed from their room, by reason: timeout (no heartbeat), ack-timeout (no ack in time), leave (someone else's Unsubscribe), max-lag (too far behind under a quorum), kick (an operator's kick or room deletion).", "reason")
	c.adminActions = desc("admin_actions_total", "Operators' transitions made through this process (queue.Admin), by action: pause, resume, purge, release, kick, delete.", "action")
	c.malformed = desc("malformed_entries_total", "Malformed stream entries this process skipped.")
	c.releaseLatency = desc("release_latency_seconds", "Time from the step that released a queued message (the last ack of the previous one, a leave, an eviction or the send itself) to its delivery to a subscriber of this process.")
	c.barrierWait = desc("barrier_wait_seconds", "Time from a message's release to its last ack (Redis clock), observed by the process that sent that ack.")
	c.endToEnd = desc("end_to_end_latency_seconds", "Time from enqueue to delivery to a subscriber of this process, out-of-band messages included.")
	c.rooms = desc("rooms", "Rooms with members, observers, a backlog or a message in flight (whole deployment).")
	c.idleRooms = desc("idle_rooms", "Idle rooms (no members, observers, backlog or message in flight) kept for their history until IdleRoomTTL deletes them (whole deployment).")
	c.expired = desc("rooms_expired_total", "Idle rooms this process's housekeeping deleted, history included (IdleRoomTTL).")
	c.backlog = desc("backlog_messages", "Pending messages over all rooms, in-flight ones excluded (whole deployment).")
	c.members = desc("members", "Voting memberships over all rooms (whole deployment).")
	c.observers = desc("observers", "Observer memberships over all rooms (whole deployment).")
	c.malformedPending = desc("malformed_pending_entries_total", "Pending entries that the release step set aside as malformed instead of releasing them, each recorded as a malformed event in its room's stream (whole deployment).")
	c.roomBacklog = desc("room_backlog_messages", "Pending messages of the rooms with the largest backlog (the TopRooms first).", "room")
	c.roomInFlightAge = desc("room_inflight_age_seconds", "How long ago the message in flight of each of the TopRooms rooms was released (Redis clock against this host's); rooms without one are left out. A room whose age keeps growing while it has a backlog is blocked.", "room")
	c.redisUp = desc("redis_up", "1 if the last scrape read the deployment gauges from Redis, 0 if it failed.")
	c.scrapeSeconds = desc("scrape_duration_seconds", "How long the last scrape's Redis reads took.")
	c.shardConflict = desc("shard_conflict", "1 while this process's housekeeping finds the deployment split: another NumShards stored, or Queues with another NumShards running on the prefix.")
	c.configRestored = desc("config_restored_total", "Times this process's housekeeping found the deployment's stored NumShards gone (Redis lost its data) and stored it again.")
	c.dropped = desc("messages_dropped_total", "Pending messages dropped by their room's overflow policy (DropOldest, DropLowestPriority), each recorded as a drop event in its room's stream (whole deployment).")
	c.skipped = desc("stragglers_skipped_total", "Members a message completed without at its ack deadline (straggler policy Skip), each recorded as a skip event in its room's stream (whole deployment).")
	return c
}

// describer returns a function that makes the descriptor of one metric of
// the subsystem ("" for the Queue's), named and labelled as opts say.
func describer(opts Options, subsystem string) func(name, help string, labels ...string) *prometheus.Desc {
	return func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(opts.Namespace, subsystem, name), help, labels, opts.ConstLabels)
	}
}

// emitter returns a function that sends one constant metric to ch, or an
// invalid metric saying why it could not be made.
func emitter(ch chan<- prometheus.Metric) func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	return func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
}

// Describe sends the descriptors of every metric the Collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.sent, c.released, c.oob, c.delivered, c.acked, c.ackRejected, c.evictions, c.malformed, c.expired,
		c.releaseLatency, c.barrierWait, c.endToEnd,
		c.rooms, c.idleRooms, c.backlog, c.members, c.observers, c.roomBacklog, c.roomInFlightAge, c.malformedPending, c.redisUp, c.scrapeSeconds,
		c.shardConflict, c.configRestored, c.adminActions,
		c.dropped, c.skipped,
	} {
		ch <- d
	}
}

// Collect reads the Queue's counters and, within ScrapeTimeout, the
// deployment gauges from Redis. When Redis fails, the counters are still
// exported, the gauges are left out and redis_up is 0.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.q.Stats()
	metric := emitter(ch)
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		metric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.sent, s.Sent)
	counter(c.released, s.Released)
	counter(c.oob, s.OutOfBand)
	counter(c.delivered, s.Delivered)
	counter(c.acked, s.Acked)
	counter(c.ackRejected, s.AckStale, ReasonStale)
	counter(c.ackRejected, s.AckInvalid, ReasonInvalid)
	counter(c.ackRejected, s.AckNotMember, ReasonNotMember)
	counter(c.evictions, s.EvictedTimeout, ReasonTimeout)
	counter(c.evictions, s.EvictedAckTimeout, ReasonAckTimeout)
	counter(c.evictions, s.EvictedMaxLag, ReasonMaxLag)
	counter(c.evictions, s.EvictedLeave, ReasonLeave)
	counter(c.evictions, s.Kicked, ReasonKick)
	counter(c.adminActions, s.AdminPause, ActionPause)
	counter(c.adminActions, s.AdminResume, ActionResume)
	counter(c.adminActions, s.AdminPurge, ActionPurge)
	counter(c.adminActions, s.AdminRelease, ActionRelease)
	counter(c.adminActions, s.AdminKick, ActionKick)
	counter(c.adminActions, s.AdminDelete, ActionDelete)
	counter(c.malformed, s.Invalid)
	counter(c.configRestored, s.ConfigRestored)
	conflict := 0.0
	if s.ShardConflict {
		conflict = 1
	}
	metric(c.shardConflict, prometheus.GaugeValue, conflict)
	counter(c.expired, s.ExpiredRooms)
	histogram(ch, c.releaseLatency, s.ReleaseLatency)
	histogram(ch, c.barrierWait, s.BarrierWait)
	histogram(ch, c.endToEnd, s.EndToEnd)

	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ScrapeTimeout)
	defer cancel()
	begin := time.Now()
	m, err := c.q.Metrics(ctx, c.opts.TopRooms)
	var since map[string]time.Time
	if err == nil && len(m.TopRooms) > 0 {
		// The rooms a stuck barrier makes grow are the top rooms: reading
		// only theirs bounds the cost by TopRooms, not by the room count.
		rooms := make([]string, len(m.TopRooms))
		for i, r := range m.TopRooms {
			rooms[i] = r.Room
		}
		since, err = c.q.InFlightSince(ctx, rooms)
	}
	now := time.Now()
	metric(c.scrapeSeconds, prometheus.GaugeValue, now.Sub(begin).Seconds())
	if err != nil {
		metric(c.redisUp, prometheus.GaugeValue, 0)
		return
	}
	metric(c.redisUp, prometheus.GaugeValue, 1)
	metric(c.rooms, prometheus.GaugeValue, float64(m.KnownRooms))
	metric(c.idleRooms, prometheus.GaugeValue, float64(m.IdleRooms))
	metric(c.backlog, prometheus.GaugeValue, float64(m.Backlog))
	metric(c.members, prometheus.GaugeValue, float64(m.Members))
	metric(c.observers, prometheus.GaugeValue, float64(m.Observers))
	metric(c.malformedPending, prometheus.CounterValue, float64(m.Malformed))
	metric(c.dropped, prometheus.CounterValue, float64(m.Dropped))
	metric(c.skipped, prometheus.CounterValue, float64(m.Skipped))
	for _, r := range m.TopRooms {
		if r.Idle {
			continue // no backlog; naming dead rooms would only add series
		}
		metric(c.roomBacklog, prometheus.GaugeValue, float64(r.Backlog), r.Room)
		if at, ok := since[r.Room]; ok {
			metric(c.roomInFlightAge, prometheus.GaugeValue, max(now.Sub(at).Seconds(), 0), r.Room)
		}
	}
}

func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, s queue.HistogramSnapshot) {
	buckets := make(map[float64]uint64, len(s.Bounds))
	for i, b := range s.Bounds {
		buckets[b.Seconds()] = s.Cumulative[i]
	}
	m, err := prometheus.NewConstHistogram(d, s.Count, s.Sum.Seconds(), buckets)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

var _ prometheus.Collector = (*Collector)(nil)
