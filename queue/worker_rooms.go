package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/streams"
)

// workerRoom is a room the worker delivers for. It is a sink of the
// router: the shard's reader, and the replies of this process's scripts,
// hand it the room's entries in stream order.
type workerRoom struct {
	w     *Worker
	name  string
	ready chan struct{} // closed when the room is followed, or failed to be
	err   error         // set before ready is closed

	refs int // hosted clients plus Subscribe calls in progress; guarded by w.mu

	mu      sync.Mutex
	pos     cursor // started at the stream's tail when the room is followed
	clients map[string]*workerClient
	epoch   string       // follow-all: the room's epoch when it was found
	fan     *fanoutBatch // set during fanout, guarded by mu
}

// fanoutBatch collects what a fanout hands the room's clients: the acks
// it expects are told the batcher once, and the delivery goroutines start
// after that, so no member's ack comes before the batcher knows how many
// to wait for (a batch sent short of them costs a round trip).
type fanoutBatch struct {
	epoch  string
	seq    uint64
	n      int
	starts []fanoutStart
}

type fanoutStart struct {
	c *workerClient
	d delivery
}

type workerClient struct {
	id       string
	room     *workerRoom
	observer bool
	// pos moves over the room's entries as the room hands them to the
	// client; started where its join returned (deliver entries after it).
	pos   cursor
	epoch string
	inc   string // its membership, for its tokens (barrier.Joined.Incarnation)
	// ended, when set, is where its previous membership started: it
	// ended, with a leave or an eviction entry between ended and the new
	// join, and resubscribe made a new one (an eviction is still reported).
	ended string
	// token is the token of the newest message handed to it (Worker.Ack,
	// hostedTokens); set under room.mu, read by Ack without it.
	token atomic.Pointer[issuedToken]

	// mailbox, guarded by room.mu
	queue   []delivery
	running bool
	gone    bool // left or evicted: nothing more is queued
}

type delivery struct {
	msg     *Message
	kicked  *KickedError // HandleClientKicked
	timeout bool         // HandleClientTimeout
	ackOnly bool         // an undecodable message: acked, never handed to HandleMessage
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
	w.mu.Unlock()
	w.acks.forget(r.name)
	w.q.router.remove(r.name, r)
}

// followRoom registers r with the router, finds the stream's last entry
// and has the shard's reader follow the room from there. Entries handed
// over before that are kept and filtered, so nothing after the last entry
// is missed even when the reader already followed the room. snap, for a
// follow-all room, also seeds the members and the in-flight delivery.
func (w *Worker) followRoom(ctx context.Context, r *workerRoom, snapFn func(context.Context) (roomSnapshot, error)) error {
	if err := w.q.router.add(r.name, r); err != nil {
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
	r.epoch = snap.epoch
	for _, id := range snap.members {
		r.clients[id] = &workerClient{id: id, room: r, pos: cursorAt(snap.tail), epoch: snap.epoch, inc: snap.incs[id]}
	}
	for _, id := range snap.observers {
		r.clients[id] = &workerClient{id: id, room: r, pos: cursorAt(snap.tail), epoch: snap.epoch, observer: true}
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
	for _, e := range r.pos.start(snap.tail) {
		r.take(e.ev, e.err)
	}
	r.mu.Unlock()
	return w.q.router.follow(ctx, r.name, r, snap.tail)
}

// push takes an entry from the reader (roomSink).
func (r *workerRoom) push(ev streams.Event, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.pos.hold(ev, err) {
		r.take(ev, err)
	}
}

// pushDirect takes entries from a script reply of this process when the
// room's position is exactly the entry before them (roomSink, cursor.at).
func (r *workerRoom) pushDirect(prev string, evs []streams.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.pos.at(prev) {
		return
	}
	for _, ev := range evs {
		r.take(ev, nil)
	}
}

// take handles one entry in stream order, once; r.mu must be held.
func (r *workerRoom) take(ev streams.Event, err error) {
	if !r.pos.advance(ev.ID) {
		return
	}
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
				r.clients[ev.ClientID] = &workerClient{id: ev.ClientID, room: r, pos: cursorAt(ev.ID), epoch: r.epoch, inc: ev.ID, observer: ev.Observer}
			}
		}
	case streams.Leave, streams.Evict, streams.Kick:
		if c, ok := r.clients[ev.ClientID]; ok {
			r.takeFor(c, ev)
		}
	case streams.RoomDeleted:
		r.fanout(ev)
	}
}

// fanout queues a message for every client; r.mu must be held.
func (r *workerRoom) fanout(ev streams.Event) {
	b := &fanoutBatch{}
	r.fan = b
	for _, c := range r.clients {
		r.takeFor(c, ev)
	}
	r.fan = nil
	if b.n > 0 {
		r.w.acks.expectAcks(r.name, b.epoch, b.seq, b.n)
	}
	for _, st := range b.starts {
		r.start(st.c, st.d)
	}
}

// takeFor handles one entry for one client, in the room's stream order;
// r.mu must be held.
func (r *workerRoom) takeFor(c *workerClient, ev streams.Event) {
	if c.gone || c.pos.hold(ev, nil) {
		return
	}
	if !c.pos.advance(ev.ID) {
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
	case streams.Kick, streams.RoomDeleted:
		if ev.Type == streams.Kick && ev.ClientID != c.id {
			return
		}
		r.drop(c)
		k := &KickedError{ClientID: c.id, Room: r.name, Actor: ev.Actor, Reason: ev.Reason, RoomDeleted: ev.Type == streams.RoomDeleted}
		r.enqueue(c, delivery{kicked: k})
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
		m.acker, m.issued = w, issuedToken{s: m.AckToken, t: t}
		c.token.Store(&m.issued) // part of the message: no allocation of its own
		if b := r.fan; b != nil && (b.n == 0 || b.epoch == c.epoch && b.seq == ev.MessageID) {
			b.epoch, b.seq = c.epoch, ev.MessageID
			b.n++
		} else {
			w.acks.expectAcks(r.name, c.epoch, ev.MessageID, 1)
		}
	}
	r.enqueue(c, delivery{msg: m, ackOnly: ev.Type == undecodable})
}

// drop removes a client that left or was evicted; r.mu must be held.
func (r *workerRoom) drop(c *workerClient) {
	if r.clients[c.id] != c {
		return
	}
	delete(r.clients, c.id)
	r.w.issued.unhost(c)
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
	if c.running {
		c.queue = append(c.queue, d)
		return
	}
	if r.fan != nil {
		c.running = true // started at the end of the fanout
		r.fan.starts = append(r.fan.starts, fanoutStart{c, d})
		return
	}
	r.start(c, d)
}

// start starts c's delivery goroutine with d; r.mu must be held. The
// mailbox is empty (drain stops only then): the goroutine is handed d
// itself, so it starts the handler without taking r.mu, which a fanout
// holds while it starts the room's other members.
func (r *workerRoom) start(c *workerClient, d delivery) {
	c.running = r.w.spawn(func() { r.w.drain(c, d) })
}

// drain delivers first, then the client's mailbox until it is empty.
func (w *Worker) drain(c *workerClient, first delivery) {
	r := c.room
	if w.ctx.Err() == nil {
		w.deliver(c.id, r.name, first)
	}
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
	if d.kicked != nil {
		w.m.kicked.Add(1)
		w.q.stats.Kicked.Add(1)
		if w.opts.HandleClientKicked == nil {
			d.timeout = true // see WorkerOptions.HandleClientKicked
		} else {
			if err := w.opts.HandleClientKicked(w.ctx, clientID, d.kicked); err != nil {
				w.m.handlerErrors.Add(1)
				w.log.Warn("syncfanout: HandleClientKicked failed", "client", clientID, "room", room, "err", err)
			}
			return
		}
	}
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
	ctx := w.ctx
	if w.q.opts.Tracer != nil {
		ctx = w.q.startDelivery(ctx, DeliveryInfo{ClientID: clientID, Worker: true}, d.msg)
		// Ends the delivery of a handler that panicked (a no-op after the
		// end below); the panic goes on to the recover above.
		defer d.msg.trace.end(errHandlerPanicked)
	}
	err := w.opts.HandleMessage(ctx, clientID, d.msg)
	d.msg.trace.end(err)
	if err != nil {
		w.m.handlerErrors.Add(1)
		// A handler cut short by Close is expected, not worth a warning.
		// Close marks the worker closed, then ends the handlers' context,
		// refuses their acks and makes their clients leave: an ack in
		// flight meanwhile fails with ErrNotMember (the quick start in
		// README.md warned so about one run in a hundred on a loaded
		// machine).
		if w.isClosed() && cutShortByClose(err) {
			return
		}
		w.log.Warn("syncfanout: HandleMessage failed", "client", clientID, "room", room, "message", d.msg.ID, "err", err)
	}
}

// cutShortByClose reports whether err is what a handler meets when its
// worker closes under it.
func cutShortByClose(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, sferr.ErrClosed) || errors.Is(err, sferr.ErrNotMember)
}

// errHandlerPanicked ends the traced delivery of a handler that panicked.
var errHandlerPanicked = errors.New("syncfanout: HandleMessage panicked")
