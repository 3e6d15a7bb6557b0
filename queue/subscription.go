package queue

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/streams"
)

// Subscription is a member (or observer) of one room living in this
// process: Join created its client ID, the Queue beats for it, and its
// messages arrive through Next or Messages.
type Subscription struct {
	q        *Queue
	room     string
	clientID string
	observer bool

	mu sync.Mutex
	// pos is the position in the room's stream, started where the join
	// returned: entries are taken only in stream order and only once, from
	// the reader or straight from a script reply (see pushDirect).
	pos    cursor
	epoch  string
	inc    string // the membership the join made or found (barrier.Joined.Incarnation)
	buf    []streams.Event
	err    error // terminal
	notify chan struct{}
	// failSeen is the number of the router's reader failures for the room's
	// shard already returned by Next, or older than the join.
	failSeen uint64
	// traced is the delivery of the last message Next returned, while the
	// tracer (Options.Tracer) has not been told it ended.
	traced *traceDelivery
}

// Join creates a client ID (or uses WithClientID), joins room with it and
// returns the subscription. It receives what is released after the join.
func (q *Queue) Join(ctx context.Context, room string, opts ...JoinOption) (*Subscription, error) {
	if err := q.check(ctx); err != nil {
		return nil, err
	}
	var jo joinOptions
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&jo); err != nil {
			return nil, err
		}
	}
	if err := keys.ValidateRoom(room); err != nil {
		return nil, err
	}
	id := jo.clientID
	if id == "" {
		var err error
		if id, err = q.CreateClientID(ctx); err != nil {
			return nil, err
		}
	}
	s := &Subscription{q: q, room: room, clientID: id, observer: jo.observer, notify: make(chan struct{}, 1)}
	s.failSeen = q.router.failSeq(room)
	if err := q.router.add(room, s); err != nil {
		return nil, err
	}
	j, err := q.subscribe(ctx, id, room, jo.observer)
	if err != nil {
		q.router.remove(room, s)
		return nil, err
	}
	s.mu.Lock()
	s.epoch, s.inc = j.Epoch, j.Incarnation
	s.buf = append(s.buf, owedEvents(q, room, j.Owed)...) // it precedes From
	for _, e := range s.pos.start(j.From) {
		s.take(e.ev)
	}
	s.mu.Unlock()
	if err := q.router.follow(ctx, room, s, j.From); err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	s.signal()
	return s, nil
}

// ClientID returns the subscription's client ID.
func (s *Subscription) ClientID() string { return s.clientID }

// Room returns the subscription's room.
func (s *Subscription) Room() string { return s.room }

// Observer reports whether the subscription has no vote.
func (s *Subscription) Observer() bool { return s.observer }

func (s *Subscription) joined() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos.started() && s.err == nil
}

func (s *Subscription) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// push takes an entry from the reader, in stream order (roomSink); an
// entry that failed to decode comes as the router's refusedEvent. The
// queue is not bounded: the barrier allows one queued message per room at
// a time (W under a Policy.Window; under a quorum, as many as
// Policy.MaxLag lets a member fall behind), so only out-of-band floods can
// grow it otherwise, and dropping would break the guarantee.
func (s *Subscription) push(ev streams.Event, _ error) {
	s.mu.Lock()
	if s.err != nil || s.pos.hold(ev, nil) {
		s.mu.Unlock()
		return
	}
	took := s.take(ev)
	s.mu.Unlock()
	if took {
		// Not for an entry the replies already brought: its Next may
		// be waiting for the next one, and would only wake to wait again.
		s.signal()
	}
}

// handing returns the subscription's epoch and whether it will take the
// entry id as the next step after prev ("" for any position before id):
// the router tells joinAcks who is about to be handed a message.
func (s *Subscription) handing(prev, id string) (epoch string, ok bool) {
	if s.observer {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || !s.pos.next(prev, id) {
		return "", false
	}
	return s.epoch, true
}

// pushDirect takes entries returned by a script of this process (an ack
// or a send that released a message) before the reader sees them, when the
// subscription's position is exactly prev (roomSink, cursor.at).
func (s *Subscription) pushDirect(prev string, evs []streams.Event) {
	s.mu.Lock()
	if s.err != nil || !s.pos.at(prev) {
		s.mu.Unlock()
		return
	}
	took := false
	for _, ev := range evs {
		took = s.take(ev) || took
	}
	s.mu.Unlock()
	if took {
		s.signal()
	}
}

// take advances the position over ev and queues it if it concerns this
// subscription, reporting whether it did. s.mu must be held.
func (s *Subscription) take(ev streams.Event) bool {
	if !s.pos.advance(ev.ID) {
		return false
	}
	switch ev.Type {
	case streams.Message, streams.OutOfBand:
	case undecodable:
		if s.observer {
			return false // observers never ack
		}
	case streams.Evict, streams.Leave, streams.Kick:
		if ev.ClientID != s.clientID {
			return false
		}
	case streams.RoomDeleted:
	default:
		return false // others' joins, and malformed entries (counted by the router)
	}
	s.buf = append(s.buf, ev)
	return true
}

// fail ends the subscription after a heartbeat found the client gone.
// The eviction's event, already read but not yet consumed, says why;
// without it the heartbeat timeout is the likely reason.
func (s *Subscription) fail(err error) {
	s.mu.Lock()
	kicked, reason := s.endingQueued()
	s.mu.Unlock()
	if kicked != nil {
		s.endKicked(kicked)
		return
	}
	s.endCounted(err, func() { s.q.stats.evicted(reason) })
}

// endingQueued looks through the entries read but not consumed yet for
// what ends s: the last operator's event that does (a kick of its client,
// its room's deletion), and the reason of the last eviction. s.mu must be
// held.
func (s *Subscription) endingQueued() (kicked *KickedError, evictReason string) {
	for _, ev := range s.buf {
		if ev.Type == streams.Evict {
			evictReason = ev.Reason
		}
		if k := s.kickedBy(ev); k != nil {
			kicked = k
		}
	}
	return kicked, evictReason
}

// Next returns the next message. It returns an *EvictedError when the
// client was evicted, a *KickedError (ErrKicked) when an operator kicked
// it or deleted the room, ErrNotMember when it was removed from the room
// by someone else, ErrClosed after Close, or the context's error. While Redis
// cannot be reached it returns a *ReadError wrapping the Redis error, once
// per failed attempt of the room's reader to reach it (they are at most 2s
// apart); the subscription stays open and Next delivers again once Redis
// answers.
func (s *Subscription) Next(ctx context.Context) (*Message, error) {
	m, err, _ := s.next(ctx)
	return m, err
}

// next is Next, telling whether an error leaves the subscription open.
func (s *Subscription) next(ctx context.Context) (_ *Message, _ error, transient bool) {
	for {
		s.mu.Lock()
		if s.err != nil && len(s.buf) == 0 {
			err := s.err
			s.mu.Unlock()
			return nil, err, false
		}
		if len(s.buf) > 0 {
			ev := s.buf[0]
			if len(s.buf) == 1 {
				// Emptied: the next entry reuses the array instead of
				// growing a new one (in lock-step there is one at a time).
				s.buf[0] = streams.Event{}
				s.buf = s.buf[:0]
			} else {
				s.buf = s.buf[1:]
			}
			s.mu.Unlock()
			m, err := s.deliver(ctx, ev)
			if err != nil {
				return nil, err, false
			}
			if m != nil {
				return m, nil, false
			}
			continue
		}
		s.mu.Unlock()
		if err := s.q.router.newFailure(s); err != nil {
			return nil, err, true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err(), false
		case <-s.notify:
		}
	}
}

// kickedBy returns the error of an operator's event that ends s (a kick of
// its client, or its room's deletion), nil for any other event.
func (s *Subscription) kickedBy(ev streams.Event) *KickedError {
	switch ev.Type {
	case streams.Kick:
		return &KickedError{ClientID: s.clientID, Room: s.room, Actor: ev.Actor, Reason: ev.Reason}
	case streams.RoomDeleted:
		return &KickedError{ClientID: s.clientID, Room: s.room, Actor: ev.Actor, Reason: ev.Reason, RoomDeleted: true}
	}
	return nil
}

func (s *Subscription) endKicked(err *KickedError) {
	s.endCounted(err, func() { s.q.stats.Kicked.Add(1) })
}

func (s *Subscription) deliver(ctx context.Context, ev streams.Event) (*Message, error) {
	if k := s.kickedBy(ev); k != nil {
		s.endKicked(k)
		return nil, k
	}
	switch ev.Type {
	case streams.Evict:
		err := &EvictedError{ClientID: s.clientID, Rooms: []string{s.room}, Reason: ev.Reason}
		// Counted only if this ends s: the heartbeat may have found the
		// client gone, and counted it, since Next took ev off the buffer.
		s.endCounted(err, func() { s.q.stats.evicted(ev.Reason) })
		return nil, err
	case streams.Leave:
		err := fmt.Errorf("%w: client %q was removed from room %q", sferr.ErrNotMember, s.clientID, s.room)
		s.endCounted(err, func() { s.q.stats.EvictedLeave.Add(1) })
		return nil, err
	}
	var m *Message
	if ev.Type == undecodable {
		m = &Message{ID: ev.MessageID, Room: s.room, StreamID: ev.ID}
	} else {
		var err error
		if m, err = newMessage(ev); err != nil {
			s.q.stats.Invalid.Add(1)
			s.q.opts.Logger.Warn("syncfanout: skipped a malformed message", "room", s.room, "err", err)
			return nil, nil
		}
	}
	if (ev.Type == streams.Message || ev.Type == undecodable) && !s.observer {
		s.mu.Lock()
		epoch, inc := s.epoch, s.inc
		s.mu.Unlock()
		t := token{epoch: epoch, room: s.room, client: s.clientID, inc: inc, seq: ev.MessageID}
		m.AckToken = t.encode(s.q.opts.AckSecret)
		m.acker, m.issued = s.q, issuedToken{s: m.AckToken, t: t}
	}
	if ev.Type == undecodable {
		logUndecodableAck(s.q.opts.Logger, s.room, s.clientID, m, m.Ack(ctx))
		return nil, nil
	}
	s.q.stats.Delivered.Add(1)
	s.q.stats.observeDelivery(m)
	if s.q.opts.Tracer != nil {
		s.q.startDelivery(ctx, DeliveryInfo{ClientID: s.clientID}, m)
		m.endOnAck = true
		s.mu.Lock()
		prev := s.traced
		s.traced = m.trace
		s.mu.Unlock()
		// Taking the next message ends the previous delivery, acked or
		// not (out-of-band messages and observers never ack).
		prev.end(nil)
	}
	return m, nil
}

// end records a terminal error (first one wins) and stops following; it
// reports whether this call ended the subscription.
func (s *Subscription) end(err error) bool {
	return s.endCounted(err, nil)
}

// endCounted is end that runs count, when it is the first end, before the
// error is visible: a caller whose Next returned the error (on another
// goroutine than the heartbeat that ended s) then finds it in Stats.
func (s *Subscription) endCounted(err error, count func()) bool {
	s.mu.Lock()
	first := s.err == nil
	if first {
		if count != nil {
			count()
		}
		s.err = err
	}
	s.buf = nil
	traced := s.traced
	s.traced = nil
	s.mu.Unlock()
	traced.end(nil)
	if first {
		s.q.router.remove(s.room, s)
		s.q.acks.gone(s.room, s.clientID)
	}
	s.signal()
	return first
}

// Messages iterates over the subscription's messages until the context
// ends, the subscription is closed (the iteration then just stops) or the
// client is evicted (yielded as an error). A *ReadError (Redis unreachable)
// is yielded too, and the iteration goes on if the loop does.
func (s *Subscription) Messages(ctx context.Context) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		for {
			m, err, transient := s.next(ctx)
			if err != nil {
				if transient {
					if !yield(nil, err) {
						return
					}
					continue
				}
				if !errors.Is(err, sferr.ErrClosed) {
					yield(nil, err)
				}
				return
			}
			if !yield(m, nil) {
				return
			}
		}
	}
}

// Close leaves the room (releasing the barrier if the room waited only for
// this member) and ends the subscription. Idempotent.
func (s *Subscription) Close(ctx context.Context) error {
	// A done context changes nothing, as for every call: the subscription
	// stays open, so a later Close still leaves the room.
	s.mu.Lock()
	open := s.err == nil
	s.mu.Unlock()
	if err := ctx.Err(); err != nil && open {
		return err
	}
	return s.leave(ctx)
}

func (s *Subscription) leave(ctx context.Context) error {
	wasActive := s.end(sferr.ErrClosed)
	s.mu.Lock()
	s.err = sferr.ErrClosed // after an eviction too: Messages then just stops
	s.mu.Unlock()
	if !wasActive {
		return nil
	}
	// Bypass Queue.check: leaving must work while the Queue closes.
	if err := s.q.leave(ctx, s.clientID, s.room); err != nil && !errors.Is(err, sferr.ErrNotMember) {
		return err
	}
	return nil
}
