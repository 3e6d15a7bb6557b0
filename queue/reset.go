package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/internal/streamreader"
	"github.com/syncfanout/syncfanout/streams"
)

// A room is reset when Redis no longer holds the state a subscription
// joined: a restart without persistence wipes it (the room's epoch is gone,
// or new when someone used the room since), a failover can lose the last
// writes (the stream then ends before what the subscription already read).
// Such a subscription cannot go on: its member is gone, its acks would be
// refused and its position points into a history that no longer exists.
// It ends with ErrRoomReset, so the caller joins again.

// roomCheck is what Redis says about one room after a reconnect.
type roomCheck struct {
	epoch string // "" when the room has no state
	last  string // the stream's last generated ID, "" when there is no stream
}

// checkClient is the client that reads rooms after a reader's reconnect:
// the readers' own, whose slot map the reader reloaded just before it
// reconnected (after a failover, the caller's may still route to the dead
// master until one of its own calls fails).
func (r *router) checkClient() redis.UniversalClient {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.readerClient != nil {
		return r.readerClient
	}
	return r.q.rdb
}

// readRooms asks, in one pipeline, for the epoch and last stream ID of rooms.
func (r *router) readRooms(ctx context.Context, rooms []string) (map[string]roomCheck, error) {
	pipe := r.checkClient().Pipeline()
	eps := make([]*redis.StringCmd, len(rooms))
	infos := make([]*redis.XInfoStreamCmd, len(rooms))
	for i, room := range rooms {
		eps[i] = pipe.HGet(ctx, r.q.layout.Meta(room), "ep")
		infos[i] = pipe.XInfoStream(ctx, r.q.layout.Stream(room))
	}
	_, _ = pipe.Exec(ctx) // each command's error is looked at below
	out := make(map[string]roomCheck, len(rooms))
	for i, room := range rooms {
		var c roomCheck
		ep, err := eps[i].Result()
		switch {
		case err == nil:
			c.epoch = ep
		case !errors.Is(err, redis.Nil):
			return nil, fmt.Errorf("syncfanout: checking room %q after a reconnect: %w", room, err)
		}
		info, err := infos[i].Result()
		switch {
		case err == nil:
			c.last = info.LastGeneratedID
		case !isNoSuchKey(err):
			return nil, fmt.Errorf("syncfanout: checking room %q after a reconnect: %w", room, err)
		}
		out[room] = c
	}
	return out, nil
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// resetError returns the ErrRoomReset for s given what Redis holds now, or
// nil when s can go on. read is a stream position known to have been read
// before c was: the stream cannot end before it unless history was lost.
// (A subscription's own position can move past c while c is checked,
// through entries handed over by this process's acks, so it is no proof.)
func (s *Subscription) resetError(c roomCheck, read string) error {
	s.mu.Lock()
	epoch := s.epoch
	s.mu.Unlock()
	switch {
	case epoch == "":
		return nil // still joining: the join reads the current epoch
	case c.epoch != epoch:
		return fmt.Errorf("%w: room %q: epoch %s, now %q", sferr.ErrRoomReset, s.room, epoch, c.epoch)
	case c.last == "" || (read != "" && streams.CompareIDs(c.last, read) < 0):
		return fmt.Errorf("%w: room %q: its stream ends at %q, before %s already read", sferr.ErrRoomReset, s.room, c.last, read)
	}
	return nil
}

// checkReset is the readers' OnReconnect hook: the subscriptions of rooms
// that were reset end with ErrRoomReset (which unfollows them), and the
// workers' clients there are dropped and reported to HandleClientTimeout,
// before the reader reads again, so nothing written after the reset
// reaches them.
func (r *router) checkReset(ctx context.Context, positions []streamreader.Position) error {
	rooms := make([]string, len(positions))
	for i, p := range positions {
		rooms[i] = p.Room
	}
	checks, err := r.readRooms(ctx, rooms)
	if err != nil {
		return err
	}
	if err := r.confirmChecks(ctx, positions, checks); err != nil {
		return err
	}
	for _, p := range positions {
		for _, s := range r.sinksOf(p.Room) {
			s.roomReset(checks[p.Room], p.Last)
		}
	}
	return nil
}

// roomReset ends s with ErrRoomReset if Redis no longer holds what it
// joined (roomSink).
func (s *Subscription) roomReset(c roomCheck, read string) {
	if err := s.resetError(c, read); err != nil {
		s.reset(err)
	}
}

// roomReset drops the clients Redis no longer knows (roomSink).
func (r *workerRoom) roomReset(c roomCheck, read string) {
	behind := c.last == "" || streams.CompareIDs(c.last, read) < 0
	if n := r.reset(c, behind); n > 0 {
		r.w.q.opts.Logger.Warn("syncfanout: room reset", "room", r.name, "worker clients", n,
			"epoch", c.epoch, "stream last", c.last, "read up to", read)
	}
}

// reset drops the clients of a worker room that Redis no longer knows
// (joined under another epoch, or whose stream ends before what was read)
// and reports each once to HandleClientTimeout, as for an eviction: the
// gateway tells its end client, which subscribes again. A follow-all room
// takes the new epoch for the members it finds from now on.
func (r *workerRoom) reset(c roomCheck, behind bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	// behind compares with the reader's position, read before c; the
	// room's own position may have moved past c since, through entries
	// this process's acks handed over, which proves nothing.
	n := 0
	for _, cl := range r.clients {
		if !cl.pos.started() || cl.gone || (cl.epoch == c.epoch && !behind) {
			continue
		}
		r.drop(cl)
		// Counted before the handler can run, so whoever it tells sees
		// the count already.
		r.w.q.stats.Reset.Add(1)
		r.enqueue(cl, delivery{timeout: true})
		n++
	}
	if r.w.opts.FollowAll {
		r.epoch = c.epoch
	}
	return n
}

// reset ends s with a room reset; the subscription is not counted as evicted.
func (s *Subscription) reset(err error) {
	if s.endCounted(err, func() { s.q.stats.Reset.Add(1) }) {
		s.q.opts.Logger.Warn("syncfanout: room reset", "room", s.room, "client", s.clientID, "err", err)
	}
}

// lost ends s after a heartbeat found its client gone from the room: a
// reset when the room's state was replaced, an eviction otherwise.
func (r *router) lost(ctx context.Context, s *Subscription) {
	s.mu.Lock()
	read := s.pos.position() // taken before the check, so the stream must reach it
	kicked, _ := s.endingQueued()
	s.mu.Unlock()
	if kicked != nil {
		// An operator's kick or deletion, already read: it says why, and a
		// deleted room would otherwise look reset.
		s.endKicked(kicked)
		return
	}
	checks, err := r.readRooms(ctx, []string{s.room})
	if err == nil {
		if rerr := s.resetError(checks[s.room], read); rerr != nil {
			s.reset(rerr)
			return
		}
		if k := r.unreadKick(ctx, s, read); k != nil {
			s.endKicked(k)
			return
		}
	}
	s.fail(&EvictedError{ClientID: s.clientID, Rooms: []string{s.room}})
}

// unreadKick looks for a kick of s's client among the entries after read
// that its reader has not handed over yet: the heartbeat can find the
// client gone first, and a kick must not be reported as an eviction.
func (r *router) unreadKick(ctx context.Context, s *Subscription, read string) *KickedError {
	from := "-"
	if read != "" {
		from = "(" + read
	}
	ms, err := r.checkClient().XRangeN(ctx, r.q.layout.Stream(s.room), from, "+", 10000).Result()
	if err != nil {
		return nil
	}
	for _, m := range ms {
		ev, err := streams.Decode(s.room, m)
		if err == nil && ev.Type == streams.Kick && ev.ClientID == s.clientID {
			return s.kickedBy(ev)
		}
	}
	return nil
}

// confirmChecks reads again, after a pause and a refresh of the cluster's
// slot map, the rooms whose first answer looks like a reset (no state, no
// stream, or a stream ending before what was read). While a slot moves
// between masters, a node can answer for a room it does not hold yet, and
// one such answer must not drop every subscriber of the room. A real reset
// (a restart without persistence) answers the same twice; a room whose
// answers differ is left for the reader's next reconnect check.
func (r *router) confirmChecks(ctx context.Context, positions []streamreader.Position, checks map[string]roomCheck) error {
	var suspect []string
	for _, p := range positions {
		c := checks[p.Room]
		if c.epoch == "" || c.last == "" || (p.Last != "" && streams.CompareIDs(c.last, p.Last) < 0) {
			suspect = append(suspect, p.Room)
		}
	}
	if len(suspect) == 0 {
		return nil
	}
	t := time.NewTimer(confirmResetAfter)
	select {
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-t.C:
	}
	if cc, ok := unwrapClient(r.checkClient()).(*redis.ClusterClient); ok {
		cc.ReloadState(ctx)
	}
	again, err := r.readRooms(ctx, suspect)
	if err != nil {
		return err
	}
	for _, room := range suspect {
		if again[room] != checks[room] {
			return fmt.Errorf("syncfanout: room %q answered %+v then %+v after a reconnect: checking again later", room, checks[room], again[room])
		}
	}
	return nil
}

// confirmResetAfter is the pause before a suspected reset is read again.
const confirmResetAfter = 500 * time.Millisecond
