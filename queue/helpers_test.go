package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// Shared test settings. Time-based rules run with the shortest timeouts the
// options allow, and every wait has a generous deadline instead of a sleep.
const (
	shortTimeout   = time.Second
	shortHousekeep = 150 * time.Millisecond
	waitLimit      = 10 * time.Second // one awaited event
	testLimit      = 45 * time.Second // a whole test body
	// evictionSlack: how late past its deadline (and one housekeeping
	// interval) an eviction may be stamped. The housekeeping goroutine
	// and the script run late on a loaded machine (load ~10 on 2 cores
	// here): a second and more, not only 500ms. An eviction that
	// housekeeping does not make at all still fails the bound.
	evictionSlack  = 2 * time.Second
	shortHeartbeat = 100 * time.Millisecond // members' beats under fast
	stampTolerance = 2 * time.Millisecond   // stream ID ms vs the script's TIME
)

var discardLogger = slog.New(slog.DiscardHandler)

// testContext bounds a test body; it is cancelled at cleanup.
func testContext(t *testing.T) context.Context {
	t.Helper()
	return testContextWithin(t, testLimit)
}

// testContextWithin bounds a test body by d rather than testLimit.
func testContextWithin(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fast returns options with the shortest liveness timeouts allowed.
func fast(o queue.Options) queue.Options {
	o.ClientTimeout = shortTimeout
	o.HousekeepingInterval = shortHousekeep
	// Members beat ten times per ClientTimeout (three by default), so
	// that a stall of the machine evicts no live member: 0.9s of slack.
	o.HeartbeatInterval = shortHeartbeat
	return o
}

// testBundle is what tests start from: a bounded context, a Queue on the
// backend (closed at cleanup) and the key layout of its prefix for the
// checks that look under the API. Tests needing more (a second Queue, a
// cut-able connection) add it with setupOn.
type testBundle struct {
	ctx     context.Context
	q       *queue.Queue
	backend *redistest.Backend
	layout  *keys.Layout // NumShards: the Queue's, the default unless opts set it
}

// defaultNumShards is Options.NumShards' default.
const defaultNumShards = 16

// setup returns a testBundle with opts (at most one; none: the defaults).
func setup(t *testing.T, b *redistest.Backend, opts ...queue.Options) *testBundle {
	t.Helper()
	var o queue.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	q := setupOn(t, b.Client, b.Prefix, o)
	return &testBundle{ctx: testContext(t), q: q, backend: b, layout: layoutOf(t, b, o.NumShards)}
}

// layoutOf names the raw keys of b's prefix for numShards (0: the
// default), for the checks that look under the API.
func layoutOf(t *testing.T, b *redistest.Backend, numShards int) *keys.Layout {
	t.Helper()
	if numShards == 0 {
		numShards = defaultNumShards
	}
	l, err := keys.New(b.Prefix, numShards)
	require.NoError(t, err)
	return l
}

// setupOn returns a Queue on any client (another process, a cut-able
// connection...), closed at cleanup before the backend's keys are deleted.
func setupOn(t *testing.T, rdb redis.UniversalClient, prefix string, opts queue.Options) *queue.Queue {
	t.Helper()
	opts.Prefix = prefix
	if opts.Logger == nil {
		opts.Logger = discardLogger
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	q, err := queue.New(ctx, rdb, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func join(t *testing.T, ctx context.Context, q *queue.Queue, room string, opts ...queue.JoinOption) *queue.Subscription {
	t.Helper()
	s, err := q.Join(ctx, room, opts...)
	require.NoError(t, err)
	return s
}

// subscribe makes a new client ID a member through the producer-side API
// only: nobody beats for it unless the test calls Ping.
func subscribe(t *testing.T, ctx context.Context, q *queue.Queue, room string) string {
	t.Helper()
	id, err := q.CreateClientID(ctx)
	require.NoError(t, err)
	require.NoError(t, q.Subscribe(ctx, id, room))
	return id
}

func send(t *testing.T, ctx context.Context, q *queue.Queue, room string, data any, opts ...queue.SendOption) uint64 {
	t.Helper()
	id, err := q.Send(ctx, room, data, opts...)
	require.NoError(t, err)
	return id
}

func sendOOB(t *testing.T, ctx context.Context, q *queue.Queue, room string, data any, opts ...queue.SendOption) uint64 {
	t.Helper()
	id, err := q.SendOutOfBand(ctx, room, data, opts...)
	require.NoError(t, err)
	return id
}

// next waits for the subscription's next message.
func next(t *testing.T, ctx context.Context, s *queue.Subscription) *queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	m, err := s.Next(ctx)
	require.NoError(t, err, "waiting for a message for client %s", s.ClientID())
	return m
}

// nextErr waits for the subscription to end with an error.
func nextErr(t *testing.T, ctx context.Context, s *queue.Subscription) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	for {
		m, err := s.Next(ctx)
		var re *queue.ReadError
		if errors.As(err, &re) {
			continue // Redis unreachable for a while: not an end
		}
		if err != nil {
			require.NotErrorIs(t, err, context.DeadlineExceeded, "the subscription of %s never ended", s.ClientID())
			return err
		}
		t.Logf("client %s: message %d before the error", s.ClientID(), m.ID)
	}
}

// text decodes a string payload.
func text(t *testing.T, m *queue.Message) string {
	t.Helper()
	var s string
	require.NoError(t, m.Decode(&s))
	return s
}

func roomState(t *testing.T, ctx context.Context, q *queue.Queue, room string) queue.RoomState {
	t.Helper()
	st, err := q.RoomState(ctx, room)
	require.NoError(t, err)
	return st
}

// barrierView is the part of a room's state that acks and membership may
// change: equal views mean the barrier did not move.
type barrierView struct {
	InFlight uint64
	Pending  int
	Members  map[string]bool // client -> acked the in-flight message
	Missing  []string
	LastSeq  uint64
}

func viewOf(st queue.RoomState) barrierView {
	v := barrierView{Pending: st.Pending, Members: map[string]bool{}, Missing: st.Missing, LastSeq: st.LastSeq}
	if st.InFlight != nil {
		v.InFlight = st.InFlight.Seq
	}
	for _, m := range st.Members {
		v.Members[m.ClientID] = m.Acked
	}
	return v
}

func view(t *testing.T, ctx context.Context, q *queue.Queue, room string) barrierView {
	t.Helper()
	return viewOf(roomState(t, ctx, q, room))
}

// history reads a room's whole delivery stream with streams.History and
// fails on any error (malformed entries included).
func history(t *testing.T, ctx context.Context, q *queue.Queue, room string) []streams.Event {
	t.Helper()
	return historyRange(t, ctx, q, room, streams.Range{})
}

func historyRange(t *testing.T, ctx context.Context, q *queue.Queue, room string, rg streams.Range) []streams.Event {
	t.Helper()
	var out []streams.Event
	for ev, err := range q.History(ctx, room, rg) {
		require.NoError(t, err)
		out = append(out, ev)
	}
	return out
}

// waitEvent tails a room's stream from its start until an event matches.
func waitEvent(t *testing.T, ctx context.Context, q *queue.Queue, room string, pred func(streams.Event) bool) streams.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	for ev, err := range q.Tail(ctx, room, "0") {
		if err == nil && pred(ev) { // Tail resumes by itself after errors
			return ev
		}
	}
	t.Fatalf("no matching event in room %q within %v", room, waitLimit)
	return streams.Event{}
}

// ofType keeps the events of the given types, in order.
func ofType(evs []streams.Event, types ...streams.Type) []streams.Event {
	var out []streams.Event
	for _, ev := range evs {
		for _, ty := range types {
			if ev.Type == ty {
				out = append(out, ev)
				break
			}
		}
	}
	return out
}

// messageIDs lists the message IDs of the queued messages in evs, in order.
func messageIDs(evs []streams.Event) []uint64 {
	var ids []uint64
	for _, ev := range ofType(evs, streams.Message) {
		ids = append(ids, ev.MessageID)
	}
	return ids
}

// findEvent returns the index of the first event matching pred, or -1.
func findEvent(evs []streams.Event, pred func(streams.Event) bool) int {
	for i, ev := range evs {
		if pred(ev) {
			return i
		}
	}
	return -1
}

func isClientEvent(ty streams.Type, client string) func(streams.Event) bool {
	return func(ev streams.Event) bool { return ev.Type == ty && ev.ClientID == client }
}

func isMessage(id uint64) func(streams.Event) bool {
	return func(ev streams.Event) bool { return ev.Type == streams.Message && ev.MessageID == id }
}

// serverTime reads TIME. On the cluster backend it may come from any
// master; they all run on this host, so they share one clock.
func serverTime(t *testing.T, ctx context.Context, rdb redis.UniversalClient) time.Time {
	t.Helper()
	now, err := rdb.Time(ctx).Result()
	require.NoError(t, err)
	return now
}

// between requires lo <= at <= hi at the millisecond resolution of the
// engine's timestamps (TIME read by a script, truncated to ms).
func between(t *testing.T, at, lo, hi time.Time, what string) {
	t.Helper()
	lo, hi = lo.Truncate(time.Millisecond), hi.Truncate(time.Millisecond)
	require.False(t, at.IsZero(), "%s is zero", what)
	require.Falsef(t, at.Before(lo) || at.After(hi), "%s = %s, want within server TIME [%s, %s]",
		what, at.Format(time.StampMilli), lo.Format(time.StampMilli), hi.Format(time.StampMilli))
}

// snapshotter returns a function that lists every key under the backend's
// prefix, on every master, with its DUMP value: two equal snapshots mean
// nothing changed. It keeps one client per master for repeated use.
func snapshotter(t *testing.T, ctx context.Context, b *redistest.Backend) func() map[string]string {
	t.Helper()
	addrs, err := b.MasterAddrs(ctx)
	require.NoError(t, err)
	var nodes []*redis.Client
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = c.Close() })
		nodes = append(nodes, c)
	}
	return func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, c := range nodes {
			var names []string
			it := c.Scan(ctx, 0, b.Prefix+"*", 1000).Iterator()
			for it.Next(ctx) {
				names = append(names, it.Val())
			}
			require.NoError(t, it.Err())
			pipe := c.Pipeline()
			dumps := make([]*redis.StringCmd, len(names))
			for i, k := range names {
				dumps[i] = pipe.Dump(ctx, k)
			}
			_, err := pipe.Exec(ctx)
			if err != nil && !errors.Is(err, redis.Nil) {
				require.NoError(t, err)
			}
			for i, k := range names {
				if v, err := dumps[i].Result(); err == nil {
					out[k] = v
				}
			}
		}
		return out
	}
}

// netSwitch is a dialer that can take every connection of one client
// offline: Cut closes them and refuses new ones until Heal, like a network
// partition of one process. It works for standalone and cluster clients
// alike (redistest.Proxy fronts a single node).
type netSwitch struct {
	mu      sync.Mutex
	down    bool
	conns   map[net.Conn]struct{}
	refused chan struct{} // closed at the first dial refused while down
	once    sync.Once
}

var errNetDown = errors.New("test: network cut")

func newNetSwitch() *netSwitch {
	return &netSwitch{conns: map[net.Conn]struct{}{}, refused: make(chan struct{})}
}

func (s *netSwitch) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		s.once.Do(func() { close(s.refused) })
		return nil, errNetDown
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		_ = c.Close()
		return nil, errNetDown
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("test: dialed a %T, want *net.TCPConn", c)
	}
	tc := &trackedConn{TCPConn: tcp, s: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *netSwitch) Cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = true
	for c := range s.conns {
		_ = c.(*trackedConn).TCPConn.Close()
		delete(s.conns, c)
	}
}

func (s *netSwitch) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = false
}

// trackedConn keeps the *net.TCPConn methods (SyscallConn among them), so
// go-redis's health check still spots connections the switch closed.
type trackedConn struct {
	*net.TCPConn
	s *netSwitch
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.TCPConn.Close()
}

// Options of the clients whose network a test cuts. Without command
// retries the engine, not go-redis, meets the failure. The large pool keeps
// go-redis from starting its background re-dial loop (at PoolSize failed
// dials), which sleeps a second at a time and could outlive the test.
const (
	cutMaxRetries    = -1
	cutDialerRetries = 1
	cutPoolSize      = 1000
)

// switchedClient returns a client of the backend whose connections all go
// through sw; it is closed at cleanup.
func switchedClient(t *testing.T, b *redistest.Backend, sw *netSwitch) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	if b.Name == redistest.NameCluster {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: b.Addrs, Dialer: sw.dial,
			MaxRetries: cutMaxRetries, DialerRetries: cutDialerRetries, PoolSize: cutPoolSize})
	} else {
		c = redis.NewClient(&redis.Options{Addr: b.Addrs[0], Dialer: sw.dial,
			MaxRetries: cutMaxRetries, DialerRetries: cutDialerRetries, PoolSize: cutPoolSize})
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// logSignal returns a logger whose done channel closes at the first record
// whose message contains match: the way to wait for a background error the
// engine only logs.
func logSignal(match string) (*slog.Logger, <-chan struct{}) {
	h := &signalHandler{match: match, done: make(chan struct{})}
	return slog.New(h), h.done
}

type signalHandler struct {
	match string
	once  sync.Once
	done  chan struct{}
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.once.Do(func() { close(h.done) })
	}
	return nil
}

func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }
