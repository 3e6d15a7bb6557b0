package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/redistest"
)

// pipeCounter records, for each pipeline a client sends, how many calls
// of one script (ack.lua unless script is set) it carries.
type pipeCounter struct {
	script *lua.Script
	mu     sync.Mutex
	sizes  []int
}

func (h *pipeCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *pipeCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *pipeCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		want := lua.Ack
		if h.script != nil {
			want = h.script
		}
		n := 0
		for _, c := range cmds {
			if lua.Called(c) == want {
				n++
			}
		}
		if n > 0 {
			h.mu.Lock()
			h.sizes = append(h.sizes, n)
			h.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

func (h *pipeCounter) snapshot() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.sizes...)
}

// roomsOfOneShard returns n room names of one shard of q.
func roomsOfOneShard(q *Queue, n int) []string {
	shard := q.layout.ShardOf("shard-acks-0")
	rooms := []string{"shard-acks-0"}
	for i := 1; len(rooms) < n; i++ {
		if r := fmt.Sprintf("shard-acks-%d", i); q.layout.ShardOf(r) == shard {
			rooms = append(rooms, r)
		}
	}
	return rooms
}

// holdLane makes the lane look busy (an ack in flight), so the next acks
// of its shard wait for pass.
func holdLane(l *ackLane) {
	l.mu.Lock()
	l.busy = true
	l.mu.Unlock()
}

func laneWaiting(l *ackLane) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiting)
}

// TestShardAckBatch: the acks of rooms of one shard that arrive while
// another ack of the shard is in flight go out together, in one round
// trip, when it returns; each keeps its own outcome (a repeated ack of a
// message released meanwhile is stale), and each room releases its next
// message.
func TestShardAckBatch(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		h := &pipeCounter{}
		rdb := b.NewClient(t)
		rdb.AddHook(h)
		q, err := New(ctx, rdb, Options{Prefix: b.Prefix})
		require.NoError(t, err)
		defer q.Close()
		const N = 5
		rooms := roomsOfOneShard(q, N)
		subs := make([]*Subscription, N)
		msgs := make([]*Message, N)
		for i, room := range rooms {
			s, err := q.Join(ctx, room)
			require.NoError(t, err)
			defer s.Close(context.Background())
			subs[i] = s
			for k := range 2 {
				_, err := q.Send(ctx, room, k)
				require.NoError(t, err)
			}
			msgs[i], err = s.Next(ctx)
			require.NoError(t, err)
		}
		l := q.shardAcks.lane(rooms[0])
		holdLane(l)
		errs := make(chan error, N)
		for _, m := range msgs {
			go func() { errs <- m.Ack(ctx) }()
		}
		require.Eventually(t, func() bool { return laneWaiting(l) == N }, 10*time.Second, time.Millisecond)
		// Queued behind the first ack of the same message: by then that
		// message is released, so this one is stale.
		repeat := make(chan error, 1)
		go func() { repeat <- q.Ack(ctx, subs[0].ClientID(), msgs[0].AckToken) }()
		require.Eventually(t, func() bool { return laneWaiting(l) == N+1 }, 10*time.Second, time.Millisecond)
		require.Empty(t, h.snapshot(), "nothing is sent while the lane is busy")

		q.shardAcks.pass(l)
		for range N {
			require.NoError(t, <-errs)
		}
		require.ErrorIs(t, <-repeat, ErrStaleAck)
		require.Equal(t, []int{N + 1}, h.snapshot(), "one round trip for the waiting acks")
		for i, s := range subs {
			m, err := s.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, uint64(2), m.ID, "room %s released its next message", rooms[i])
		}
		require.Equal(t, uint64(N), q.Stats().Acked)
		require.False(t, l.busy, "the lane is idle once the batch returned")
	})
}

// TestShardSendBatch: the sends of rooms of one shard that arrive while
// another send of the shard is in flight go out together, in one round
// trip, when it returns; each gets its own outcome (its ID, or its room's
// refusal), and each released message reaches its room's subscriber. The
// ack lane stays free meanwhile: an ack never waits behind a send.
func TestShardSendBatch(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		h := &pipeCounter{script: lua.Send}
		rdb := b.NewClient(t)
		rdb.AddHook(h)
		q, err := New(ctx, rdb, Options{Prefix: b.Prefix})
		require.NoError(t, err)
		defer q.Close()
		const N = 4
		rooms := roomsOfOneShard(q, N+1)
		subs := make([]*Subscription, N)
		for i := range N {
			s, err := q.Join(ctx, rooms[i])
			require.NoError(t, err)
			defer s.Close(context.Background())
			subs[i] = s
		}
		// A room whose backlog is full: one message in flight, one queued.
		full := rooms[N]
		require.NoError(t, q.SetPolicy(ctx, full, Policy{MaxPending: 1}))
		fs, err := q.Join(ctx, full)
		require.NoError(t, err)
		defer fs.Close(context.Background())
		for _, m := range []string{"in flight", "queued"} {
			_, err = q.Send(ctx, full, m)
			require.NoError(t, err)
		}

		l := q.shardAcks.laneOf(&laneAck{s: &laneSend{args: barrier.SendArgs{Room: rooms[0]}}})
		require.NotSame(t, l, q.shardAcks.lane(rooms[0]), "sends and acks have lanes of their own")
		holdLane(l)
		type res struct {
			id  uint64
			err error
		}
		got := make([]chan res, N)
		for i := range N {
			got[i] = make(chan res, 1)
			go func() {
				id, err := q.Send(ctx, rooms[i], i)
				got[i] <- res{id, err}
			}()
		}
		refused := make(chan error, 1)
		go func() { _, err := q.Send(ctx, full, "refused"); refused <- err }()
		require.Eventually(t, func() bool { return laneWaiting(l) == N+1 }, 10*time.Second, time.Millisecond)
		require.Empty(t, h.snapshot(), "nothing is sent while the lane is busy")

		q.shardAcks.pass(l)
		for i := range N {
			r := <-got[i]
			require.NoError(t, r.err)
			require.Equal(t, uint64(1), r.id, "room %s", rooms[i])
		}
		require.ErrorIs(t, <-refused, ErrRoomFull)
		require.Equal(t, []int{N + 1}, h.snapshot(), "one round trip for the waiting sends")
		for i, s := range subs {
			m, err := s.Next(ctx)
			require.NoError(t, err)
			require.Equal(t, uint64(1), m.ID, "room %s", rooms[i])
			require.NoError(t, m.Ack(ctx))
		}
		require.False(t, l.busy, "the lane is idle once the batch returned")
	})
}

// TestShardAckBatchWithdraw: an ack whose context ends while it waits for
// its shard's lane returns the context's error and changes nothing; the
// lane goes idle when the call in flight returns.
func TestShardAckBatchWithdraw(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q, err := New(ctx, b.NewClient(t), Options{Prefix: b.Prefix})
		require.NoError(t, err)
		defer q.Close()
		rooms := roomsOfOneShard(q, 1)
		s, err := q.Join(ctx, rooms[0])
		require.NoError(t, err)
		defer s.Close(context.Background())
		_, err = q.Send(ctx, rooms[0], "x")
		require.NoError(t, err)
		m, err := s.Next(ctx)
		require.NoError(t, err)

		l := q.shardAcks.lane(rooms[0])
		holdLane(l)
		actx, acancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Ack(actx) }()
		require.Eventually(t, func() bool { return laneWaiting(l) == 1 }, 10*time.Second, time.Millisecond)
		acancel()
		require.True(t, errors.Is(<-done, context.Canceled))
		require.Zero(t, laneWaiting(l))
		st, err := q.RoomState(ctx, rooms[0])
		require.NoError(t, err)
		require.NotNil(t, st.InFlight)
		require.Equal(t, []string{s.ClientID()}, st.Missing, "the withdrawn ack was not recorded")

		q.shardAcks.pass(l)
		require.False(t, l.busy)
		require.NoError(t, m.Ack(ctx), "an idle lane sends at once")
		st, err = q.RoomState(ctx, rooms[0])
		require.NoError(t, err)
		require.Nil(t, st.InFlight)
	})
}

// TestShardAckLanes: on a single server every room shares one lane (the
// largest batches); on a cluster each shard has its own, so a slow node
// holds back only its own shards' acks.
func TestShardAckLanes(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rdb := b.NewClient(t)
		q, err := New(ctx, rdb, Options{Prefix: b.Prefix})
		require.NoError(t, err)
		defer q.Close()
		a, c := "lanes-a", "lanes-b"
		for i := 0; q.layout.ShardOf(a) == q.layout.ShardOf(c); i++ {
			c = fmt.Sprintf("lanes-b%d", i)
		}
		if _, cluster := rdb.(*redis.ClusterClient); cluster {
			require.Len(t, q.shardAcks.lanes, q.opts.NumShards)
			require.NotSame(t, q.shardAcks.lane(a), q.shardAcks.lane(c))
		} else {
			require.Len(t, q.shardAcks.lanes, 1)
			require.Same(t, q.shardAcks.lane(a), q.shardAcks.lane(c))
		}
	})
}
