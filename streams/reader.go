package streams

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Handler receives, in stream order per room, every entry a Reader reads.
// It runs on the reader's goroutine and must not block: queue it.
// err is a *DecodeError for malformed entries (ev is then zero but for ID).
type Handler func(room string, ev Event, err error)

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// Block is how long one XREAD waits before it is sent again (default 5s).
	// It bounds how long a dead connection can go unnoticed, not latency.
	Block time.Duration
	// Count caps the entries one XREAD returns per stream (default 256).
	Count int64
	// OnError is told of Redis errors; the reader then backs off and resumes
	// every room from its last ID.
	OnError func(error)
	// OnReconnect, when set, runs after a Redis error and before the reader
	// resumes, with the position of every followed room: the place to
	// notice that Redis lost what was read (a restart without persistence,
	// a failover that lost writes) and end the rooms' subscriptions, which
	// Unfollow them. When it fails (Redis still down) the reader backs off
	// and calls it again before its next read.
	OnReconnect func(ctx context.Context, rooms []Position) error
}

// Position is a followed room and the last stream ID read for it.
type Position struct {
	Room   string
	Stream string
	Last   string
}

// Reader follows the streams of many rooms of one shard with a single
// blocking XREAD on its own connection. All the streams and its wake
// stream share the shard's hash tag, so on Redis Cluster the XREAD never
// crosses slots.
type Reader struct {
	rdb     redis.UniversalClient
	wakeKey string
	handle  Handler
	opts    ReaderOptions

	mu      sync.Mutex
	rooms   map[string]*follow // by stream key
	changed chan struct{}      // a room was followed while no XREAD was out
	cancel  context.CancelFunc
	done    chan struct{}
	closed  bool
}

type follow struct {
	room string
	last string
	refs int
}

// NewReader starts a reader. rdb should be a client whose connections are
// reserved for blocking reads: each XREAD holds one for up to Block.
func NewReader(rdb redis.UniversalClient, wakeKey string, h Handler, opts ReaderOptions) *Reader {
	if opts.Block <= 0 {
		opts.Block = 5 * time.Second
	}
	if opts.Count <= 0 {
		opts.Count = 256
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reader{
		rdb: rdb, wakeKey: wakeKey, handle: h, opts: opts,
		rooms:   map[string]*follow{},
		changed: make(chan struct{}, 1),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go r.loop(ctx)
	return r
}

// Follow adds a room, reading its stream after the ID from (the caller's
// join point). A room already followed keeps its position: it is behind or
// at from, and the caller filters what it already has. Each Follow needs
// one Unfollow.
func (r *Reader) Follow(ctx context.Context, room, streamKey, from string) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("syncfanout: reader closed")
	}
	f, ok := r.rooms[streamKey]
	if ok {
		f.refs++
		r.mu.Unlock()
		return nil
	}
	r.rooms[streamKey] = &follow{room: room, last: from, refs: 1}
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	// Interrupt a blocked XREAD so the next one names the new stream.
	pipe := r.rdb.Pipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: r.wakeKey, MaxLen: 1, Values: []any{"w", 1}})
	pipe.PExpire(ctx, r.wakeKey, 24*time.Hour)
	_, err := pipe.Exec(ctx)
	return err
}

// Unfollow drops one reference to a room; at zero the room is no longer read.
func (r *Reader) Unfollow(streamKey string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.rooms[streamKey]; ok {
		f.refs--
		if f.refs <= 0 {
			delete(r.rooms, streamKey)
		}
	}
}

// Position returns the last ID read for a followed stream.
func (r *Reader) Position(streamKey string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.rooms[streamKey]
	if !ok {
		return "", false
	}
	return f.last, true
}

// Len returns the number of followed rooms.
func (r *Reader) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rooms)
}

// Close stops the reader and waits for its goroutine. The caller closes
// rdb, which unblocks an XREAD in progress.
func (r *Reader) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	<-r.done
}

func (r *Reader) stopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *Reader) loop(ctx context.Context) {
	defer close(r.done)
	wakeID := "0-0"
	backoff := 50 * time.Millisecond
	recheck := false // an error happened: OnReconnect runs before the next read
	for {
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		n := len(r.rooms)
		streams := make([]string, 0, 2*n+2)
		ids := make([]string, 0, n+1)
		var positions []Position
		for key, f := range r.rooms {
			streams = append(streams, key)
			ids = append(ids, f.last)
			if recheck {
				positions = append(positions, Position{Room: f.room, Stream: key, Last: f.last})
			}
		}
		r.mu.Unlock()
		if recheck && n > 0 && r.opts.OnReconnect != nil {
			if err := r.opts.OnReconnect(ctx, positions); err != nil {
				if ctx.Err() != nil || r.stopping() {
					return
				}
				if r.opts.OnError != nil {
					r.opts.OnError(err)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 2*time.Second)
				continue
			}
			recheck = false
			continue // the hook may have unfollowed rooms
		}
		recheck = false
		if n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-r.changed:
				continue
			}
		}
		streams = append(streams, r.wakeKey)
		ids = append(ids, wakeID)
		res, err := r.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: append(streams, ids...),
			Count:   r.opts.Count,
			Block:   r.opts.Block,
		}).Result()
		if err != nil {
			if errors.Is(err, redis.Nil) {
				continue
			}
			if ctx.Err() != nil || r.stopping() {
				return
			}
			if r.opts.OnError != nil {
				r.opts.OnError(err)
			}
			recheck = true
			// No busy loop while Redis is unreachable; positions are kept,
			// so every room resumes where it stopped.
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		for _, s := range res {
			if s.Stream == r.wakeKey {
				if len(s.Messages) > 0 {
					wakeID = s.Messages[len(s.Messages)-1].ID
				}
				continue
			}
			r.mu.Lock()
			f, ok := r.rooms[s.Stream]
			var room string
			if ok {
				room = f.room
				if len(s.Messages) > 0 {
					f.last = s.Messages[len(s.Messages)-1].ID
				}
			}
			r.mu.Unlock()
			if !ok {
				continue
			}
			for _, m := range s.Messages {
				ev, err := Decode(room, m)
				if err != nil {
					ev = Event{ID: m.ID, Room: room}
				}
				r.handle(room, ev, err)
			}
		}
	}
}
