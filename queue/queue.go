package queue

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/oob"
)

// Queue is the entry point: producers, membership, acks, inspection and
// in-process subscribers. It is safe for concurrent use.
type Queue struct {
	rdb     redis.UniversalClient
	opts    Options
	layout  *keys.Layout
	barrier *barrier.Barrier
	oob     *oob.Broadcaster
	engine  *lua.Engine // runs the scripts: functions or EVALSHA

	stats counters

	warnHousekeeping warnLimiter

	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	router *router // in-process subscriptions and their readers

	acks *joinAcks // coalesces the acks of the subscriptions of a room
	// partial holds the rooms whose quorum completes messages without
	// every member (notePartial).
	partial sync.Map
	// shardAcks batches single acks that overlap (shardbatch.go); nil with WaitReplicas,
	// whose WAIT follows each call and has no pipelined form here.
	shardAcks *shardAcks
}

// New validates opts, checks that NumShards agrees with the deployment (it
// is stored on first use) and starts housekeeping. The caller keeps
// ownership of rdb: Close does not close it.
func New(ctx context.Context, rdb redis.UniversalClient, opts Options) (*Queue, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", sferr.ErrInvalidOption)
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	layout, err := keys.New(opts.Prefix, opts.NumShards)
	if err != nil {
		return nil, err
	}
	watchTopology(ctx, rdb)
	if err := checkShards(ctx, rdb, layout); err != nil {
		return nil, err
	}
	warnContextTimeout(rdb, opts.Logger)
	if opts.WaitReplicas > 0 {
		if rdb, err = newWaitClient(rdb, opts.WaitReplicas, opts.WaitTimeout); err != nil {
			return nil, err
		}
	}
	maxLen := opts.StreamMaxLen
	if maxLen < 0 {
		maxLen = 0
	}
	logger := opts.Logger
	engine := lua.NewEngine(unwrapClient(rdb), lua.Mode(opts.ScriptMode), func(err error) {
		logger.Warn("syncfanout: Redis refused the script library (no FUNCTION before Redis 7, or the ACL user lacks FCALL or FUNCTION LOAD): running the scripts with EVALSHA",
			"library", lua.LibraryName, "err", err)
	})
	cfg := lua.RoomConfig{
		Engine:       engine,
		MaxLen:       maxLen,
		MaxAgeMillis: opts.StreamMaxAge.Milliseconds(),
		AckTimeoutMs: opts.AckTimeout.Milliseconds(),
		Hold:         opts.HoldWhenEmpty,
		// Negative: kept forever.
		IdleTTLMillis: opts.IdleRoomTTL.Milliseconds(),
		DefaultPolicy: opts.DefaultPolicy.String(),
	}
	q := &Queue{
		rdb:     rdb,
		opts:    opts,
		layout:  layout,
		engine:  engine,
		barrier: barrier.New(rdb, layout, cfg, opts.ClientTimeout),
		oob:     oob.New(rdb, layout, cfg),
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.router = newRouter(q)
	q.acks = newJoinAcks(q)
	if opts.WaitReplicas == 0 {
		q.shardAcks = newShardAcks(q)
	}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.router.heartbeatLoop(q.ctx, opts.HeartbeatInterval)
	}()
	if !opts.DisableHousekeeping {
		q.wg.Add(1)
		go q.housekeeping()
	}
	return q, nil
}

// Close stops every goroutine of the Queue, ends its subscriptions (their
// members leave their rooms, so nobody waits for them) and closes the
// connections it opened itself. It is idempotent.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	q.router.close()
	q.cancel()
	q.wg.Wait()
	return nil
}

func (q *Queue) check(ctx context.Context) error {
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return sferr.ErrClosed
	}
	return ctx.Err()
}

// Stats returns a snapshot of the Queue's in-process counters.
func (q *Queue) Stats() Stats { return q.stats.snapshot() }
