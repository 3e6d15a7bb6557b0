package faults_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// TestSubscriberKilled is F1: a subscriber process is killed (kill -9)
// between a delivery and its ack. The room resumes within ClientTimeout
// plus one housekeeping interval of this process's Queue, the stream
// records exactly one eviction of the dead client, and the members that
// stayed receive every message once, in order, in lock-step.
func TestSubscriberKilled(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		const room = "kill-room"
		const clientTimeout = 2 * time.Second
		const housekeeping = 250 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: clientTimeout, HousekeepingInterval: housekeeping})
		rec := newRecorder()
		s1, err := q.Join(ctx, room)
		require.NoError(t, err)
		s2, err := q.Join(ctx, room)
		require.NoError(t, err)

		// The child acks three messages and holds the fourth.
		ch := startChild(t, b.Addrs, b.Name == redistest.NameCluster, b.Prefix, room, clientTimeout, 3)
		childID := ch.expect(ctx, t, "joined")

		m1 := startMember(t, "s1", s1, rec)
		m2 := startMember(t, "s2", s2, rec)
		var sent []uint64
		for i := range 8 {
			id, err := q.Send(ctx, room, payload(0, i, queue.DefaultPriority))
			require.NoError(t, err)
			sent = append(sent, id)
		}
		for i := range 3 {
			require.Equal(t, strconv.FormatUint(sent[i], 10), ch.expect(ctx, t, "acked"))
		}
		require.Equal(t, strconv.FormatUint(sent[3], 10), ch.expect(ctx, t, "holding"))
		for i := range 4 {
			require.Equal(t, sent[i], m1.next(ctx, t).ID)
			require.Equal(t, sent[i], m2.next(ctx, t).ID)
		}
		// The room now waits for the child's ack of message 4 only.
		st, err := q.RoomState(ctx, room)
		require.NoError(t, err)
		require.NotNil(t, st.InFlight)
		require.Equal(t, sent[3], st.InFlight.Seq)

		ch.kill(t)
		killed := time.Now()
		require.Equal(t, sent[4], m1.next(ctx, t).ID)
		resumed := time.Since(killed)
		require.Equal(t, sent[4], m2.next(ctx, t).ID)
		for i := 5; i < len(sent); i++ {
			require.Equal(t, sent[i], m1.next(ctx, t).ID)
			require.Equal(t, sent[i], m2.next(ctx, t).ID)
		}
		// Generous bound: ClientTimeout, one jittered housekeeping round,
		// and slack for a loaded machine.
		bound := clientTimeout + housekeeping*11/10 + time.Second
		require.LessOrEqual(t, resumed, bound, "the room must resume within ClientTimeout plus one housekeeping interval")

		evictions := 0
		for ev, err := range q.History(ctx, room, streams.Range{}) {
			require.NoError(t, err)
			if ev.Type == streams.Evict {
				require.Equal(t, childID, ev.ClientID)
				require.Equal(t, "timeout", ev.Reason)
				evictions++
			}
		}
		require.Equal(t, 1, evictions, "one evict event for the killed client")

		rp, problems := rec.check([]string{"s1", "s2"}, sent)
		require.Empty(t, problems)
		require.Equal(t, report{Messages: len(sent)}, rp)
		t.Logf("F1 %s: room resumed %v after kill -9 (ClientTimeout %v + housekeeping %v); %s",
			b.Name, resumed.Round(time.Millisecond), clientTimeout, housekeeping, rp)
		m1.stop()
		m2.stop()
	})
}

// TestEndClientKilled is F1 through a gateway: the end client of a worker
// client (a child process that relays the client's pings and acks the
// tokens the gateway hands it) is killed -9 between a delivery and its
// ack. The gateway (this process) gets HandleClientTimeout exactly once,
// the room resumes within ClientTimeout plus one housekeeping interval, and
// the members that stayed receive everything once, in order, in lock-step.
func TestEndClientKilled(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		const room = "endclient-room"
		const clientTimeout = 2 * time.Second
		const housekeeping = 250 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: clientTimeout, HousekeepingInterval: housekeeping})
		rec := newRecorder()
		s1, err := q.Join(ctx, room)
		require.NoError(t, err)
		s2, err := q.Join(ctx, room)
		require.NoError(t, err)
		client, err := q.CreateClientID(ctx)
		require.NoError(t, err)
		end := startChild(t, b.Addrs, b.Name == redistest.NameCluster, b.Prefix, room, clientTimeout, 0,
			childMode+"=endclient", childClients+"="+client)
		end.expect(ctx, t, "ready")

		// The gateway hands the first three deliveries' tokens to the end
		// client and keeps the fourth.
		delivered := make(chan uint64, 10)
		timeouts := make(chan string, 10)
		// Counted here, not by len(delivered): the test drains that channel,
		// and a fourth token sent on would let the room move on.
		var handled atomic.Int32
		w, err := q.NewWorker(queue.WorkerOptions{
			HandleMessage: func(_ context.Context, c string, m *queue.Message) error {
				if handled.Add(1) <= 3 {
					end.send(t, m.AckToken)
				}
				delivered <- m.ID
				return nil
			},
			HandleClientTimeout: func(_ context.Context, c, r string) error {
				timeouts <- c + " " + r
				return nil
			},
		})
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, w.Subscribe(ctx, client, room))
		m1 := startMember(t, "s1", s1, rec)
		m2 := startMember(t, "s2", s2, rec)
		var sent []uint64
		for i := range 6 {
			id, err := q.Send(ctx, room, payload(0, i, queue.DefaultPriority))
			require.NoError(t, err)
			sent = append(sent, id)
		}
		for i := range 4 {
			select {
			case id := <-delivered:
				require.Equal(t, sent[i], id)
			case <-ctx.Done():
				t.Fatal("the gateway's client got nothing")
			}
			if i < 3 {
				end.expect(ctx, t, "acked")
			}
		}
		for i := range 4 {
			require.Equal(t, sent[i], m1.next(ctx, t).ID)
			require.Equal(t, sent[i], m2.next(ctx, t).ID)
		}
		end.kill(t)
		killed := time.Now()
		select {
		case got := <-timeouts:
			require.Equal(t, client+" "+room, got)
		case <-ctx.Done():
			t.Fatal("no HandleClientTimeout")
		}
		told := time.Since(killed)
		require.Equal(t, sent[4], m1.next(ctx, t).ID)
		resumed := time.Since(killed)
		require.Equal(t, sent[4], m2.next(ctx, t).ID)
		require.Equal(t, sent[5], m1.next(ctx, t).ID)
		require.Equal(t, sent[5], m2.next(ctx, t).ID)
		require.LessOrEqual(t, resumed, clientTimeout+housekeeping*11/10+time.Second)

		// Exactly once: one callback, one eviction in the stream, however
		// many processes ran housekeeping.
		require.Equal(t, uint64(1), w.Stats().ClientTimeouts)
		select {
		case got := <-timeouts:
			t.Fatalf("a second HandleClientTimeout: %s", got)
		default:
		}
		evictions := 0
		for ev, err := range q.History(ctx, room, streams.Range{}) {
			require.NoError(t, err)
			if ev.Type == streams.Evict {
				require.Equal(t, client, ev.ClientID)
				evictions++
			}
		}
		require.Equal(t, 1, evictions)
		rp, problems := rec.check([]string{"s1", "s2"}, sent)
		require.Empty(t, problems)
		require.Equal(t, report{Messages: len(sent)}, rp)
		t.Logf("F1 %s (gateway): HandleClientTimeout once, %v after kill -9 of the end client; room resumed after %v; %s",
			b.Name, told.Round(time.Millisecond), resumed.Round(time.Millisecond), rp)
		m1.stop()
		m2.stop()
	})
}
