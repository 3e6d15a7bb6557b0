package faults_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// quietLogger drops the library's warnings (faults make many) but counts
// them by message.
type quietLogger struct {
	mu     sync.Mutex
	counts map[string]int
}

func newQuietLogger() (*slog.Logger, *quietLogger) {
	q := &quietLogger{counts: map[string]int{}}
	return slog.New(q), q
}

func (q *quietLogger) Enabled(context.Context, slog.Level) bool { return true }
func (q *quietLogger) Handle(_ context.Context, r slog.Record) error {
	q.mu.Lock()
	q.counts[r.Message]++
	q.mu.Unlock()
	return nil
}
func (q *quietLogger) WithAttrs([]slog.Attr) slog.Handler { return q }
func (q *quietLogger) WithGroup(string) slog.Handler      { return q }

func (q *quietLogger) count(msg string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.counts[msg]
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newQueue returns a Queue closed at cleanup.
func newQueue(t *testing.T, rdb redis.UniversalClient, opts queue.Options) *queue.Queue {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := queue.New(ctx, rdb, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// payload is what the fault tests send: who sent it, its number in that
// producer's sequence and the priority it was sent with.
func payload(producer, seq, prio int) []byte {
	return fmt.Appendf(nil, "%d:%d:%d", producer, seq, prio)
}

// transient reports errors worth retrying while Redis is restarting or
// failing over: anything but the library's own verdicts.
func transient(err error) bool {
	for _, s := range []error{queue.ErrStaleAck, queue.ErrInvalidToken, queue.ErrRoomReset, queue.ErrNotMember,
		queue.ErrEvicted, queue.ErrClosed, queue.ErrObserver, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, s) {
			return false
		}
	}
	return true
}

// retry calls fn until it returns nil or a non-transient error, or ctx ends.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// recorder checks what members that stayed in a room received: every
// released message exactly once, in release order, and lock-step: a member
// receives message k+1 only after every member that stayed started its ack
// of message k. Events are numbered in the order this process saw them.
type recorder struct {
	mu     sync.Mutex
	clock  int
	recv   map[string][]recvEvent    // by member
	acking map[string]map[uint64]int // member -> message ID -> clock when its ack started
}

type recvEvent struct {
	at      int
	id      uint64
	payload string
}

func newRecorder() *recorder {
	return &recorder{recv: map[string][]recvEvent{}, acking: map[string]map[uint64]int{}}
}

func (r *recorder) received(member string, m *queue.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock++
	r.recv[member] = append(r.recv[member], recvEvent{at: r.clock, id: m.ID, payload: string(m.Data())})
}

func (r *recorder) ackStarted(member string, id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock++
	if r.acking[member] == nil {
		r.acking[member] = map[uint64]int{}
	}
	if _, ok := r.acking[member][id]; !ok {
		r.acking[member][id] = r.clock
	}
}

// report is the outcome of recorder.check.
type report struct {
	Messages   int // distinct messages received by the members that stayed
	Lost       int // released to the room, missing at a member that stayed
	Duplicated int
	OutOfOrder int
	Violations int // lock-step violations
}

func (rp report) String() string {
	return fmt.Sprintf("messages=%d lost=%d duplicated=%d out-of-order=%d lock-step-violations=%d",
		rp.Messages, rp.Lost, rp.Duplicated, rp.OutOfOrder, rp.Violations)
}

// check compares what the members that stayed received against want, the
// message IDs released to the room in order (nil: the order the first
// member saw).
func (r *recorder) check(stayed []string, want []uint64) (report, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rp report
	var problems []string
	if want == nil && len(stayed) > 0 {
		for _, e := range r.recv[stayed[0]] {
			want = append(want, e.id)
		}
	}
	rp.Messages = len(want)
	pos := make(map[uint64]int, len(want))
	for i, id := range want {
		pos[id] = i
	}
	for _, m := range stayed {
		seen := map[uint64]int{}
		last := -1
		for _, e := range r.recv[m] {
			seen[e.id]++
			if seen[e.id] > 1 {
				rp.Duplicated++
				problems = append(problems, fmt.Sprintf("%s received %d twice", m, e.id))
				continue
			}
			p, ok := pos[e.id]
			if !ok {
				continue // not one of the messages checked (sent before it joined, say)
			}
			if p < last {
				rp.OutOfOrder++
				problems = append(problems, fmt.Sprintf("%s received %d after %d", m, e.id, want[last]))
			}
			last = max(last, p)
			if p > 0 {
				prev := want[p-1]
				for _, o := range stayed {
					at, ok := r.acking[o][prev]
					if !ok || at > e.at {
						rp.Violations++
						problems = append(problems, fmt.Sprintf("%s received %d before %s acked %d", m, e.id, o, prev))
					}
				}
			}
		}
		for _, id := range want {
			if seen[id] == 0 {
				rp.Lost++
				problems = append(problems, fmt.Sprintf("%s never received %d", m, id))
			}
		}
	}
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
	}
	return rp, problems
}

// ids returns the message IDs member received, in order.
func (r *recorder) ids(member string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, e := range r.recv[member] {
		out = append(out, e.id)
	}
	return out
}

// member consumes a subscription in the background: it records and acks
// every message, retrying acks over transient errors, until the
// subscription ends or stop is called.
type member struct {
	name   string
	sub    *queue.Subscription
	rec    *recorder
	hold   atomic.Bool // when set, messages are received but not acked
	mu     sync.Mutex
	got    []*queue.Message // received, not yet taken by next
	ready  chan struct{}    // signalled when got grows
	err    chan error       // the error that ended it
	cancel context.CancelFunc
	done   chan struct{}
}

func startMember(t *testing.T, name string, sub *queue.Subscription, rec *recorder) *member {
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: name, sub: sub, rec: rec, ready: make(chan struct{}, 1), err: make(chan error, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			msg, err := nextMessage(ctx, sub)
			if err != nil {
				m.err <- err
				return
			}
			rec.received(name, msg)
			m.mu.Lock()
			m.got = append(m.got, msg)
			m.mu.Unlock()
			select {
			case m.ready <- struct{}{}:
			default:
			}
			if m.hold.Load() || msg.OutOfBand {
				continue
			}
			rec.ackStarted(name, msg.ID)
			err = retry(ctx, func() error { return msg.Ack(ctx) })
			if errors.Is(err, queue.ErrNotMember) || errors.Is(err, queue.ErrRoomReset) {
				continue // evicted or reset meanwhile: Next says which
			}
			if err != nil && !errors.Is(err, queue.ErrStaleAck) {
				if ctx.Err() == nil {
					m.err <- fmt.Errorf("ack %d: %w", msg.ID, err)
				}
				return
			}
		}
	}()
	t.Cleanup(m.stop)
	return m
}

func (m *member) stop() {
	m.cancel()
	<-m.done
}

func (m *member) take() *queue.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.got) == 0 {
		return nil
	}
	msg := m.got[0]
	m.got = m.got[1:]
	return msg
}

// next waits for the member's next message.
func (m *member) next(ctx context.Context, t *testing.T) *queue.Message {
	t.Helper()
	for {
		if msg := m.take(); msg != nil {
			return msg
		}
		select {
		case <-m.ready:
		case err := <-m.err:
			if msg := m.take(); msg != nil {
				m.err <- err
				return msg
			}
			t.Fatalf("member %s ended: %v", m.name, err)
		case <-ctx.Done():
			t.Fatalf("member %s: no message: %v", m.name, ctx.Err())
		}
	}
}

// tryNext is next without failing the test: the message, or why none came.
func (m *member) tryNext(ctx context.Context) (*queue.Message, error) {
	for {
		if msg := m.take(); msg != nil {
			return msg, nil
		}
		select {
		case <-m.ready:
		case err := <-m.err:
			if msg := m.take(); msg != nil {
				m.err <- err
				return msg, nil
			}
			m.err <- err
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// ended waits until the member's subscription ends and returns why; the
// messages it received before are dropped.
func (m *member) ended(ctx context.Context, t *testing.T) error {
	t.Helper()
	select {
	case err := <-m.err:
		return err
	case <-ctx.Done():
		t.Fatalf("member %s did not end: %v", m.name, ctx.Err())
		return nil
	}
}

// roomSlot returns the cluster slot of room's keys under prefix.
func roomSlot(t *testing.T, prefix, room string) int {
	t.Helper()
	l, err := keys.New(prefix, 16)
	require.NoError(t, err)
	return keys.Slot(l.Stream(room))
}

// proxiedClient returns a client to backend b whose every connection, to
// any node, goes through a proxy, and the proxies; both are closed at
// cleanup. Cutting every proxy cuts this client (and the readers the
// library derives from it) off Redis, and nothing else.
func proxiedClient(t *testing.T, b *redistest.Backend) (redis.UniversalClient, []*redistest.Proxy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	targets, err := b.MasterAddrs(ctx)
	require.NoError(t, err)
	via := map[string]string{}
	var proxies []*redistest.Proxy
	for _, addr := range targets {
		p := redistest.NewProxy(t, addr)
		proxies = append(proxies, p)
		via[addr] = p.Addr()
	}
	var d net.Dialer
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		p, ok := via[addr]
		if !ok {
			return nil, fmt.Errorf("no proxy for %s", addr)
		}
		return d.DialContext(ctx, network, p)
	}
	var c redis.UniversalClient
	if b.Name == redistest.NameCluster {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: b.Addrs, Dialer: dial})
	} else {
		c = redis.NewClient(&redis.Options{Addr: b.Addrs[0], Dialer: dial})
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, proxies
}

// nextMessage is sub.Next, waiting through the *queue.ReadError it returns
// while Redis is unreachable: these tests want the subscription's outcome.
func nextMessage(ctx context.Context, sub *queue.Subscription) (*queue.Message, error) {
	for {
		m, err := sub.Next(ctx)
		var re *queue.ReadError
		if errors.As(err, &re) {
			continue
		}
		return m, err
	}
}
