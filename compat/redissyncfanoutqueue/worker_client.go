package redissyncfanoutqueue

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/queue"
)

// GetWorkerMetricsOptions is empty, as in the original.
type GetWorkerMetricsOptions struct{}

// WorkerMetrics are a worker's counters and its latency over the last
// messages it received (queue.WorkerOptions.LatencyWindow, default 1000).
type WorkerMetrics struct {
	// ReceivedMessagesCount counts messages once each, however many
	// members they were handed to.
	ReceivedMessagesCount int64
	// InvalidMessagesCount counts malformed stream entries, and payloads
	// that do not decode (once per member they were for), skipped without
	// calling HandleMessage.
	InvalidMessagesCount int64

	MinLatency time.Duration
	MaxLatency time.Duration
	AvgLatency time.Duration
}

// RedisQueueWorkerClient is the original's delivering worker.
type RedisQueueWorkerClient interface {
	Close() error
	GetMetrics(ctx context.Context, options *GetWorkerMetricsOptions) (*WorkerMetrics, error)
}

type workerClient struct {
	q         *queue.Queue
	w         *queue.Worker
	rdb       redis.UniversalClient
	ownsRedis bool
	invalid   atomic.Int64 // payloads that do not decode into Message.Data
	once      sync.Once
	closeErr  error
}

// NewWorkerClient starts a worker that delivers every message released in
// any room to HandleMessage, once per member, like the original's: a
// follow-all queue.Worker on a queue.Queue of its own.
func NewWorkerClient(ctx context.Context, options *WorkerOptions) (RedisQueueWorkerClient, error) {
	if err := options.Validate(); err != nil {
		return nil, err
	}
	qo, err := options.queueOptions()
	if err != nil {
		return nil, err
	}
	q, rdb, owns, err := openQueue(ctx, options.RedisClient, options.RedisOptions, qo)
	if err != nil {
		return nil, err
	}
	c := &workerClient{q: q, rdb: rdb, ownsRedis: owns}
	wo := options.Worker
	wo.FollowAll = true
	handle, serves := options.HandleMessage, options.Serves
	wo.HandleMessage = func(ctx context.Context, clientID string, m *queue.Message) error {
		if serves != nil && !serves(clientID, m.Room) {
			return nil
		}
		msg, err := fromDelivered(m)
		if err != nil {
			c.invalid.Add(1)
			return err
		}
		return handle(ctx, &clientID, msg)
	}
	wo.HandleClientTimeout = nil
	if timeout := options.HandleRoomClientTimeout; timeout != nil {
		wo.HandleClientTimeout = func(ctx context.Context, clientID, room string) error {
			if serves != nil && !serves(clientID, room) {
				return nil
			}
			return timeout(ctx, &clientID, &room)
		}
	}
	c.w, err = q.NewWorker(wo)
	if err != nil {
		_ = c.closeQueue()
		return nil, err
	}
	return c, nil
}

// WorkerQueue returns the queue.Queue under a worker made by NewWorkerClient,
// or nil for any other RedisQueueWorkerClient.
func WorkerQueue(c RedisQueueWorkerClient) *queue.Queue {
	if wc, ok := c.(*workerClient); ok {
		return wc.q
	}
	return nil
}

func (c *workerClient) closeQueue() error {
	err := c.q.Close()
	if c.ownsRedis {
		if cerr := c.rdb.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Close stops the worker and waits for its handlers to return (they get a
// cancelled context), then closes what NewWorkerClient opened. Idempotent.
func (c *workerClient) Close() error {
	c.once.Do(func() {
		c.closeErr = c.w.Close()
		if err := c.closeQueue(); c.closeErr == nil {
			c.closeErr = err
		}
	})
	return c.closeErr
}

// GetMetrics reads no Redis; it works after Close too.
func (c *workerClient) GetMetrics(ctx context.Context, options *GetWorkerMetricsOptions) (*WorkerMetrics, error) {
	m := c.w.Stats()
	return &WorkerMetrics{
		ReceivedMessagesCount: int64(m.Received),
		InvalidMessagesCount:  int64(m.Invalid) + c.invalid.Load(),
		MinLatency:            m.LatencyMin,
		MaxLatency:            m.LatencyMax,
		AvgLatency:            m.LatencyAvg,
	}, nil
}
