package queue

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ackBatchesHarness drives an ackBatches without a Worker or Redis: spawn
// runs batchers on goroutines it waits for, send records each call and can
// be held so that acks pile up behind it.
type ackBatchesHarness struct {
	*ackBatches
	waiting atomic.Int64
	wg      sync.WaitGroup
	sent    chan []*ackReq // every send call's batch
	hold    chan struct{}  // when not nil, send waits for it to close
}

func newAckBatchesHarness(t *testing.T, coalesce time.Duration, hold bool) *ackBatchesHarness {
	ctx, cancel := context.WithCancel(context.Background())
	h := &ackBatchesHarness{sent: make(chan []*ackReq, 100)}
	if hold {
		h.hold = make(chan struct{})
	}
	spawn := func(f func()) bool { h.wg.Go(f); return true }
	send := func(room string, batch []*ackReq) {
		h.sent <- batch
		if h.hold != nil {
			<-h.hold
		}
	}
	h.ackBatches = newAckBatches(ctx, coalesce, spawn, send, &h.waiting)
	t.Cleanup(func() { cancel(); h.wg.Wait() })
	return h
}

func (h *ackBatchesHarness) ack(t *testing.T, room, client string, seq uint64) *ackReq {
	r := &ackReq{client: client, seq: seq, epoch: "e", done: make(chan error, 1)}
	require.True(t, h.enqueue(room, r))
	return r
}

// next returns the next send call's batch, failing if none comes.
func (h *ackBatchesHarness) next(t *testing.T) []*ackReq {
	t.Helper()
	select {
	case b := <-h.sent:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no batch was sent")
		return nil
	}
}

// waitingForCompany reports whether room's batcher is holding its acks
// back for the other expected ones.
func (h *ackBatchesHarness) waitingForCompany(room string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.batchers[room]
	return b != nil && !b.since.IsZero() && len(b.pending) > 0
}

func clientsOf(batch []*ackReq) []string {
	out := make([]string, len(batch))
	for i, r := range batch {
		out[i] = r.client
	}
	return out
}

// TestAckBatchesOneCallAtATime: while a room's call is out, its acks
// wait, and the next call carries all of them in arrival order; once the
// room is idle its batcher ends and nothing is counted as waiting.
func TestAckBatchesOneCallAtATime(t *testing.T) {
	t.Parallel()
	h := newAckBatchesHarness(t, -1, true)
	h.ack(t, "r", "a", 1)
	require.Equal(t, []string{"a"}, clientsOf(h.next(t)))
	h.ack(t, "r", "b", 1)
	h.ack(t, "r", "c", 1)
	h.ack(t, "other", "x", 1) // another room has its own batcher
	require.Equal(t, []string{"x"}, clientsOf(h.next(t)))
	close(h.hold)
	require.Equal(t, []string{"b", "c"}, clientsOf(h.next(t)))
	h.wg.Wait()
	require.Empty(t, h.batchers, "an idle room keeps no batcher")
	require.Zero(t, h.waiting.Load())
}

// TestAckBatchesCoalesce: with AckCoalesce, the acks of a message handed
// to several members go out together once the last expected one is in;
// an ack for another message, or a forgotten room, does not wait.
func TestAckBatchesCoalesce(t *testing.T) {
	t.Parallel()
	h := newAckBatchesHarness(t, time.Hour, false) // longer than any test: only the acks end the wait
	for range 3 {
		h.expectAcks("r", "e", 5, 1)
	}
	h.ack(t, "r", "a", 5)
	require.Eventually(t, func() bool { return h.waitingForCompany("r") }, 10*time.Second, time.Millisecond,
		"the batcher sends a's ack alone instead of waiting for b's and c's")
	h.ack(t, "r", "b", 5)
	h.ack(t, "r", "c", 5)
	require.Equal(t, []string{"a", "b", "c"}, clientsOf(h.next(t)))

	for range 2 {
		h.expectAcks("r", "e", 6, 1)
	}
	h.ack(t, "r", "a", 6)
	h.ack(t, "r", "late", 4) // not for the newest message: nothing to gain by waiting
	var got []string
	for len(got) < 2 {
		got = append(got, clientsOf(h.next(t))...)
	}
	require.ElementsMatch(t, []string{"a", "late"}, got)

	h.expectAcks("q", "e", 1, 1)
	h.expectAcks("q", "e", 1, 1)
	h.forget("q")
	h.ack(t, "q", "a", 1)
	require.Equal(t, []string{"a"}, clientsOf(h.next(t)))
}

// TestAckBatchesFail: a batcher that cannot start refuses the ack, and
// fail hands its error to every ack still waiting.
func TestAckBatchesFail(t *testing.T) {
	t.Parallel()
	var waiting atomic.Int64
	var started []func()
	stopped := false
	spawn := func(f func()) bool {
		if stopped {
			return false
		}
		started = append(started, f) // never run: the acks stay waiting
		return true
	}
	a := newAckBatches(context.Background(), -1, spawn, func(string, []*ackReq) { t.Error("sent") }, &waiting)
	r1 := &ackReq{client: "a", done: make(chan error, 1)}
	r2 := &ackReq{client: "b", done: make(chan error, 1)}
	require.True(t, a.enqueue("r", r1))
	require.True(t, a.enqueue("r", r2))
	require.Len(t, started, 1, "one batcher per room")
	stopped = true
	require.False(t, a.enqueue("other", &ackReq{done: make(chan error, 1)}))
	boom := errors.New("closed")
	a.fail(boom)
	require.ErrorIs(t, <-r1.done, boom)
	require.ErrorIs(t, <-r2.done, boom)
	require.Empty(t, a.batchers)
}
