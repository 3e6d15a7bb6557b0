package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/streams"
)

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
			w.catchUp(ctx, r)
			w.releaseRoom(r)
		}
		for _, name := range found {
			if err := w.followAllRoom(ctx, name); err != nil && ctx.Err() == nil {
				w.log.Warn("syncfanout: worker follows room", "room", name, "err", err)
			}
		}
	}
}

// catchUp takes the entries of a room that left the index which the
// reader has not handed over yet. The room leaves the index in the same
// script call that appends its last entries (the eviction, leave or kick
// that emptied it), so discovery can see it gone before the reader reads
// them: releasing it then would lose those entries, and with them the
// HandleClientTimeout or HandleClientKicked they owe. Entries the reader
// hands over meanwhile are taken once (take skips what it has seen).
func (w *Worker) catchUp(ctx context.Context, r *workerRoom) {
	r.mu.Lock()
	from := r.pos.position()
	r.mu.Unlock()
	if from == "" {
		return // not followed yet: whoever follows it reads from its tail
	}
	stream := w.q.layout.Stream(r.name)
	for {
		msgs, err := w.q.rdb.XRangeN(ctx, stream, "("+from, "+", catchUpPage).Result()
		if err != nil {
			if ctx.Err() == nil {
				w.warnDiscover.warn(w.log, "syncfanout: worker reads the last entries of a room", "room", r.name, "err", err)
			}
			return
		}
		r.mu.Lock()
		for _, m := range msgs {
			ev, err := streams.Decode(r.name, m)
			if err != nil {
				ev = refusedEvent(r.name, m.ID, err)
			}
			r.take(ev, err)
		}
		r.mu.Unlock()
		if len(msgs) < catchUpPage {
			return
		}
		from = msgs[len(msgs)-1].ID
	}
}

// catchUpPage bounds one read of catchUp.
const catchUpPage = 100

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
	l := w.q.layout
	var (
		meta *redis.SliceCmd
		mem  *redis.StringSliceCmd
		obs  *redis.StringSliceCmd
		acks *redis.MapStringStringCmd
		incs *redis.MapStringStringCmd
		last *redis.XMessageSliceCmd
	)
	_, err := w.q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HMGet(ctx, l.Meta(room), "ep", "f", "fs", "rn", "wl")
		mem = p.ZRange(ctx, l.Members(room), 0, -1)
		obs = p.ZRange(ctx, l.Observers(room), 0, -1)
		acks = p.HGetAll(ctx, l.Acks(room))
		incs = p.HGetAll(ctx, l.Incarnations(room))
		last = p.XRevRangeN(ctx, l.Stream(room), "+", "-", 1)
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
		msgs, err := w.q.rdb.XRangeN(ctx, l.Stream(room), fs, fs, 1).Result()
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
