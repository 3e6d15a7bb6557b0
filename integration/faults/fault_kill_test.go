package faults_test

import (
	"context"
	"strconv"
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
