package redissyncfanoutqueue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	rsfq "github.com/syncfanout/syncfanout/compat/redissyncfanoutqueue"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestInteropWithQueue: a process on this package (a subscribed client
// whose worker acks for it) and a process on package queue (a Join
// subscription) in one room hold one barrier: neither sees message k+1
// before both acked k. Messages are sent from both sides, and each side
// reads the other's payloads. The worker is told which members are its
// own (WorkerOptions.Serves), as a mixed deployment must.
func TestInteropWithQueue(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const room, n = "shared", 6

		// Process 1: the original's API.
		api := newAPI(t, ctx, apiOptions(t, b, 15*time.Second))
		id, err := api.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, api.Subscribe(ctx, id, room))
		pinger(t, api, id)
		ls := newLockstep(2)
		var ackMu sync.Mutex
		var ackErrs []error
		wo := workerOptions(t, b)
		// The worker follows the whole room; the queue process serves its
		// own member.
		wo.Serves = func(clientId, _ string) bool { return clientId == id }
		wo.HandleMessage = func(ctx context.Context, clientId *string, msg *rsfq.Message) error {
			seq := seqOf(t, msg.Data)
			ls.received(*clientId, seq)
			ls.acked(seq)
			if err := api.AckMessage(ctx, *clientId, msg.AckToken); err != nil {
				ackMu.Lock()
				ackErrs = append(ackErrs, err)
				ackMu.Unlock()
			}
			return nil
		}
		worker, err := rsfq.NewWorkerClient(ctx, wo)
		require.NoError(t, err)
		defer func() { require.NoError(t, worker.Close()) }()

		// Process 2: package queue, on a client of its own.
		q, err := queue.New(ctx, b.NewClient(t), queue.Options{Prefix: b.Prefix + "::test"})
		require.NoError(t, err)
		defer q.Close()
		sub, err := q.Join(ctx, room)
		require.NoError(t, err)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				m, err := sub.Next(ctx)
				if err != nil {
					t.Errorf("queue subscriber: %v", err)
					return
				}
				var v map[string]any
				if err := m.Decode(&v); err != nil {
					t.Errorf("queue subscriber: decode #%d: %v", m.ID, err)
					return
				}
				seq := numberOf(t, v["seq"])
				ls.received(sub.ClientID(), seq)
				time.Sleep(20 * time.Millisecond) // the slower member
				ls.acked(seq)
				if err := m.Ack(ctx); err != nil {
					t.Errorf("queue subscriber: ack #%d: %v", seq, err)
				}
			}
		}()

		// Half the messages from each side, one after the other.
		for i := range n {
			var err error
			if i%2 == 0 {
				err = api.Send(ctx, "compat", room, item{Seq: i, Text: "from compat"}, 5)
			} else {
				_, err = q.Send(ctx, room, map[string]any{"seq": i, "text": "from queue"}, queue.Producer("native"))
			}
			require.NoError(t, err, "send #%d", i)
		}
		clients := []string{id, sub.ClientID()}
		ls.wait(t, ctx, clients, n)
		wg.Wait()
		ls.check(t, clients, n)
		ackMu.Lock()
		require.Empty(t, ackErrs)
		ackMu.Unlock()
		require.NoError(t, sub.Close(ctx))
	})
}

// TestBadInput: refusals are typed errors wrapping the queue sentinels,
// where the original accepted, ignored or panicked.
func TestBadInput(t *testing.T) {
	for name, o := range map[string]*rsfq.ApiOptions{
		"nil":      nil,
		"no redis": {ClientTimeout: time.Second, RedisKeyPrefix: "x"},
		"timeout":  {RedisClient: redistest.Standalone(t).Client, ClientTimeout: time.Millisecond, RedisKeyPrefix: "x"},
		"prefix":   {RedisClient: redistest.Standalone(t).Client, ClientTimeout: time.Second},
	} {
		_, err := rsfq.NewApiClient(context.Background(), o)
		require.ErrorIs(t, err, queue.ErrInvalidOption, name)
	}
	_, err := rsfq.NewWorkerClient(context.Background(), &rsfq.WorkerOptions{RedisClient: redistest.Standalone(t).Client, RedisKeyPrefix: "x"})
	require.ErrorIs(t, err, queue.ErrInvalidOption, "HandleMessage is required")

	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := newAPI(t, ctx, apiOptions(t, b, 15*time.Second))
		id, err := c.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Subscribe(ctx, id, "room"))
		require.NoError(t, c.Send(ctx, "p", "room", "in flight", 0))

		require.ErrorIs(t, c.Send(ctx, "p", "room", nil, 0), queue.ErrEncode)
		require.ErrorIs(t, c.Send(ctx, "p", "room", func() {}, 0), queue.ErrEncode)
		require.ErrorIs(t, c.Send(ctx, "p", "{room}", "x", 0), queue.ErrInvalidRoom)
		require.ErrorIs(t, c.Subscribe(ctx, "", "room"), queue.ErrInvalidClientID)
		require.ErrorIs(t, c.AckMessage(ctx, id, nil), queue.ErrInvalidToken)
		// The original's token was "producer::room": anyone could forge it.
		forged := fmt.Sprintf("%s::%s", "p", "room")
		require.ErrorIs(t, c.AckMessage(ctx, id, &forged), queue.ErrInvalidToken)
		require.ErrorIs(t, c.Ping(ctx, "never-subscribed"), queue.ErrUnknownClient)
		_, err = c.Peek(ctx, "room", -1, 10)
		require.ErrorIs(t, err, queue.ErrInvalidOption)

		st, err := c.GetRoomState(ctx, "room")
		require.NoError(t, err)
		require.Zero(t, st.PendingMessagesBacklogLength, "refused calls changed nothing")
		require.NotContains(t, st.AcknowledgedClients, id, "the forged ack counted for nothing")
		require.NoError(t, c.Close())
		require.NoError(t, c.Close(), "Close is idempotent")
	})
}
