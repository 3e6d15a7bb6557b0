package streamreader

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/streams"
)

// Handler receives, in stream order per room, every entry a Reader reads.
// It runs on the reader's goroutine and must not block: queue it.
// err is a *streams.DecodeError for malformed entries (ev is then zero but for ID).
type Handler func(room string, ev streams.Event, err error)

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// Block is how long the reader waits for a notification before it
	// checks its connection with a PING (default 5s). It bounds how long a
	// dead connection can go unnoticed (two periods), not latency.
	Block time.Duration
	// Count caps the entries one catch-up XRANGE returns (default 256).
	Count int64
	// OnError is told of Redis errors; the reader then backs off and resumes
	// every room from its last ID.
	OnError func(error)
	// OnReconnect, when set, runs after a Redis error and before the reader
	// resumes, with the position of every followed room: the place to
	// notice that Redis lost what was read (a restart without persistence,
	// a failover that lost writes) and end the rooms' subscriptions, which
	// Unfollow them. When it fails (Redis still down) the reader backs off
	// and calls it again before its next read.
	OnReconnect func(ctx context.Context, rooms []Position) error
}

// Position is a followed room and the last stream ID read for it.
type Position struct {
	Room   string
	Stream string
	Last   string
}

// Reader follows the streams of many rooms of one shard.
//
// Every script that appends to a room's stream also publishes the entry
// (with the ID it follows) on the sharded pub/sub channel named like the
// stream key, which carries the shard's hash tag. The reader holds one
// pub/sub connection with a channel per followed room, so a delivery costs
// Redis one push whatever the number of rooms followed, where a blocking
// XREAD naming every room cost O(rooms) per wake-up. The streams stay the
// source of truth: a room is read with XRANGE from its last ID when its
// subscription is confirmed (the join point to the subscription), when a
// notification does not follow the last entry read (a gap), and after any
// connection error, so nothing is skipped and nothing is read twice.
type Reader struct {
	rdb    redis.UniversalClient
	handle Handler
	opts   ReaderOptions

	mu       sync.Mutex
	rooms    map[string]*follow // by stream key
	ps       *redis.PubSub      // nil until the first subscription
	live     *redis.PubSub      // ps once a subscription was sent on it (its connection is dialled by then)
	ops      []subOp            // (un)subscriptions for the control goroutine, in order
	opsReady chan struct{}
	changed  chan struct{} // a room was followed, or the connection must be replaced
	broken   bool          // a subscription failed: replace the connection
	// maybeDue: a room may be both pending and subscribed, so prepare must
	// look for the rooms to read. Without it prepare would scan every
	// followed room on each notification, O(rooms) per delivery.
	maybeDue bool
	cancel   context.CancelFunc
	done     chan struct{}
	closed   bool
}

type follow struct {
	room string
	last string
	refs int
	// pending: the room must be read with XRANGE before notifications are
	// trusted (set when followed and after errors); subscribed: its
	// subscription was confirmed on the current connection.
	pending, subscribed bool
	// rewinds counts Follows that moved last back, so that a read already
	// under way does not mark the room read past the new point.
	rewinds int
	// unconfirmed counts sweeps that found the subscription unconfirmed.
	unconfirmed int
}

type subOp struct {
	subscribe bool
	key       string
}

// NewReader starts a reader. rdb should be a client whose connections are
// reserved for the reader (catch-up reads go through its pool; the pub/sub
// connection is its own).
func NewReader(rdb redis.UniversalClient, h Handler, opts ReaderOptions) *Reader {
	if opts.Block <= 0 {
		opts.Block = 5 * time.Second
	}
	if opts.Count <= 0 {
		opts.Count = 256
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reader{
		rdb: rdb, handle: h, opts: opts,
		rooms:    map[string]*follow{},
		opsReady: make(chan struct{}, 1),
		changed:  make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.loop(ctx) }()
	go func() { defer wg.Done(); r.control(ctx) }()
	go func() { wg.Wait(); close(r.done) }()
	return r
}

// Follow adds a room, reading its stream after the ID from (the caller's
// join point). A room already followed keeps its position: it is behind or
// at from, and the caller filters what it already has. Each Follow needs
// one Unfollow. The subscription is sent in the background; entries
// appended before it takes effect are read from the stream once it does.
func (r *Reader) Follow(ctx context.Context, room, streamKey, from string) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("syncfanout: reader closed")
	}
	f, ok := r.rooms[streamKey]
	if !ok {
		r.rooms[streamKey] = &follow{room: room, last: from, refs: 1, pending: true}
		r.enqueueLocked(subOp{subscribe: true, key: streamKey})
		r.mu.Unlock()
		return nil
	}
	f.refs++
	// Two joins of a room not followed yet can reach here in the other
	// order than their join points: the earlier joiner then needs what lies
	// between. Read again from its point; consumers drop what they have.
	var live *redis.PubSub
	if streams.CompareIDs(from, f.last) < 0 {
		f.last, f.pending = from, true
		f.rewinds++
		r.maybeDue = true
		live = r.live
	}
	r.mu.Unlock()
	if live != nil {
		// Wakes the loop out of its wait for a notification, so the room
		// is read now rather than at the next notification.
		_ = live.Ping(ctx)
	}
	return nil
}

// Unfollow drops one reference to a room; at zero the room is no longer read.
func (r *Reader) Unfollow(streamKey string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.rooms[streamKey]; ok {
		f.refs--
		if f.refs <= 0 {
			delete(r.rooms, streamKey)
			if !r.closed {
				r.enqueueLocked(subOp{key: streamKey})
			}
		}
	}
}

// enqueueLocked hands a (un)subscription to the control goroutine. Ops are
// queued under r.mu in the order the rooms map changes, and sent in that
// order, so a quick Unfollow then Follow of a room ends subscribed.
func (r *Reader) enqueueLocked(op subOp) {
	r.ops = append(r.ops, op)
	select {
	case r.opsReady <- struct{}{}:
	default:
	}
}

// Position returns the last ID read for a followed stream.
func (r *Reader) Position(streamKey string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.rooms[streamKey]
	if !ok {
		return "", false
	}
	return f.last, true
}

// Close stops the reader, closes its pub/sub connection and waits for its
// goroutines.
func (r *Reader) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return
	}
	r.closed = true
	ps := r.ps
	r.ps = nil
	r.mu.Unlock()
	r.cancel()
	if ps != nil {
		_ = ps.Close() // unblocks a receive in progress
	}
	<-r.done
}

func (r *Reader) stopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Reader) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// control sends the queued (un)subscriptions, batching consecutive ones of
// the same kind into one command.
func (r *Reader) control(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.opsReady:
		}
		r.mu.Lock()
		ops := r.ops
		r.ops = nil
		ps := r.ps
		if ps == nil && len(ops) > 0 && !r.closed {
			// No I/O: the connection is dialled by the first command, which
			// names a channel, so Redis Cluster routes it to the slot's node.
			ps = r.rdb.SSubscribe(ctx)
			r.ps = ps
		}
		r.mu.Unlock()
		if ps == nil {
			continue // closed
		}
		for i := 0; i < len(ops); {
			j := i
			var keys []string
			for j < len(ops) && ops[j].subscribe == ops[i].subscribe {
				keys = append(keys, ops[j].key)
				j++
			}
			var err error
			if ops[i].subscribe {
				err = ps.SSubscribe(ctx, keys...)
				r.mu.Lock()
				if r.ps == ps {
					r.live = ps
				}
				r.mu.Unlock()
			} else {
				err = ps.SUnsubscribe(ctx, keys...)
			}
			if err != nil && ctx.Err() == nil {
				r.report(fmt.Errorf("syncfanout: reader subscriptions: %w", err))
				r.mu.Lock()
				if r.ps == ps {
					r.broken = true
				}
				r.mu.Unlock()
			}
			i = j
		}
		r.signal(r.changed)
	}
}

func (r *Reader) report(err error) {
	if r.opts.OnError != nil {
		r.opts.OnError(err)
	}
}

// maxBackoff caps the pause between a reader's attempts to reconnect.
const maxBackoff = 500 * time.Millisecond

// sleep waits for d or until ctx ends, and reports whether ctx is alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// loop receives notifications and confirmations, and reads rooms from
// their streams when they need it.
func (r *Reader) loop(ctx context.Context) {
	backoff := 50 * time.Millisecond
	recheck := false // an error happened: OnReconnect runs before rooms are read again
	pinged := false  // a PING is out and nothing arrived since
	fail := func(err error) bool {
		if ctx.Err() != nil || r.stopping() {
			return false
		}
		if errors.Is(err, redis.ErrClosed) {
			// The client was closed under the reader: nothing can be read
			// any more; wait for Close.
			<-ctx.Done()
			return false
		}
		r.report(err)
		recheck = true
		r.resetConn()
		// Jittered, so that the readers of a deployment do not retry a dead
		// node in step; capped at maxBackoff, so that a reader resumes soon
		// after a replica's promotion.
		wait := backoff - backoff/5 + time.Duration(rand.Int64N(int64(backoff*2/5)+1))
		backoff = min(backoff*2, maxBackoff)
		// A slot may have moved, or its master died: route the next
		// connection by a slot map read just before it (go-redis reloads
		// in the background), not one read when the last attempt failed,
		// which can predate a promotion by a whole backoff.
		lead := min(wait/2, 200*time.Millisecond)
		if !sleep(ctx, wait-lead) {
			return false
		}
		if cc, ok := r.rdb.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx)
		}
		return sleep(ctx, lead)
	}
	lastSweep := time.Now()
	for {
		if ctx.Err() != nil {
			return
		}
		if time.Since(lastSweep) >= r.opts.Block {
			lastSweep = time.Now()
			if err := r.sweep(); err != nil {
				if !fail(err) {
					return
				}
				continue
			}
		}
		ps, due, ok := r.prepare(ctx)
		if !ok {
			return
		}
		if len(due) > 0 {
			if recheck && r.opts.OnReconnect != nil {
				if err := r.opts.OnReconnect(ctx, r.positions()); err != nil {
					if !fail(err) {
						return
					}
					continue
				}
			}
			recheck = false
			if err := r.catchUp(ctx, due); err != nil {
				if !fail(err) {
					return
				}
				continue
			}
		}
		if ps == nil {
			select {
			case <-ctx.Done():
				return
			case <-r.changed:
			}
			continue
		}
		msg, err := ps.ReceiveTimeout(ctx, r.opts.Block)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				if !pinged {
					pinged = true
					if err := ps.Ping(ctx); err == nil {
						continue
					}
				}
				err = errors.New("syncfanout: reader: no answer to PING")
			}
			pinged = false
			if !fail(err) {
				return
			}
			continue
		}
		pinged = false
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			r.mu.Lock()
			f, followed := r.rooms[m.Channel]
			if followed && m.Kind == "ssubscribe" {
				f.subscribed = true
				r.maybeDue = r.maybeDue || f.pending
			}
			r.mu.Unlock()
			if followed && m.Kind == "sunsubscribe" {
				// Not asked for (or asked for just before a new Follow): Redis
				// Cluster unsubscribes a moved slot's channels. Subscribe
				// everything again on a connection to the slot's new owner.
				if !fail(fmt.Errorf("syncfanout: reader: Redis unsubscribed %s", m.Channel)) {
					return
				}
			}
		case *redis.Message:
			if err := r.notified(ctx, m.Channel, m.Payload); err != nil {
				if !fail(err) {
					return
				}
			}
		}
	}
}

// prepare replaces a broken connection, and returns the current one (nil
// until a subscription was sent on it) and the rooms to read from their
// streams.
func (r *Reader) prepare(ctx context.Context) (*redis.PubSub, []string, bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, nil, false
	}
	var resubscribe []string
	if r.broken && len(r.rooms) > 0 {
		old := r.ps
		r.ps = r.rdb.SSubscribe(ctx)
		r.broken = false
		for key, f := range r.rooms {
			f.pending, f.subscribed = true, false
			resubscribe = append(resubscribe, key)
		}
		if old != nil {
			defer func() { _ = old.Close() }()
		}
	}
	ps := r.ps
	var due []string
	if r.maybeDue {
		r.maybeDue = false
		for key, f := range r.rooms {
			if f.pending && f.subscribed {
				due = append(due, key)
			}
		}
	}
	live := r.live == ps
	r.mu.Unlock()
	if len(resubscribe) > 0 {
		// The first command on the new connection names a channel, so that
		// Redis Cluster routes it to the slot's node.
		if err := ps.SSubscribe(ctx, resubscribe...); err != nil && ctx.Err() == nil {
			r.report(fmt.Errorf("syncfanout: reader subscriptions: %w", err))
		}
		r.mu.Lock()
		if r.ps == ps {
			r.live = ps
		}
		r.mu.Unlock()
		live = true
	}
	if !live {
		ps = nil // not dialled yet: receiving would dial it without a channel to route by
	}
	return ps, due, true
}

// sweep is the safety net under the notifications: every Block it has
// every room read from its stream (nothing is delivered twice: positions
// only move forward), so a notification lost in a way the reader could not
// see (a slot moving under a subscription, a subscription Redis refused)
// delays a delivery by at most Block instead of stalling the room. A
// subscription still unconfirmed after two sweeps replaces the connection.
func (r *Reader) sweep() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maybeDue = true
	for key, f := range r.rooms {
		f.pending = true
		if f.subscribed {
			f.unconfirmed = 0
			continue
		}
		f.unconfirmed++
		if f.unconfirmed >= 2 {
			return fmt.Errorf("syncfanout: reader: subscription to %s not confirmed", key)
		}
	}
	return nil
}

// resetConn marks every room for a read from its stream once subscribed
// again on a new connection.
func (r *Reader) resetConn() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.broken = true
	for _, f := range r.rooms {
		f.pending, f.subscribed = true, false
	}
}

func (r *Reader) positions() []Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Position, 0, len(r.rooms))
	for key, f := range r.rooms {
		out = append(out, Position{Room: f.room, Stream: key, Last: f.last})
	}
	return out
}

// catchUpBatch bounds the rooms whose first XRANGE goes in one pipeline.
const catchUpBatch = 128

// catchUp reads rooms from their streams after their last IDs, then trusts
// their notifications again. The first read of each room goes in a
// pipeline with those of up to catchUpBatch-1 others: a sweep (every
// Block) or a reconnect catches up every followed room, which, one round
// trip after the other, would hold notifications back for as many round
// trips as the reader follows rooms.
func (r *Reader) catchUp(ctx context.Context, keys []string) error {
	type item struct {
		key, room, last string
		rewinds         int
		cmd             *redis.XMessageSliceCmd
	}
	for len(keys) > 0 {
		n := min(len(keys), catchUpBatch)
		items := make([]item, 0, n)
		r.mu.Lock()
		for _, key := range keys[:n] {
			if f, ok := r.rooms[key]; ok {
				items = append(items, item{key: key, room: f.room, last: f.last, rewinds: f.rewinds})
			}
		}
		r.mu.Unlock()
		keys = keys[n:]
		if len(items) == 0 {
			continue
		}
		pipe := r.rdb.Pipeline()
		for i := range items {
			items[i].cmd = pipe.XRangeN(ctx, items[i].key, "("+items[i].last, "+", r.opts.Count)
		}
		_, _ = pipe.Exec(ctx) // each read carries its own error
		for _, it := range items {
			msgs, err := it.cmd.Result()
			if err != nil {
				return fmt.Errorf("syncfanout: reading %s: %w", it.key, err)
			}
			for _, m := range msgs {
				r.deliver(it.key, it.room, m)
			}
			if int64(len(msgs)) >= r.opts.Count {
				// A long stream: the rest one read after the other.
				if err := r.readStream(ctx, it.key); err != nil {
					return err
				}
			}
			r.mu.Lock()
			if f, ok := r.rooms[it.key]; ok && f.subscribed {
				if f.rewinds == it.rewinds {
					f.pending = false
				} else {
					r.maybeDue = true // moved back meanwhile: read again
				}
			}
			r.mu.Unlock()
		}
	}
	return nil
}

// readStream delivers every entry of a followed room's stream after its
// last ID.
func (r *Reader) readStream(ctx context.Context, key string) error {
	for {
		r.mu.Lock()
		f, ok := r.rooms[key]
		var room, last string
		if ok {
			room, last = f.room, f.last
		}
		r.mu.Unlock()
		if !ok {
			return nil
		}
		msgs, err := r.rdb.XRangeN(ctx, key, "("+last, "+", r.opts.Count).Result()
		if err != nil {
			return fmt.Errorf("syncfanout: reading %s: %w", key, err)
		}
		for _, m := range msgs {
			r.deliver(key, room, m)
		}
		if int64(len(msgs)) < r.opts.Count {
			return nil
		}
	}
}

// deliver hands an entry to the handler and advances the room's position,
// unless the room was unfollowed or the entry was already read.
func (r *Reader) deliver(key, room string, m redis.XMessage) {
	r.mu.Lock()
	f, ok := r.rooms[key]
	if !ok || streams.CompareIDs(m.ID, f.last) <= 0 {
		r.mu.Unlock()
		return
	}
	f.last = m.ID
	r.mu.Unlock()
	ev, err := streams.Decode(room, m)
	if err != nil {
		ev = streams.Event{ID: m.ID, Room: room}
	}
	r.handle(room, ev, err)
}

// notified handles a published entry: delivered when it follows the last
// entry read, otherwise the room is read from its stream.
func (r *Reader) notified(ctx context.Context, key, payload string) error {
	r.mu.Lock()
	f, ok := r.rooms[key]
	var room, last string
	var trusted bool
	if ok {
		room, last, trusted = f.room, f.last, !f.pending
	}
	r.mu.Unlock()
	if !ok || !trusted {
		return nil // unfollowed, or a stream read is due and will include it
	}
	prev, m, err := decodeNotification(payload)
	if err == nil && streams.CompareIDs(m.ID, last) <= 0 {
		return nil
	}
	if err != nil || prev != last {
		// Something came in between (an entry written by other means, a
		// lost notification) or the notification is unreadable: the stream
		// says what happened.
		return r.readStream(ctx, key)
	}
	r.deliver(key, room, m)
	return nil
}
