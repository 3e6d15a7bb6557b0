package queue

import (
	"context"
	"math/rand/v2"
	"time"
)

// housekeeping evicts silent members of any room, in any process's name,
// deletes rooms idle past IdleRoomTTL and trims idle rooms' streams:
// each round asks every shard's deadline index for due rooms, so it costs
// O(shards + due rooms), never O(rooms). It also checks the deployment's
// NumShards (shards.go): one more script call, at most every
// minConfigEvery.
func (q *Queue) housekeeping() {
	defer q.wg.Done()
	every := q.opts.HousekeepingInterval
	lastConfig := time.Now() // New has just checked
	configFailing := false
	t := time.NewTimer(jitter(every))
	defer t.Stop()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
		}
		// every/10 of slack: jitter brings rounds up to 10% early.
		if time.Since(lastConfig) >= configEvery(every)-every/10 {
			err := q.checkConfig(q.ctx)
			lastConfig = time.Now()
			// Once per outage: while Redis is down the reap below says so
			// every round already.
			if err != nil && q.ctx.Err() == nil && !configFailing {
				q.opts.Logger.Warn("syncfanout: housekeeping: checking the deployment's NumShards", "err", err)
			}
			configFailing = err != nil
		}
		q.reapDue(q.ctx)
		t.Reset(jitter(every))
	}
}

// jitter spreads the rounds of many processes by up to ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

func (q *Queue) reapDue(ctx context.Context) {
	for shard := range q.layout.NumShards() {
		rooms, err := q.barrier.Due(ctx, shard, 100)
		if err != nil {
			if ctx.Err() == nil {
				q.warnHousekeeping.warn(q.opts.Logger, "syncfanout: housekeeping", "shard", shard, "err", err)
			}
			return
		}
		for _, room := range rooms {
			_, _, expired, err := q.barrier.Reap(ctx, room)
			if err != nil && ctx.Err() == nil {
				q.warnHousekeeping.warn(q.opts.Logger, "syncfanout: housekeeping", "room", room, "err", err)
			}
			if expired {
				q.stats.ExpiredRooms.Add(1)
			}
		}
	}
}
