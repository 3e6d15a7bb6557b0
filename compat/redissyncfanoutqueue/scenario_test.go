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
)

// lockstep records a room's deliveries and checks the barrier: a member may
// receive message k+1 only after every member has at least started to ack
// message k (acks are counted before they are sent, so a release caused by
// the last ack can never be seen before its count).
type lockstep struct {
	mu       sync.Mutex
	members  int
	acking   map[int]int      // seq -> members that started to ack it
	got      map[string][]int // client -> seqs received, in order
	oob      map[string]int   // client -> out-of-band messages received
	errs     []string
	progress chan struct{}
}

func newLockstep(members int) *lockstep {
	return &lockstep{members: members, acking: map[int]int{}, got: map[string][]int{}, oob: map[string]int{}, progress: make(chan struct{}, 1000)}
}

func (l *lockstep) received(client string, seq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > 0 && l.acking[seq-1] < l.members {
		l.errs = append(l.errs, fmt.Sprintf("client %s got #%d while only %d of %d members acked #%d", client, seq, l.acking[seq-1], l.members, seq-1))
	}
	l.got[client] = append(l.got[client], seq)
}

func (l *lockstep) acked(seq int) {
	l.mu.Lock()
	l.acking[seq]++
	l.mu.Unlock()
	l.progress <- struct{}{}
}

// wait returns when every one of clients received n queued messages.
func (l *lockstep) wait(t *testing.T, ctx context.Context, clients []string, n int) {
	t.Helper()
	for {
		l.mu.Lock()
		done := true
		for _, c := range clients {
			done = done && len(l.got[c]) >= n
		}
		l.mu.Unlock()
		if done {
			return
		}
		select {
		case <-l.progress:
		case <-ctx.Done():
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("timed out; received %v", l.got)
		}
	}
}

func (l *lockstep) check(t *testing.T, clients []string, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Empty(t, l.errs)
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	for _, c := range clients {
		require.Equal(t, want, l.got[c], "client %s", c)
	}
}

// TestReadmeScenarios runs the original README's publisher, subscriber
// (with its Ping loop and GetMetrics) and worker (acking through an API
// client from HandleMessage) together: every member receives every message
// in order, in lock-step, and out-of-band messages arrive without a token.
func TestReadmeScenarios(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const room, n = "GO-ROOM-TEST", 6

		// Subscriber: two clients, pinged.
		sub := newAPI(t, ctx, apiOptions(t, b, 15*time.Second))
		var ids []string
		for range 2 {
			id, err := sub.CreateClientID(ctx)
			require.NoError(t, err)
			require.NotContains(t, ids, id)
			require.NoError(t, sub.Subscribe(ctx, id, room))
			ids = append(ids, id)
		}
		pinger(t, sub, ids...)

		// Worker: acks through its own API client, as in the README; the
		// second client is slower, so a barrier that did not wait for it
		// would show.
		acker := newAPI(t, ctx, apiOptions(t, b, 15*time.Second))
		ls := newLockstep(len(ids))
		var ackErrs sync.Map
		wo := workerOptions(t, b)
		wo.HandleRoomClientTimeout = func(ctx context.Context, clientId *string, roomId *string) error {
			t.Errorf("unexpected timeout of %s in %s", *clientId, *roomId)
			return nil
		}
		wo.HandleMessage = func(ctx context.Context, clientId *string, msg *rsfq.Message) error {
			if msg.Room != room || msg.MessageContext.Producer != "MSG_PRODUCER_ID" || msg.MessageContext.Timestamp.IsZero() {
				t.Errorf("unexpected message %+v", msg)
			}
			if msg.AckToken == nil {
				if s, _ := (*msg.Data).(string); s != "oob" {
					t.Errorf("message without a token: %v", *msg.Data)
				}
				ls.mu.Lock()
				ls.oob[*clientId]++
				ls.mu.Unlock()
				ls.progress <- struct{}{}
				return nil
			}
			seq := seqOf(t, msg.Data)
			ls.received(*clientId, seq)
			if *clientId == ids[1] {
				time.Sleep(20 * time.Millisecond)
			}
			ls.acked(seq)
			if err := acker.AckMessage(ctx, *clientId, msg.AckToken); err != nil {
				ackErrs.Store(fmt.Sprintf("%s #%d", *clientId, seq), err)
			}
			return nil
		}
		worker, err := rsfq.NewWorkerClient(ctx, wo)
		require.NoError(t, err)
		defer func() { require.NoError(t, worker.Close()) }()

		// Publisher: all at once, so they pile up behind the barrier.
		pub := newAPI(t, ctx, apiOptions(t, b, 15*time.Second))
		for i := range n {
			require.NoError(t, pub.Send(ctx, "MSG_PRODUCER_ID", room, item{Seq: i, Text: "test message content"}, 1))
		}
		metrics, err := sub.GetMetrics(ctx, &rsfq.GetApiMetricsOptions{TopRoomsLimit: 10})
		require.NoError(t, err)
		require.GreaterOrEqual(t, metrics.KnownRoomsCount, int64(1))

		ls.wait(t, ctx, ids, n)
		ls.check(t, ids, n)
		ackErrs.Range(func(k, v any) bool { t.Errorf("ack %v: %v", k, v); return true })

		require.NoError(t, pub.SendOutOfBand(ctx, "MSG_PRODUCER_ID", room, "oob"))
		for {
			ls.mu.Lock()
			done := ls.oob[ids[0]] == 1 && ls.oob[ids[1]] == 1
			ls.mu.Unlock()
			if done {
				break
			}
			select {
			case <-ls.progress:
			case <-ctx.Done():
				t.Fatal("out-of-band message not delivered")
			}
		}

		wm, err := worker.GetMetrics(ctx, &rsfq.GetWorkerMetricsOptions{})
		require.NoError(t, err)
		require.Equal(t, int64(n+1), wm.ReceivedMessagesCount, "each message counted once, not once per member")
		require.Zero(t, wm.InvalidMessagesCount)
		require.LessOrEqual(t, wm.MinLatency, wm.MaxLatency)

		for _, id := range ids {
			require.NoError(t, sub.Unsubscribe(ctx, id, room))
		}
	})
}

// TestPeekAndMetrics: the README's peek program sees the pending messages
// in release order, with the original's priorities mapped onto 0..9 (lower
// first, out-of-range values at the ends, send order within a level), and
// GetMetrics counts the rooms and returns exactly TopRoomsLimit top rooms.
func TestPeekAndMetrics(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := newAPI(t, ctx, apiOptions(t, b, 15*time.Second))

		id, err := c.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Subscribe(ctx, id, "busy"))
		// The first message goes out at once (nothing was in flight); the
		// rest wait behind it.
		require.NoError(t, c.Send(ctx, "p", "busy", "in flight", 5))
		sends := []struct {
			text     string
			priority int
		}{{"a", 3}, {"b", 1}, {"c", 1}, {"d", 12}, {"e", -4}, {"f", 9}}
		for _, s := range sends {
			require.NoError(t, c.Send(ctx, "p", "busy", s.text, s.priority))
		}
		texts := func(msgs []*rsfq.Message) []string {
			var out []string
			for _, m := range msgs {
				require.Nil(t, m.AckToken)
				require.Equal(t, "busy", m.Room)
				require.Equal(t, "p", m.MessageContext.Producer)
				out = append(out, (*m.Data).(string))
			}
			return out
		}
		msgs, err := c.Peek(ctx, "busy", 0, 10)
		require.NoError(t, err)
		require.Equal(t, []string{"e", "b", "c", "a", "d", "f"}, texts(msgs))
		msgs, err = c.Peek(ctx, "busy", 1, 2)
		require.NoError(t, err)
		require.Equal(t, []string{"b", "c"}, texts(msgs))

		other, err := c.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Subscribe(ctx, other, "quiet"))
		for i := range 3 {
			require.NoError(t, c.Send(ctx, "p", "quiet", i, 1))
		}
		// A room with a member and no backlog is known, but not a top room.
		idle, err := c.CreateClientID(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Subscribe(ctx, idle, "idle"))

		m, err := c.GetMetrics(ctx, &rsfq.GetApiMetricsOptions{TopRoomsLimit: 1})
		require.NoError(t, err)
		require.Equal(t, int64(3), m.KnownRoomsCount)
		require.Equal(t, []*rsfq.RoomMetrics{{Room: "busy", PendingMessagesBacklogLength: 6}}, m.TopRooms)
		require.Equal(t, int64(6), m.TopRoomsPendingMessagesBacklogLength)
		m, err = c.GetMetrics(ctx, &rsfq.GetApiMetricsOptions{TopRoomsLimit: 10})
		require.NoError(t, err)
		require.Equal(t, []*rsfq.RoomMetrics{{Room: "busy", PendingMessagesBacklogLength: 6}, {Room: "quiet", PendingMessagesBacklogLength: 2}}, m.TopRooms)
		require.Equal(t, int64(8), m.TopRoomsPendingMessagesBacklogLength)

		st, err := c.GetRoomState(ctx, "busy")
		require.NoError(t, err)
		require.Equal(t, "busy", st.Room)
		require.Equal(t, int64(6), st.PendingMessagesBacklogLength)
		require.Contains(t, st.KnownClients, id)
		require.Empty(t, st.AcknowledgedClients, "the in-flight message is not acked yet")
		st, err = c.GetRoomState(ctx, "idle")
		require.NoError(t, err)
		require.Contains(t, st.AcknowledgedClients, idle, "nothing in flight: nobody is waited on")
	})
}
