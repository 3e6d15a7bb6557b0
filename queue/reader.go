package queue

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/internal/streamreader"
)

// readerLocked returns the shard's reader, starting it on first use; r.mu
// must be held.
func (r *router) readerLocked(shard int) (*streamreader.Reader, error) {
	if r.closed {
		return nil, sferr.ErrClosed
	}
	if r.readerClient == nil {
		r.readerClient, r.ownsClient = dedicatedClient(r.q.rdb, r.q.opts.NumShards+2)
		watchNewClient(r.readerClient)
	}
	rd, ok := r.readers[shard]
	if !ok {
		rd = streamreader.NewReader(r.readerClient, r.dispatch, streamreader.ReaderOptions{
			OnError: func(err error) {
				r.warnRead.warn(r.q.opts.Logger, "syncfanout: stream reader", "shard", shard, "err", err)
				r.readerFailed(shard, err)
			},
			OnReconnect: r.onReconnect(shard),
		})
		r.readers[shard] = rd
	}
	return rd, nil
}

// follow has the shard's reader read room after the ID from, for s, which
// must be registered (add). s's removal undoes it, even when Follow
// returns an error: the reader then picks the room up at its next read.
func (r *router) follow(ctx context.Context, room string, s roomSink, from string) error {
	r.mu.Lock()
	rd, err := r.readerLocked(r.q.layout.ShardOf(room))
	following, registered := r.following[s]
	if err != nil || !registered || following {
		r.mu.Unlock()
		return err
	}
	r.following[s] = true
	r.mu.Unlock()
	return rd.Follow(ctx, room, r.q.layout.Stream(room), from)
}

// dedicatedClient returns a client whose connections are kept for blocking
// reads, so readers never take connections from the caller's pool. Clients
// of other kinds are used as they are.
func dedicatedClient(rdb redis.UniversalClient, size int) (redis.UniversalClient, bool) {
	switch c := unwrapClient(rdb).(type) {
	case *redis.Client:
		o := *c.Options()
		o.PoolSize = size
		o.MinIdleConns = 0
		return redis.NewClient(&o), true
	case *redis.ClusterClient:
		o := *c.Options()
		o.PoolSize = size
		o.MinIdleConns = 0
		return redis.NewClusterClient(&o), true
	}
	return rdb, false
}
