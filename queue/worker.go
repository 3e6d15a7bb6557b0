package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/streams"
)

// WorkerOptions configure a Worker. HandleMessage is required; every other
// field has a documented zero-value default.
type WorkerOptions struct {
	// HandleMessage is called for every message released in a room, once
	// per client the worker delivers for. Calls for one (client, room) are
	// sequential and in stream order; calls for different clients run
	// concurrently. Queued messages carry an AckToken (empty for
	// out-of-band messages and observers): the client acks with
	// Worker.Ack, Message.Ack or Queue.Ack. An error or a panic is counted
	// and logged and changes nothing else. ctx ends when the worker closes.
	HandleMessage func(ctx context.Context, clientID string, msg *Message) error
	// HandleClientTimeout, when set, is called exactly once when a client
	// the worker delivers for is evicted from a room (heartbeat or ack
	// timeout), after the messages delivered to it before the eviction.
	// The room's evict event is the source, so it is called whichever
	// process evicted the client. It is also called, once, when Redis lost
	// the client's membership (a restart without data: the room's epoch
	// changed, see ErrRoomReset); the client must subscribe again.
	HandleClientTimeout func(ctx context.Context, clientID, room string) error
	// Logger receives handler failures and background errors (default: the
	// Queue's).
	Logger *slog.Logger
	// AutoHeartbeat makes the worker beat for the clients it hosts (every
	// Options.HeartbeatInterval, one call per room). Off by default: the
	// end client keeps itself alive through Queue.Ping (the gateway relays
	// its pings), so a client whose connection died stops beating and is
	// evicted.
	AutoHeartbeat bool
	// FollowAll makes the worker deliver for every member of every room of
	// its shards, whoever subscribed them (the original library's worker).
	// Subscribe and Unsubscribe are then refused.
	FollowAll bool
	// FollowAllIndex and FollowAllCount split the shards between
	// FollowAllCount follow-all workers: this one takes the shards s with
	// s % FollowAllCount == FollowAllIndex, so each delivery happens once.
	// Default 0 of 1: every shard.
	FollowAllIndex, FollowAllCount int
	// DiscoveryInterval is how often a follow-all worker reads the room
	// index of its shards to find rooms that gained members (default 1s,
	// 10ms..1m). Out-of-band messages sent to a room before the worker
	// found it are not delivered; the in-flight message is.
	DiscoveryInterval time.Duration
	// LatencyWindow is the number of recent messages Metrics computes
	// latencies over (default 1000, 1..1000000).
	LatencyWindow int
	// AckCoalesce is how long an ack waits for the acks of the worker's
	// other clients that were handed the same message, so that they go in
	// one script call (default 2ms, at most 100ms; negative: never wait,
	// an ack goes out as soon as no call for its room is out). A room
	// releases its next message only after its slowest member acked, so
	// waiting for the worker's own slower clients does not delay the
	// release; the wait ends early when the last of them acks. Acks sent
	// with Queue.Ack instead of the worker are not waited for. With
	// Options.AckTimeout set, the wait is at most a tenth of it, so a held
	// ack does not land after the deadline it was sent in time for.
	AckCoalesce time.Duration
}

func (o WorkerOptions) withDefaults(q *Queue) WorkerOptions {
	if o.Logger == nil {
		o.Logger = q.opts.Logger
	}
	if o.FollowAllCount == 0 {
		o.FollowAllCount = 1
	}
	if o.DiscoveryInterval == 0 {
		o.DiscoveryInterval = time.Second
	}
	if o.LatencyWindow == 0 {
		o.LatencyWindow = 1000
	}
	if o.AckCoalesce == 0 {
		o.AckCoalesce = defaultAckCoalesce
	}
	return o
}

func (o WorkerOptions) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: Worker"+format, append([]any{sferr.ErrInvalidOption}, args...)...)
	}
	switch {
	case o.HandleMessage == nil:
		return bad("Options.HandleMessage is required")
	case o.FollowAllCount < 1 || o.FollowAllIndex < 0 || o.FollowAllIndex >= o.FollowAllCount:
		return bad("Options.FollowAllIndex=%d of FollowAllCount=%d, want 0 <= index < count", o.FollowAllIndex, o.FollowAllCount)
	case !o.FollowAll && (o.FollowAllIndex != 0 || o.FollowAllCount != 1):
		return bad("Options.FollowAllIndex/FollowAllCount need FollowAll")
	case o.DiscoveryInterval < 10*time.Millisecond || o.DiscoveryInterval > time.Minute:
		return bad("Options.DiscoveryInterval=%v, want 10ms..1m", o.DiscoveryInterval)
	case o.LatencyWindow < 1 || o.LatencyWindow > 1_000_000:
		return bad("Options.LatencyWindow=%d, want 1..1000000", o.LatencyWindow)
	case o.AckCoalesce > maxAckCoalesce:
		return bad("Options.AckCoalesce=%v, want at most %v (negative: off)", o.AckCoalesce, maxAckCoalesce)
	}
	return nil
}

// Worker delivers the messages of many clients to callbacks: the gateway
// form of a subscriber, where the end clients live behind this process
// (websockets, say) and the worker hands each of them its messages.
//
// Whatever the number of rooms and clients, it reads through the Queue's
// per-shard readers: one blocked connection per shard with followed rooms.
// Acks sent through Worker.Ack for the same room are batched into one
// script call. Close the worker before its Queue (closing the Queue closes
// it too).
type Worker struct {
	q    *Queue
	opts WorkerOptions
	log  *slog.Logger

	warnBeat, warnDiscover warnLimiter

	ctx    context.Context // handlers, batchers and loops; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	spawnMu sync.Mutex // leaf lock: guards stopped and every wg.Add
	stopped bool

	mu     sync.Mutex
	closed bool
	rooms  map[string]*workerRoom

	ackMu    sync.Mutex
	batchers map[string]*ackBatcher // by room
	expect   map[string]*ackExpect  // by room: acks to wait for (AckCoalesce)

	m       workerCounters
	latency *latencyRing
}

type workerCounters struct {
	received, delivered, invalid            atomic.Uint64
	handlerErrors, handlerPanics, timeouts  atomic.Uint64
	acks, ackCalls, ackRefused, acksWaiting atomic.Int64
}

// NewWorker starts a worker on q. In follow-all mode it starts finding
// rooms at once; otherwise it delivers for the clients given to Subscribe.
func (q *Queue) NewWorker(opts WorkerOptions) (*Worker, error) {
	if err := q.check(context.Background()); err != nil {
		return nil, err
	}
	opts = opts.withDefaults(q)
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if at := q.opts.AckTimeout; at > 0 && opts.AckCoalesce > at/10 {
		opts.AckCoalesce = at / 10
	}
	w := &Worker{
		q: q, opts: opts, log: opts.Logger,
		rooms:    map[string]*workerRoom{},
		batchers: map[string]*ackBatcher{},
		expect:   map[string]*ackExpect{},
		latency:  newLatencyRing(opts.LatencyWindow),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	r := q.router
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		w.cancel()
		return nil, sferr.ErrClosed
	}
	r.workers[w] = struct{}{}
	r.mu.Unlock()
	if opts.AutoHeartbeat && !opts.FollowAll {
		w.spawn(w.heartbeatLoop)
	}
	if opts.FollowAll {
		w.spawn(w.discoverLoop)
	}
	return w, nil
}

// spawn runs fn on a goroutine that Close waits for, unless Close already
// stopped the worker.
func (w *Worker) spawn(fn func()) bool {
	w.spawnMu.Lock()
	defer w.spawnMu.Unlock()
	if w.stopped {
		return false
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		fn()
	}()
	return true
}

func (w *Worker) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// Subscribe makes clientID a member of room (as Queue.Subscribe) and
// delivers to HandleMessage, for that client, every message released in
// the room after the join. Subscribing a hosted client again only
// refreshes its heartbeat, unless its membership ended meanwhile (see
// resubscribe).
func (w *Worker) Subscribe(ctx context.Context, clientID, room string) error {
	if w.opts.FollowAll {
		return fmt.Errorf("%w: a follow-all worker delivers for every member; subscribe with Queue.Subscribe", sferr.ErrInvalidOption)
	}
	if err := w.q.check(ctx); err != nil {
		return err
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return err
	}
	r, err := w.acquireRoom(ctx, room)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if c, ok := r.clients[clientID]; ok {
		if c.start != "" {
			return w.resubscribe(ctx, r, c) // unlocks r.mu
		}
		// Its first join is under way: that one sets it up.
		r.mu.Unlock()
		w.releaseRoom(r)
		_, err := w.q.subscribe(ctx, clientID, room, false)
		return err
	}
	// Registered before the join: whatever the reader hands over from now
	// on is kept until the join tells where this client starts.
	c := &workerClient{id: clientID, room: r}
	r.clients[clientID] = c
	r.mu.Unlock()

	j, err := w.q.subscribe(ctx, clientID, room, false)
	r.mu.Lock()
	if r.clients[clientID] != c {
		// Unsubscribe or Close removed it meanwhile, and dropped its
		// reference; the join must not outlive the worker.
		r.mu.Unlock()
		if err == nil && w.isClosed() {
			_ = w.q.Unsubscribe(ctx, clientID, room)
			return sferr.ErrClosed
		}
		return err
	}
	if err != nil {
		delete(r.clients, clientID)
		r.mu.Unlock()
		w.releaseRoom(r)
		return err
	}
	c.start, c.epoch, c.inc = j.From, j.Epoch, j.Incarnation
	for _, ev := range owedEvents(w.q, room, j.Owed) {
		r.deliverMessage(c, ev) // it precedes the client's start
	}
	early := c.early
	c.early = nil
	for _, ev := range early {
		r.takeFor(c, ev)
	}
	r.mu.Unlock()
	return nil
}

// resubscribe joins a hosted client c of r again; r.mu is held and is
// unlocked on return, and the reference Subscribe took on r is dropped (c
// holds its own). Usually c is still a member: the join only refreshes its
// heartbeat, and its incarnation, so its tokens, stay as they were. But its
// membership may have ended (an eviction, a leave by another process)
// before this worker read the entry saying so: the join then makes a new
// membership, and c goes on under it from the join on, with tokens of the
// new incarnation, which the ack scripts require. While the join runs,
// c's entries wait in c.early, as for a first join, so none is handled
// under the wrong membership.
func (w *Worker) resubscribe(ctx context.Context, r *workerRoom, c *workerClient) error {
	start := c.start
	c.start = ""
	r.mu.Unlock()
	j, err := w.q.subscribe(ctx, c.id, r.name, false)
	r.mu.Lock()
	if r.clients[c.id] != c {
		// Unsubscribe or Close removed it meanwhile.
		r.mu.Unlock()
		w.releaseRoom(r)
		if err == nil && w.isClosed() {
			_ = w.q.Unsubscribe(ctx, c.id, r.name)
			return sferr.ErrClosed
		}
		return err
	}
	early := c.early
	c.early = nil
	if err != nil || j.Incarnation == c.inc {
		c.start = start
		for _, ev := range early {
			r.takeFor(c, ev)
		}
		r.mu.Unlock()
		w.releaseRoom(r)
		return err
	}
	// A new membership: the old one ended with an entry before j.From,
	// read already or not. An eviction is reported when that entry comes
	// (takeFor); the rest before the join is not for the new membership,
	// and what it owes is delivered, as for a first join.
	c.start, c.epoch, c.inc, c.ended = j.From, j.Epoch, j.Incarnation, start
	for _, ev := range owedEvents(w.q, r.name, j.Owed) {
		r.deliverMessage(c, ev)
	}
	for _, ev := range early {
		r.takeFor(c, ev)
	}
	r.mu.Unlock()
	w.releaseRoom(r)
	return nil
}

// Unsubscribe stops delivering room's messages to clientID and removes it
// from the room (as Queue.Unsubscribe), hosted here or not.
func (w *Worker) Unsubscribe(ctx context.Context, clientID, room string) error {
	if w.opts.FollowAll {
		return fmt.Errorf("%w: a follow-all worker delivers for every member; unsubscribe with Queue.Unsubscribe", sferr.ErrInvalidOption)
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return err
	}
	w.forget(clientID, room)
	return w.q.Unsubscribe(ctx, clientID, room)
}

// forget stops delivering to a hosted client; it reports whether it was
// hosted.
func (w *Worker) forget(clientID, room string) bool {
	w.mu.Lock()
	r := w.rooms[room]
	w.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	c, ok := r.clients[clientID]
	if ok {
		delete(r.clients, clientID)
		c.gone = true
		c.queue = nil
	}
	r.mu.Unlock()
	if ok {
		w.releaseRoom(r)
	}
	return ok
}

// Ack acknowledges the delivery named by token on behalf of clientID, as
// Queue.Ack does, but acks for the same room that arrive together are sent
// in one script call: an idle room's ack goes out at once, and those that
// arrive while a call is out go together in the next one. So a gateway
// hosting a hundred subscribers of a room acks a message in one or two
// round trips, not a hundred. It returns the same errors as Queue.Ack.
func (w *Worker) Ack(ctx context.Context, clientID, ackToken string) error {
	if w.isClosed() {
		return sferr.ErrClosed
	}
	if err := w.q.check(ctx); err != nil {
		return err
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return err
	}
	t, err := parseToken(ackToken, w.q.opts.AckSecret, w.q.opts.PreviousAckSecrets...)
	if err != nil {
		w.q.stats.ackRejected(err)
		return err
	}
	if t.client != clientID {
		err := fmt.Errorf("%w: token issued to another client", sferr.ErrInvalidToken)
		w.q.stats.ackRejected(err)
		return err
	}
	return w.ackToken(ctx, t)
}

// ackIssued batches the ack of a token this worker issued.
func (w *Worker) ackIssued(ctx context.Context, t token) error {
	if w.isClosed() {
		return sferr.ErrClosed
	}
	if err := w.q.check(ctx); err != nil {
		return err
	}
	return w.ackToken(ctx, t)
}

// ackToken batches the ack of a token already checked (or issued here).
func (w *Worker) ackToken(ctx context.Context, t token) error {
	req := &ackReq{client: t.client, inc: t.inc, seq: t.seq, epoch: t.epoch, done: make(chan error, 1)}
	if !w.enqueueAck(t.room, req) {
		return sferr.ErrClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type ackReq struct {
	client string
	inc    string // the client's membership the token was issued under
	seq    uint64
	epoch  string
	done   chan error // buffered: the batcher never waits for the caller
}

type ackBatcher struct {
	pending []*ackReq
	wake    chan struct{} // buffered: an ack arrived while the batcher waits
	since   time.Time     // when the batcher started waiting for company
}

// ackExpect counts, for a room's newest message handed to the worker's
// members, how many were handed it and how many acks for it the worker
// took: the batcher waits for the missing ones (AckCoalesce).
type ackExpect struct {
	epoch         string
	seq           uint64
	handed, acked int
}

const (
	defaultAckCoalesce = 2 * time.Millisecond
	maxAckCoalesce     = 100 * time.Millisecond
)

// expectAck records that a member was handed message seq of room.
func (w *Worker) expectAck(room, epoch string, seq uint64) {
	if w.opts.AckCoalesce < 0 {
		return
	}
	w.ackMu.Lock()
	defer w.ackMu.Unlock()
	e := w.expect[room]
	if e == nil || e.seq != seq || e.epoch != epoch {
		e = &ackExpect{epoch: epoch, seq: seq}
		w.expect[room] = e
	}
	e.handed++
}

func (w *Worker) enqueueAck(room string, req *ackReq) bool {
	w.ackMu.Lock()
	defer w.ackMu.Unlock()
	b := w.batchers[room]
	if b == nil {
		b = &ackBatcher{wake: make(chan struct{}, 1)}
		if !w.spawn(func() { w.runBatcher(room, b) }) {
			return false
		}
		w.batchers[room] = b
	}
	b.pending = append(b.pending, req)
	// The batcher, when waiting for company, only needs waking once the
	// wait is pointless: every expected ack is in, or one it did not
	// expect came.
	wake := true
	if e := w.expect[room]; e != nil && e.seq == req.seq && e.epoch == req.epoch {
		e.acked++
		wake = e.acked >= e.handed
	}
	w.m.acksWaiting.Add(1)
	if wake {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// coalesceWait returns how much longer the waiting acks of room should
// wait for the acks of the worker's other members handed the same
// message; 0 to send them now. w.ackMu must be held.
func (w *Worker) coalesceWait(room string, b *ackBatcher) time.Duration {
	e := w.expect[room]
	if w.opts.AckCoalesce < 0 || e == nil || e.acked >= e.handed || w.ctx.Err() != nil || w.q.isPartial(room) {
		return 0
	}
	for _, r := range b.pending {
		if r.seq != e.seq || r.epoch != e.epoch {
			return 0 // not all for the newest message: nothing to gain
		}
	}
	now := time.Now()
	if b.since.IsZero() {
		b.since = now
	}
	return max(0, w.opts.AckCoalesce-now.Sub(b.since))
}

// runBatcher sends a room's acks until none are waiting: one call for
// what was waiting when it started (after waiting, AckCoalesce, for the
// acks of the worker's other members handed the same message), then one
// for everything that arrived during that call, and so on. It ends when
// the room is idle, so an idle worker holds no goroutine per room.
func (w *Worker) runBatcher(room string, b *ackBatcher) {
	for {
		w.ackMu.Lock()
		if wait := w.coalesceWait(room, b); wait > 0 && len(b.pending) > 0 {
			w.ackMu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-b.wake:
			case <-t.C:
			case <-w.ctx.Done():
			}
			t.Stop()
			continue
		}
		b.since = time.Time{}
		batch := b.pending
		b.pending = nil
		if len(batch) == 0 {
			delete(w.batchers, room)
			w.ackMu.Unlock()
			return
		}
		w.ackMu.Unlock()
		w.m.acksWaiting.Add(-int64(len(batch)))
		w.sendAcks(room, batch)
	}
}

// maxAckBatch bounds the clients of one script call, so one call never
// holds Redis for long.
const maxAckBatch = 512

func (w *Worker) sendAcks(room string, batch []*ackReq) {
	type group struct {
		epoch string
		seq   uint64
	}
	var order []group
	groups := map[group][]*ackReq{}
	for _, r := range batch {
		g := group{r.epoch, r.seq}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], r)
	}
	for _, g := range order {
		reqs := groups[g]
		for len(reqs) > 0 {
			n := min(len(reqs), maxAckBatch)
			w.sendAckGroup(room, g.epoch, g.seq, reqs[:n])
			reqs = reqs[n:]
		}
	}
}

func (w *Worker) sendAckGroup(room, epoch string, seq uint64, reqs []*ackReq) {
	// Not any caller's context: the call carries other callers' acks too.
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	_ = w.q.ackBatch(ctx, room, epoch, seq, reqs, func(refused int) { // an error went to every caller
		w.m.ackCalls.Add(1)
		w.m.acks.Add(int64(len(reqs)))
		w.m.ackRefused.Add(int64(refused))
	})
	cancel()
}

// ackBatch sends the acks of reqs, all for message seq of room under
// epoch, in one ack_batch call and hands every caller its own outcome, as
// Ack would have returned it; on the call's error every caller gets it.
// Every count, the Queue's and count's (if not nil, told how many acks
// were refused), is made before any caller wakes: a caller whose Ack
// returned finds it in the stats.
func (q *Queue) ackBatch(ctx context.Context, room, epoch string, seq uint64, reqs []*ackReq, count func(refused int)) error {
	clients := make([]string, len(reqs))
	incs := make([]string, len(reqs))
	for i, r := range reqs {
		clients[i], incs[i] = r.client, r.inc
	}
	res, err := q.barrier.AckBatch(ctx, room, seq, epoch, clients, incs)
	if err != nil {
		if count != nil {
			count(0)
		}
		for _, r := range reqs {
			r.done <- err
		}
		return err
	}
	// The released message first: waking the callers takes a while, and
	// the next message's fanout should not wait behind it.
	q.router.direct(room, res.Appended)
	refused := 0
	for _, e := range res.Errs {
		if e != nil {
			refused++
			q.stats.ackRejected(e)
			continue
		}
		q.stats.Acked.Add(1)
	}
	q.stats.observeAck(barrier.Acked{Released: res.Released, At: res.At, InFlightAt: res.InFlightAt, Completed: res.Completed})
	q.notePartial(room, res.Partial)
	q.stats.Released.Add(uint64(res.Released))
	if count != nil {
		count(refused)
	}
	for i, r := range reqs {
		r.done <- res.Errs[i]
	}
	return nil
}

// workerRoom is a room the worker delivers for. It is a sink of the
// router: the shard's reader, and the replies of this process's scripts,
// hand it the room's entries in stream order.
type workerRoom struct {
	w     *Worker
	name  string
	ready chan struct{} // closed when the room is followed, or failed to be
	err   error         // set before ready is closed

	// guarded by w.mu
	refs     int // hosted clients plus Subscribe calls in progress
	followed bool

	mu      sync.Mutex
	last    string          // newest entry taken into account; "" until followed
	early   []streams.Event // handed over before last was known
	clients map[string]*workerClient
	epoch   string // follow-all: the room's epoch when it was found
}

type workerClient struct {
	id       string
	room     *workerRoom
	observer bool
	start    string          // deliver entries after this ID; "" until joined
	early    []streams.Event // handed over before the join returned
	epoch    string
	inc      string // its membership, for its tokens (barrier.Joined.Incarnation)
	// ended, when set, is where its previous membership started: it
	// ended, with a leave or an eviction entry between ended and start,
	// and resubscribe made a new one (an eviction is still reported).
	ended string

	// mailbox, guarded by room.mu
	queue   []delivery
	running bool
	gone    bool // left or evicted: nothing more is queued
}

type delivery struct {
	msg     *Message
	timeout bool // HandleClientTimeout
	ackOnly bool // an undecodable message: acked, never handed to HandleMessage
}

// acquireRoom returns the worker's room, followed, taking a reference.
func (w *Worker) acquireRoom(ctx context.Context, name string) (*workerRoom, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, sferr.ErrClosed
	}
	r := w.rooms[name]
	if r == nil {
		r = &workerRoom{w: w, name: name, ready: make(chan struct{}), clients: map[string]*workerClient{}}
		w.rooms[name] = r
		r.refs++
		w.mu.Unlock()
		r.err = w.followRoom(ctx, r, nil)
		close(r.ready)
	} else {
		r.refs++
		w.mu.Unlock()
		select {
		case <-r.ready:
		case <-ctx.Done():
			w.releaseRoom(r)
			return nil, ctx.Err()
		}
	}
	if r.err != nil {
		w.mu.Lock()
		if w.rooms[name] == r {
			delete(w.rooms, name) // the next Subscribe tries afresh
		}
		w.mu.Unlock()
		w.releaseRoom(r)
		return nil, r.err
	}
	return r, nil
}

// releaseRoom drops a reference; the last one stops following the room.
func (w *Worker) releaseRoom(r *workerRoom) {
	w.mu.Lock()
	r.refs--
	if r.refs > 0 {
		w.mu.Unlock()
		return
	}
	if w.rooms[r.name] == r {
		delete(w.rooms, r.name)
	}
	followed := r.followed
	r.followed = false
	w.mu.Unlock()
	w.ackMu.Lock()
	delete(w.expect, r.name)
	w.ackMu.Unlock()
	w.q.router.removeSink(r.name, r)
	if followed {
		w.q.router.unfollowRoom(r.name)
	}
}

// roomSnapshot is what a follow-all worker reads about a room it found.
type roomSnapshot struct {
	epoch     string
	tail      string
	members   []string
	incs      map[string]string // member -> incarnation
	observers []string
	inflight  *streams.Event // the in-flight message, if any
	acked     map[string]bool
	// owed, in a windowed room (Policy.Window or Quorum), replaces
	// inflight and acked: each member's messages not acked, oldest first.
	owed map[string][]streams.Event
}

// followRoom registers r with the router, finds the stream's last entry
// and has the shard's reader follow the room from there. Entries handed
// over before that are kept and filtered, so nothing after the last entry
// is missed even when the reader already followed the room. snap, for a
// follow-all room, also seeds the members and the in-flight delivery.
func (w *Worker) followRoom(ctx context.Context, r *workerRoom, snapFn func(context.Context) (roomSnapshot, error)) error {
	if err := w.q.router.addSink(r.name, r); err != nil {
		return err
	}
	var snap roomSnapshot
	if snapFn != nil {
		var err error
		if snap, err = snapFn(ctx); err != nil {
			return err
		}
	} else {
		last, err := w.q.rdb.XRevRangeN(ctx, w.q.layout.Stream(r.name), "+", "-", 1).Result()
		if err != nil {
			return fmt.Errorf("syncfanout: worker: room %q: %w", r.name, err)
		}
		snap.tail = "0-0"
		if len(last) > 0 {
			snap.tail = last[0].ID
		}
	}
	r.mu.Lock()
	r.last = snap.tail
	r.epoch = snap.epoch
	for _, id := range snap.members {
		r.clients[id] = &workerClient{id: id, room: r, start: snap.tail, epoch: snap.epoch, inc: snap.incs[id]}
	}
	for _, id := range snap.observers {
		r.clients[id] = &workerClient{id: id, room: r, start: snap.tail, epoch: snap.epoch, observer: true}
	}
	if snap.inflight != nil {
		// Nobody delivered it for this worker's shards: deliver it to those
		// that have not acked it, or the room would wait for them forever.
		// It precedes the tail, so it bypasses the clients' position.
		if snap.inflight.Type == streams.Message {
			w.m.received.Add(1)
			w.latency.add(time.Since(snap.inflight.Enqueued))
		}
		for _, c := range r.clients {
			if !snap.acked[c.id] {
				r.deliverMessage(c, *snap.inflight)
			}
		}
	}
	for _, c := range r.clients {
		for _, ev := range snap.owed[c.id] {
			r.deliverMessage(c, ev)
		}
	}
	early := r.early
	r.early = nil
	for _, ev := range early {
		r.take(ev, nil)
	}
	r.mu.Unlock()
	followed, err := w.q.router.followRoom(ctx, r.name, snap.tail)
	w.mu.Lock()
	r.followed = followed
	w.mu.Unlock()
	return err
}

// push takes an entry from the reader (roomSink).
func (r *workerRoom) push(ev streams.Event, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == "" {
		r.early = append(r.early, ev)
		return
	}
	r.take(ev, err)
}

// pushDirect takes entries from a script reply of this process when the
// room's position is exactly the entry before them (roomSink).
func (r *workerRoom) pushDirect(prev string, evs []streams.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == "" || r.last != prev {
		return
	}
	for _, ev := range evs {
		r.take(ev, nil)
	}
}

// take handles one entry in stream order, once; r.mu must be held.
func (r *workerRoom) take(ev streams.Event, err error) {
	if streams.CompareIDs(ev.ID, r.last) <= 0 {
		return
	}
	r.last = ev.ID
	w := r.w
	if err != nil {
		w.m.invalid.Add(1) // logged by the router
		if ev.Type == undecodable {
			r.fanout(ev)
		}
		return
	}
	switch ev.Type {
	case streams.Message, streams.OutOfBand:
		w.m.received.Add(1)
		w.latency.add(time.Since(ev.Enqueued))
		r.fanout(ev)
	case streams.Join:
		if w.opts.FollowAll {
			if _, ok := r.clients[ev.ClientID]; !ok {
				// A member's incarnation is the ID of its join entry.
				r.clients[ev.ClientID] = &workerClient{id: ev.ClientID, room: r, start: ev.ID, epoch: r.epoch, inc: ev.ID, observer: ev.Observer}
			}
		}
	case streams.Leave, streams.Evict:
		if c, ok := r.clients[ev.ClientID]; ok {
			r.takeFor(c, ev)
		}
	}
}

// fanout queues a message for every client; r.mu must be held.
func (r *workerRoom) fanout(ev streams.Event) {
	for _, c := range r.clients {
		r.takeFor(c, ev)
	}
}

// takeFor handles one entry for one client; r.mu must be held.
func (r *workerRoom) takeFor(c *workerClient, ev streams.Event) {
	if c.gone {
		return
	}
	if c.start == "" {
		c.early = append(c.early, ev)
		return
	}
	if streams.CompareIDs(ev.ID, c.start) <= 0 {
		if c.ended != "" && ev.Type == streams.Evict && ev.ClientID == c.id && streams.CompareIDs(ev.ID, c.ended) > 0 {
			// The eviction that ended its previous membership (resubscribe).
			c.ended = ""
			r.enqueue(c, delivery{timeout: true})
		}
		return
	}
	switch ev.Type {
	case streams.Message, streams.OutOfBand, undecodable:
		r.deliverMessage(c, ev)
	case streams.Evict:
		if ev.ClientID != c.id {
			return
		}
		r.drop(c)
		r.enqueue(c, delivery{timeout: true})
	case streams.Leave:
		if ev.ClientID != c.id {
			return
		}
		r.drop(c)
	}
}

// deliverMessage queues a message for a client, with an ack token bound to
// it for queued messages; r.mu must be held.
func (r *workerRoom) deliverMessage(c *workerClient, ev streams.Event) {
	w := r.w
	var m *Message
	if ev.Type == undecodable {
		if c.observer {
			return
		}
		m = &Message{ID: ev.MessageID, Room: r.name, StreamID: ev.ID}
	} else {
		var err error
		if m, err = newMessage(ev); err != nil {
			w.m.invalid.Add(1)
			return
		}
	}
	if (ev.Type == streams.Message || ev.Type == undecodable) && !c.observer {
		t := token{epoch: c.epoch, room: r.name, client: c.id, inc: c.inc, seq: ev.MessageID}
		m.AckToken = t.encode(w.q.opts.AckSecret)
		m.ack = ownTokenAck(t, m.AckToken, w.Ack, w.ackIssued)
		w.expectAck(r.name, c.epoch, ev.MessageID)
	}
	r.enqueue(c, delivery{msg: m, ackOnly: ev.Type == undecodable})
}

// drop removes a client that left or was evicted; r.mu must be held.
func (r *workerRoom) drop(c *workerClient) {
	if r.clients[c.id] != c {
		return
	}
	delete(r.clients, c.id)
	if !r.w.opts.FollowAll {
		// The reference is dropped on another goroutine: releaseRoom takes
		// w.mu, which must not be taken under r.mu.
		r.w.spawn(func() { r.w.releaseRoom(r) })
	}
}

// enqueue adds to a client's mailbox, starting its delivery goroutine if
// none runs; r.mu must be held. The delivery goroutine ends when the
// mailbox is empty, so idle clients cost no goroutine.
func (r *workerRoom) enqueue(c *workerClient, d delivery) {
	c.queue = append(c.queue, d)
	if c.running {
		return
	}
	c.running = r.w.spawn(func() { r.w.drain(c) })
}

func (w *Worker) drain(c *workerClient) {
	r := c.room
	for {
		r.mu.Lock()
		if len(c.queue) == 0 || w.ctx.Err() != nil {
			c.running = false
			c.queue = nil
			r.mu.Unlock()
			return
		}
		d := c.queue[0]
		c.queue[0] = delivery{}
		c.queue = c.queue[1:]
		r.mu.Unlock()
		w.deliver(c.id, r.name, d)
	}
}

// deliver calls a handler, containing its errors and panics.
func (w *Worker) deliver(clientID, room string, d delivery) {
	defer func() {
		if p := recover(); p != nil {
			w.m.handlerPanics.Add(1)
			w.log.Error("syncfanout: worker handler panicked", "client", clientID, "room", room, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if d.timeout {
		w.m.timeouts.Add(1)
		if w.opts.HandleClientTimeout == nil {
			return
		}
		if err := w.opts.HandleClientTimeout(w.ctx, clientID, room); err != nil {
			w.m.handlerErrors.Add(1)
			w.log.Warn("syncfanout: HandleClientTimeout failed", "client", clientID, "room", room, "err", err)
		}
		return
	}
	if d.ackOnly {
		logUndecodableAck(w.log, room, clientID, d.msg, d.msg.Ack(w.ctx))
		return
	}
	w.m.delivered.Add(1)
	if err := w.opts.HandleMessage(w.ctx, clientID, d.msg); err != nil {
		w.m.handlerErrors.Add(1)
		// A handler cut short by Close is expected, not worth a warning.
		if w.ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return
		}
		w.log.Warn("syncfanout: HandleMessage failed", "client", clientID, "room", room, "message", d.msg.ID, "err", err)
	}
}

// heartbeatLoop beats for the hosted clients (AutoHeartbeat).
func (w *Worker) heartbeatLoop() {
	heartbeatLoop(w.ctx, w.q.opts.HeartbeatInterval, w.heartbeat)
}

// heartbeat beats once for every hosted client, one script call per room,
// a few rooms at a time so that a round over many rooms stays well within
// ClientTimeout. A client the room no longer knows is left to the room's
// leave or evict entry, which the reader delivers: that entry says which
// it was.
// It reports whether every call succeeded.
func (w *Worker) heartbeat(ctx context.Context) bool {
	w.mu.Lock()
	rooms := make([]*workerRoom, 0, len(w.rooms))
	for _, r := range w.rooms {
		rooms = append(rooms, r)
	}
	w.mu.Unlock()
	work := make(chan *workerRoom)
	var wg sync.WaitGroup
	var bad atomic.Bool
	for range min(len(rooms), heartbeatParallel) {
		wg.Go(func() {
			for r := range work {
				if !w.heartbeatRoom(ctx, r) {
					bad.Store(true)
				}
			}
		})
	}
	for _, r := range rooms {
		work <- r
	}
	close(work)
	wg.Wait()
	return !bad.Load()
}

// heartbeatParallel bounds the heartbeat calls a worker has out at once.
const heartbeatParallel = 16

func (w *Worker) heartbeatRoom(ctx context.Context, r *workerRoom) bool {
	r.mu.Lock()
	ids := make([]string, 0, len(r.clients))
	for id, c := range r.clients {
		if c.start != "" {
			ids = append(ids, id)
		}
	}
	r.mu.Unlock()
	ok := true
	for len(ids) > 0 {
		n := min(len(ids), maxAckBatch)
		if _, err := w.q.barrier.Heartbeat(ctx, r.name, ids[:n]); err != nil && ctx.Err() == nil {
			ok = false
			w.warnBeat.warn(w.log, "syncfanout: worker heartbeat", "room", r.name, "err", err)
		}
		ids = ids[n:]
	}
	return ok
}

// discoverLoop finds the rooms of a follow-all worker's shards.
func (w *Worker) discoverLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
		w.discover(w.ctx)
		t.Reset(jitter(w.opts.DiscoveryInterval))
	}
}

// discover reads the room index of each of the worker's shards (rooms with
// members, a backlog or a message in flight), follows the rooms it did not
// follow and stops following those that left the index.
func (w *Worker) discover(ctx context.Context) {
	layout := w.q.layout
	for shard := range layout.NumShards() {
		if shard%w.opts.FollowAllCount != w.opts.FollowAllIndex {
			continue
		}
		// Live rooms only: idle ones, kept for their history, score below 0.
		names, err := w.q.rdb.ZRangeByScore(ctx, layout.ShardRooms(shard), &redis.ZRangeBy{Min: "0", Max: "+inf"}).Result()
		if err != nil {
			if ctx.Err() == nil {
				w.warnDiscover.warn(w.log, "syncfanout: worker room discovery", "shard", shard, "err", err)
			}
			continue
		}
		present := make(map[string]bool, len(names))
		for _, name := range names {
			present[name] = true
		}
		w.mu.Lock()
		var gone []*workerRoom
		for name, r := range w.rooms {
			if layout.ShardOf(name) == shard && !present[name] {
				gone = append(gone, r)
			}
		}
		var found []string
		for _, name := range names {
			if _, ok := w.rooms[name]; !ok && keys.ValidateRoom(name) == nil {
				found = append(found, name)
			}
		}
		w.mu.Unlock()
		for _, r := range gone {
			w.releaseRoom(r)
		}
		for _, name := range found {
			if err := w.followAllRoom(ctx, name); err != nil && ctx.Err() == nil {
				w.log.Warn("syncfanout: worker follows room", "room", name, "err", err)
			}
		}
	}
}

// followAllRoom starts delivering a room found in the index to all its
// members.
func (w *Worker) followAllRoom(ctx context.Context, name string) error {
	w.mu.Lock()
	if w.closed || w.rooms[name] != nil {
		w.mu.Unlock()
		return nil
	}
	r := &workerRoom{w: w, name: name, ready: make(chan struct{}), clients: map[string]*workerClient{}, refs: 1}
	w.rooms[name] = r
	w.mu.Unlock()
	r.err = w.followRoom(ctx, r, func(ctx context.Context) (roomSnapshot, error) { return w.snapshot(ctx, name) })
	close(r.ready)
	if r.err != nil {
		w.releaseRoom(r) // found again at the next round
	}
	return r.err
}

// snapshot reads, in one MULTI, a room's epoch, in-flight message, members
// and their incarnations, observers, the members that acked the in-flight
// message and the stream's last entry; then the in-flight message's entry.
func (w *Worker) snapshot(ctx context.Context, room string) (roomSnapshot, error) {
	ks := w.q.layout.RoomKeys(room)
	var (
		meta *redis.SliceCmd
		mem  *redis.StringSliceCmd
		obs  *redis.StringSliceCmd
		acks *redis.MapStringStringCmd
		incs *redis.MapStringStringCmd
		last *redis.XMessageSliceCmd
	)
	_, err := w.q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HMGet(ctx, ks[keys.KMeta-1], "ep", "f", "fs", "rn", "wl")
		mem = p.ZRange(ctx, ks[keys.KMem-1], 0, -1)
		obs = p.ZRange(ctx, ks[keys.KObs-1], 0, -1)
		acks = p.HGetAll(ctx, ks[keys.KAck-1])
		incs = p.HGetAll(ctx, ks[keys.KInc-1])
		last = p.XRevRangeN(ctx, ks[keys.KStream-1], "+", "-", 1)
		return nil
	})
	if err != nil {
		return roomSnapshot{}, fmt.Errorf("syncfanout: worker: reading room %q: %w", room, err)
	}
	var snap roomSnapshot
	mv := meta.Val()
	snap.epoch, _ = mv[0].(string)
	snap.members, snap.observers, snap.incs = mem.Val(), obs.Val(), incs.Val()
	snap.acked = make(map[string]bool, len(acks.Val()))
	for c := range acks.Val() {
		snap.acked[c] = true
	}
	snap.tail = "0-0"
	if l := last.Val(); len(l) > 0 {
		snap.tail = l[0].ID
	}
	if rn, _ := mv[3].(string); rn != "" {
		wl, _ := mv[4].(string)
		return w.windowSnapshot(ctx, room, snap, rn, wl, acks.Val())
	}
	if fs, _ := mv[2].(string); fs != "" {
		msgs, err := w.q.rdb.XRangeN(ctx, ks[keys.KStream-1], fs, fs, 1).Result()
		if err != nil {
			return roomSnapshot{}, fmt.Errorf("syncfanout: worker: reading room %q: %w", room, err)
		}
		if len(msgs) == 1 {
			ev, err := streams.Decode(room, msgs[0])
			if err != nil {
				ev = refusedEvent(room, msgs[0].ID, err)
			}
			if ev.Type == streams.Message || ev.Type == undecodable {
				snap.inflight = &ev
			}
		}
	}
	return snap, nil
}

// Close stops the worker: handlers' context is cancelled, hosted clients
// leave their rooms (so nobody waits for them), rooms are no longer
// followed, and Close waits for every goroutine of the worker (handlers
// must return once their context ends). Acks waiting in Worker.Ack get
// ErrClosed or a context error. Idempotent.
func (w *Worker) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	rooms := make([]*workerRoom, 0, len(w.rooms))
	for _, r := range w.rooms {
		rooms = append(rooms, r)
	}
	w.mu.Unlock()
	// Handlers, loops and a follow-all room being set up stop now; the
	// hosted clients leave below on a context of their own.
	w.cancel()

	type hosted struct{ client, room string }
	var leave []hosted
	for _, r := range rooms {
		<-r.ready
		r.mu.Lock()
		for id, c := range r.clients {
			if !w.opts.FollowAll && c.start != "" {
				leave = append(leave, hosted{id, r.name})
			}
			c.gone = true
			c.queue = nil
		}
		r.clients = map[string]*workerClient{}
		r.mu.Unlock()
		w.q.router.removeSink(r.name, r)
		w.mu.Lock()
		followed := r.followed
		r.followed = false
		w.mu.Unlock()
		if followed {
			w.q.router.unfollowRoom(r.name)
		}
	}
	// Detached from any caller (Close has no context): leaving is what keeps
	// the other members' rooms moving. Bounded so Close stays prompt.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	work := make(chan hosted)
	var lw sync.WaitGroup
	for range min(len(leave), 16) {
		lw.Go(func() {
			for h := range work {
				if _, err := w.q.barrier.Leave(ctx, h.room, h.client); err != nil && !errors.Is(err, sferr.ErrNotMember) {
					continue // it times out instead
				}
				_ = w.q.rdb.SRem(ctx, w.q.layout.Client(h.client), h.room).Err()
			}
		})
	}
	for _, h := range leave {
		work <- h
	}
	close(work)
	lw.Wait()

	w.spawnMu.Lock()
	w.stopped = true
	w.spawnMu.Unlock()
	w.wg.Wait()
	w.ackMu.Lock()
	for room, b := range w.batchers {
		for _, r := range b.pending {
			r.done <- sferr.ErrClosed
		}
		delete(w.batchers, room)
	}
	w.ackMu.Unlock()
	w.q.router.mu.Lock()
	delete(w.q.router.workers, w)
	w.q.router.mu.Unlock()
	return nil
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
		ClientTimeouts: w.m.timeouts.Load(),
		Acks:           w.m.acks.Load(), AckCalls: w.m.ackCalls.Load(), AcksRefused: w.m.ackRefused.Load(),
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

// roomSink receives the entries of one room's stream in order, from the
// shard's reader (push) or from a script reply of this process (pushDirect,
// taken only when its position is prev). Both run on other goroutines and
// must not block.
type roomSink interface {
	push(ev streams.Event, err error)
	pushDirect(prev string, evs []streams.Event)
}

// addSink makes s receive room's entries; it precedes following the room.
func (r *router) addSink(room string, s roomSink) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return sferr.ErrClosed
	}
	r.sinks[room] = append(r.sinks[room], s)
	return nil
}

func (r *router) removeSink(room string, s roomSink) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.sinks[room]
	for i, x := range list {
		if x == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.sinks, room)
	} else {
		r.sinks[room] = list
	}
}

// followRoom has the shard's reader read room after the ID from. When it
// reports followed (even with an error: the reader then picks the room up
// at its next read), one unfollowRoom must follow.
func (r *router) followRoom(ctx context.Context, room, from string) (followed bool, err error) {
	r.mu.Lock()
	rd, err := r.readerLocked(r.q.layout.ShardOf(room))
	r.mu.Unlock()
	if err != nil {
		return false, err
	}
	return true, rd.Follow(ctx, room, r.q.layout.Stream(room), from)
}

func (r *router) unfollowRoom(room string) {
	r.mu.Lock()
	rd := r.readers[r.q.layout.ShardOf(room)]
	r.mu.Unlock()
	if rd != nil {
		rd.Unfollow(r.q.layout.Stream(room))
	}
}

// windowSnapshot completes snap for a windowed room (see the windowed
// barrier in internal/lua/room.lua): every member is handed the tracked
// messages above its position, read from the stream in one XRANGE each.
func (w *Worker) windowSnapshot(ctx context.Context, room string, snap roomSnapshot, rn, wl string, acks map[string]string) (roomSnapshot, error) {
	last, _ := strconv.ParseUint(rn, 10, 64)
	var ids []string
	for _, e := range strings.Fields(wl) {
		if parts := strings.Split(e, "/"); len(parts) >= 3 {
			ids = append(ids, parts[1])
		}
	}
	base := last - uint64(len(ids))
	evs := make([]*streams.Event, len(ids))
	for i, id := range ids {
		msgs, err := w.q.rdb.XRangeN(ctx, w.q.layout.Stream(room), id, id, 1).Result()
		if err != nil {
			return roomSnapshot{}, fmt.Errorf("syncfanout: worker: reading room %q: %w", room, err)
		}
		if len(msgs) != 1 {
			continue // trimmed away: nothing to hand
		}
		ev, err := streams.Decode(room, msgs[0])
		if err != nil {
			ev = refusedEvent(room, msgs[0].ID, err)
		}
		if ev.Type == streams.Message || ev.Type == undecodable {
			evs[i] = &ev
		}
	}
	snap.owed = make(map[string][]streams.Event)
	for _, c := range snap.members {
		pos, _, _ := strings.Cut(acks[c], ":")
		p, _ := strconv.ParseUint(pos, 10, 64)
		for i, ev := range evs {
			if ev != nil && base+uint64(i)+1 > p {
				snap.owed[c] = append(snap.owed[c], *ev)
			}
		}
	}
	return snap, nil
}
