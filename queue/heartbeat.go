package queue

import (
	"context"
	"sync/atomic"
	"time"
)

// heartbeat beats for every local subscription, one script call per room,
// and reports whether every room's call succeeded (heartbeatLoop's beat).
func (r *router) heartbeat(ctx context.Context) (ok bool) {
	r.mu.Lock()
	byRoom := r.subscriptionsLocked(nil)
	r.mu.Unlock()
	// Rooms beat in parallel: one after the other, a process with many
	// rooms could take longer than ClientTimeout to get round them.
	rooms := make([]string, 0, len(byRoom))
	for room := range byRoom {
		rooms = append(rooms, room)
	}
	var bad atomic.Bool
	forEachBounded(rooms, maxParallelCalls, func(room string) {
		if !r.heartbeatRoom(ctx, room, byRoom[room]) {
			bad.Store(true)
		}
	})
	return !bad.Load()
}

func (r *router) heartbeatRoom(ctx context.Context, room string, list []*Subscription) bool {
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.clientID
	}
	alive, err := r.q.barrier.Heartbeat(ctx, room, ids)
	if err != nil {
		if ctx.Err() == nil {
			r.warnBeat.warn(r.q.opts.Logger, "syncfanout: heartbeat", "room", room, "err", err)
		}
		return false
	}
	for i, ok := range alive {
		if !ok && list[i].joined() {
			r.lost(ctx, list[i])
		}
	}
	return true
}

// heartbeatLoop beats every interval, and sooner after a failed round: a
// member whose beat failed (its room's master was just killed, say) beats
// again as soon as Redis answers, rather than an interval later, so that
// a failover within ClientTimeout/3 evicts nobody.
func (r *router) heartbeatLoop(ctx context.Context, every time.Duration) {
	heartbeatLoop(ctx, every, r.heartbeat)
}

// heartbeatLoop runs beat every interval, retrying a failed round (beat
// reports false) after a backoff (at most 1s, and never slower than the
// interval).
func heartbeatLoop(ctx context.Context, every time.Duration, beat func(context.Context) bool) {
	var b retryBackoff
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		began := time.Now()
		if beat(ctx) {
			b.reset()
			t.Reset(every - min(time.Since(began), every))
		} else {
			t.Reset(b.next(min(every, time.Second)))
		}
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
	var bad atomic.Bool
	forEachBounded(rooms, maxParallelCalls, func(r *workerRoom) {
		if !w.heartbeatRoom(ctx, r) {
			bad.Store(true)
		}
	})
	return !bad.Load()
}

func (w *Worker) heartbeatRoom(ctx context.Context, r *workerRoom) bool {
	r.mu.Lock()
	ids := make([]string, 0, len(r.clients))
	for id, c := range r.clients {
		if c.pos.started() {
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
