package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/queue"
)

// subscriber is one in-process member and how long it "works" on a message.
type subscriber struct {
	name  string
	speed time.Duration
}

var subscribers = []subscriber{
	{"fast", 20 * time.Millisecond},
	{"medium", 80 * time.Millisecond},
	{"slow", 200 * time.Millisecond},
}

// sends is the producer's script, in send order. The release order is
// different: lower priority numbers first, send order within a priority.
var sends = []struct {
	label    string
	priority int
}{
	{"status", 5}, {"report", 9}, {"price", 1}, {"chat-1", 5},
	{"breaker", 0}, {"analytics", 9}, {"price-fix", 1}, {"chat-2", 5},
}

const (
	producer    = "shop"
	oobProducer = "ops"
	oobLabel    = "restart-soon"
	// oobAfter: the OOB message is sent while the room waits for the
	// slowest subscriber's ack of the oobAfter-th released message.
	oobAfter = 4
)

// subLog is what one subscriber saw, by local clock.
type subLog struct {
	name   string
	recv   []uint64 // message IDs in receipt order, OOB included
	recvAt map[uint64]time.Time
	ackAt  map[uint64]time.Time // when the ack was sent
}

type sentMsg struct {
	label    string
	priority int
	at       time.Time
	oob      bool
}

// result is one run of the scenario.
type result struct {
	room        string
	localStart  time.Time
	serverStart time.Time // the Redis clock at localStart

	mu          sync.Mutex
	sent        map[uint64]sentMsg
	sendOrder   []uint64
	released    map[uint64]time.Time // server release time, queued and OOB
	order       []uint64             // queued messages in release order (first receipt)
	subs        []*subLog
	clientNames map[string]string
	midway      chan struct{}
	acks        map[uint64]int    // acks returned by all but the slowest, by message
	streamIDs   map[uint64]string // delivery stream entry, by message
	oobToken    bool              // the OOB message came with an ack token

	oobID       uint64
	oobPending  int
	oobInFlight uint64
	took        time.Duration
}

// runScenario runs the scenario once in room and returns what happened.
func runScenario(ctx context.Context, rdb redis.UniversalClient, q *queue.Queue, room string) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()

	r := &result{
		room:        room,
		sent:        map[uint64]sentMsg{},
		released:    map[uint64]time.Time{},
		clientNames: map[string]string{},
		midway:      make(chan struct{}),
		acks:        map[uint64]int{},
		streamIDs:   map[uint64]string{},
	}
	// Relative times are printed against the Redis clock, which stamps
	// releases and stream entries.
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		return nil, err
	}
	r.localStart, r.serverStart = time.Now(), now

	subs := make([]*queue.Subscription, len(subscribers))
	for i, s := range subscribers {
		sub, err := q.Join(ctx, room)
		if err != nil {
			return nil, err
		}
		defer sub.Close(context.WithoutCancel(ctx))
		subs[i] = sub
		r.clientNames[sub.ClientID()] = s.name
		r.subs = append(r.subs, &subLog{name: s.name, recvAt: map[uint64]time.Time{}, ackAt: map[uint64]time.Time{}})
	}

	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, sub := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.consume(ctx, sub, r.subs[i], subscribers[i].speed)
			if errs[i] != nil {
				cancel() // the others would wait for this one forever
			}
		}()
	}

	err = r.produce(ctx, q)
	if err != nil {
		cancel()
	}
	wg.Wait()
	r.took = time.Since(r.localStart)
	if err := errors.Join(append([]error{err}, errs...)...); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *result) produce(ctx context.Context, q *queue.Queue) error {
	for _, s := range sends {
		at := time.Now()
		id, err := q.Send(ctx, r.room, s.label, queue.Priority(s.priority), queue.Producer(producer))
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.sent[id] = sentMsg{label: s.label, priority: s.priority, at: at}
		r.sendOrder = append(r.sendOrder, id)
		r.mu.Unlock()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-r.midway:
	}
	st, err := q.RoomState(ctx, r.room)
	if err != nil {
		return err
	}
	at := time.Now()
	id, err := q.SendOutOfBand(ctx, r.room, oobLabel, queue.Producer(oobProducer))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.sent[id] = sentMsg{label: oobLabel, at: at, oob: true}
	r.sendOrder = append(r.sendOrder, id)
	r.oobID, r.oobPending = id, st.Pending
	if st.InFlight != nil {
		r.oobInFlight = st.InFlight.Seq
	}
	r.mu.Unlock()
	return nil
}

// consume receives every queued message and the OOB one, working speed
// on each queued message before acking it.
func (r *result) consume(ctx context.Context, sub *queue.Subscription, log *subLog, speed time.Duration) error {
	for range len(sends) + 1 {
		m, err := sub.Next(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", log.name, err)
		}
		r.received(log, m, time.Now())
		if m.OutOfBand {
			continue // nothing to ack: OOB messages never hold the room
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(speed):
		}
		r.mu.Lock()
		log.ackAt[m.ID] = time.Now()
		r.mu.Unlock()
		if err := m.Ack(ctx); err != nil {
			return fmt.Errorf("%s: ack #%d: %w", log.name, m.ID, err)
		}
		r.acked(log, m.ID)
	}
	return nil
}

// acked lets the producer send the OOB message once every subscriber but
// the slowest acked the oobAfter-th message: the room is then blocked on
// one ack, and the others are idle, so they show the OOB arriving at once.
func (r *result) acked(log *subLog, id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if log.name == subscribers[len(subscribers)-1].name {
		return
	}
	r.acks[id]++
	if len(r.order) >= oobAfter && id == r.order[oobAfter-1] && r.acks[id] == len(subscribers)-1 {
		close(r.midway)
	}
}

func (r *result) received(log *subLog, m *queue.Message, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	log.recv = append(log.recv, m.ID)
	log.recvAt[m.ID] = at
	if _, seen := r.released[m.ID]; seen {
		return
	}
	r.released[m.ID] = m.ReleasedAt
	r.streamIDs[m.ID] = m.StreamID
	if m.OutOfBand {
		r.oobToken = r.oobToken || m.AckToken != ""
		return
	}
	r.order = append(r.order, m.ID)
}
