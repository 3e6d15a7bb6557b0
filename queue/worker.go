package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

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
	// isClosed reads this copy of closed: every Ack asks, and w.mu is the
	// lock of Subscribe and room setup.
	closedFlag atomic.Bool

	issued hostedTokens // tokens handed to hosted clients (Worker.Ack)

	acks *ackBatches

	m       workerCounters
	latency *latencyRing
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
		rooms:   map[string]*workerRoom{},
		latency: newLatencyRing(opts.LatencyWindow),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.acks = newAckBatches(w.ctx, opts.AckCoalesce, w.spawn, w.sendAcks, &w.m.acksWaiting)
	w.acks.partial = q.isPartial
	if err := q.router.addWorker(w); err != nil {
		w.cancel()
		return nil, err
	}
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
	return w.closedFlag.Load()
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
		if c.pos.started() {
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
	c.epoch, c.inc = j.Epoch, j.Incarnation
	w.issued.host(c)
	early := c.pos.start(j.From)
	for _, ev := range owedEvents(w.q, room, j.Owed) {
		r.deliverMessage(c, ev) // it precedes the client's start
	}
	for _, e := range early {
		r.takeFor(c, e.ev)
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
// c's cursor holds its entries, as for a first join, so none is handled
// under the wrong membership.
func (w *Worker) resubscribe(ctx context.Context, r *workerRoom, c *workerClient) error {
	start := c.pos.stop()
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
	if err != nil || j.Incarnation == c.inc {
		for _, e := range c.pos.start(start) {
			r.takeFor(c, e.ev)
		}
		r.mu.Unlock()
		w.releaseRoom(r)
		return err
	}
	// A new membership: the old one ended with an entry before j.From,
	// read already or not. An eviction is reported when that entry comes
	// (takeFor); the rest before the join is not for the new membership,
	// and what it owes is delivered, as for a first join.
	c.epoch, c.inc, c.ended = j.Epoch, j.Incarnation, start
	early := c.pos.start(j.From)
	for _, ev := range owedEvents(w.q, r.name, j.Owed) {
		r.deliverMessage(c, ev)
	}
	for _, e := range early {
		r.takeFor(c, e.ev)
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
		w.issued.unhost(c)
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
	if t, ok := w.issued.lookup(clientID, ackToken); ok && t.client == clientID {
		// Issued here: it is the token, so only the Queue is checked.
		if err := w.q.check(ctx); err != nil {
			return err
		}
		return w.ackToken(ctx, t)
	}
	t, err := w.q.verifyAck(ctx, clientID, ackToken)
	if err != nil {
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
	req := newAckReq(t)
	if !w.acks.enqueue(t.room, req) {
		return req.recycle(sferr.ErrClosed) // never handed to anyone
	}
	if ctx == w.ctx {
		// A handler's own context (no tracer): every ack enqueued gets its
		// outcome before Close returns (the batchers' calls run on w.ctx,
		// and Close fails what is left), so the wait needs no select on a
		// Done channel that every waiting handler of the worker shares and
		// locks.
		return req.outcome()
	}
	select {
	case err := <-req.done:
		return req.recycle(err)
	case <-ctx.Done():
		return ctx.Err()
	}
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
	w.closedFlag.Store(true)
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
			if !w.opts.FollowAll && c.pos.started() {
				leave = append(leave, hosted{id, r.name})
			}
			c.gone = true
			c.queue = nil
			w.issued.unhost(c)
		}
		r.clients = map[string]*workerClient{}
		r.mu.Unlock()
		w.q.router.remove(r.name, r)
	}
	// Detached from any caller (Close has no context): leaving is what keeps
	// the other members' rooms moving. Bounded so Close stays prompt.
	ctx, cancel := context.WithTimeout(context.Background(), leaveOnCloseTimeout)
	defer cancel()
	forEachBounded(leave, maxParallelCalls, func(h hosted) {
		_ = w.q.leave(ctx, h.client, h.room) // failed: it times out instead
	})

	w.spawnMu.Lock()
	w.stopped = true
	w.spawnMu.Unlock()
	w.wg.Wait()
	w.acks.fail(sferr.ErrClosed)
	w.q.router.removeWorker(w)
	return nil
}
