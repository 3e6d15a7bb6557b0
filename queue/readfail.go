package queue

import (
	"context"
	"fmt"

	"github.com/syncfanout/syncfanout/internal/streamreader"
)

// Redis being unreachable must not look like a quiet room: a subscriber
// blocked in Next would wait for its whole deadline and get only the
// context's error, while every other call returns the Redis error. So the
// router counts each shard reader's consecutive failures, and from the
// reader's first failed reconnect on, every failure is handed once to each
// subscription of the shard that waits in Next (see Subscription.Next).
// The reader reports a failure per attempt and backs off up to 2s between
// attempts, which bounds the rate of these errors.

// readFailAfter is the number of consecutive reader failures after which
// they reach the subscriptions: the first is a broken connection, which the
// reader mends without anyone noticing; the second means the reconnect
// failed too.
const readFailAfter = 2

// shardFail is a shard reader's run of failures.
type shardFail struct {
	n   int    // consecutive failures, 0 once the reader read again
	seq uint64 // failures handed to subscriptions, ever
	err error  // the latest
}

// readerFailed records a failure of shard's reader and wakes the shard's
// waiting subscriptions when it is one to hand them.
func (r *router) readerFailed(shard int, err error) {
	r.mu.Lock()
	f := r.failLocked(shard)
	f.n++
	f.err = err
	if f.n == readFailAfter {
		r.failing.Add(1)
	}
	var wake []*Subscription
	if f.n >= readFailAfter {
		f.seq++
		onShard := func(room string) bool { return r.q.layout.ShardOf(room) == shard }
		for _, list := range r.subscriptionsLocked(onShard) {
			wake = append(wake, list...)
		}
	}
	r.mu.Unlock()
	for _, s := range wake {
		s.signal()
	}
}

// readerResumed ends shard's run of failures: its reader reached Redis.
func (r *router) readerResumed(shard int) {
	r.mu.Lock()
	f := r.failLocked(shard)
	if f.n >= readFailAfter {
		r.failing.Add(-1)
	}
	f.n = 0
	r.mu.Unlock()
}

// onReconnect is the readers' OnReconnect: the reset check, which, when it
// gets an answer, shows that Redis is back.
func (r *router) onReconnect(shard int) func(context.Context, []streamreader.Position) error {
	return func(ctx context.Context, rooms []streamreader.Position) error {
		err := r.checkReset(ctx, rooms)
		if err == nil {
			r.readerResumed(shard)
		}
		return err
	}
}

func (r *router) failLocked(shard int) *shardFail {
	if r.fails == nil {
		r.fails = map[int]*shardFail{}
	}
	f := r.fails[shard]
	if f == nil {
		f = &shardFail{}
		r.fails[shard] = f
	}
	return f
}

// failSeq returns how many failures of room's reader were handed out.
func (r *router) failSeq(room string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failLocked(r.q.layout.ShardOf(room)).seq
}

// newFailure returns the latest failure of the reader of s's room if s has
// not been handed it yet, wrapped for s's caller; nil otherwise.
func (r *router) newFailure(s *Subscription) error {
	// Every Next that finds nothing queued asks: without a failing reader
	// it must not take the router's lock, which all of the Queue's
	// subscriptions would contend for (the top of W2's mutex profile). A
	// failure counted after this load wakes s (readerFailed signals after
	// counting), so s asks again.
	if r.failing.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	f := r.failLocked(r.q.layout.ShardOf(s.room))
	seq, err, failing := f.seq, f.err, f.n >= readFailAfter
	r.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Only while the reader still fails: once it has read again, what
	// happened during the outage is no news (and the reset check may have
	// ended the subscription with a better error).
	if !failing || seq <= s.failSeen || err == nil {
		return nil
	}
	s.failSeen = seq
	return &ReadError{Room: s.room, Err: err}
}

// ReadError is returned by Subscription.Next when the room's stream could
// not be read from Redis: Redis is unreachable, or failing. The
// subscription stays open; Next delivers again once Redis answers. It
// unwraps to the Redis error.
type ReadError struct {
	Room string
	Err  error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("syncfanout: room %q: cannot read its stream from Redis: %v", e.Room, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }
