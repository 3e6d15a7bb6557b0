package faults_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// libraryWorkload uses every feature of the library that sends a distinct
// command to Redis: joins and leaves, sends, out-of-band messages, acks,
// pings, reads, history, replay, tail, metrics, a worker with batched acks
// and a client timeout, housekeeping evictions, and a reader reconnect
// (kill is called to drop the library's connections). A security test
// runs it under a restricted Redis user.
func libraryWorkload(ctx context.Context, t *testing.T, rdb redis.UniversalClient, prefix string, kill func()) {
	t.Helper()
	// Beats every 200ms against a 3s deadline, so that members outlive a
	// loaded machine's stalls and the reconnect after kill; the silent
	// client goes 3s after it joined.
	opts := queue.Options{Prefix: prefix, ClientTimeout: 3 * time.Second, HousekeepingInterval: 50 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond, AckSecret: []byte("workload-secret-0123456789"), Logger: discardLogger()}
	q, err := queue.New(ctx, rdb, opts)
	require.NoError(t, err)
	defer q.Close()
	const room, other = "acl-room", "acl-timeout-room"

	id, err := q.CreateClientID(ctx)
	require.NoError(t, err)
	require.NoError(t, q.Subscribe(ctx, id, room))
	require.NoError(t, q.SubscribeObserver(ctx, id+"-obs", room))
	require.NoError(t, q.Ping(ctx, id))
	require.NoError(t, q.Unsubscribe(ctx, id, room))
	require.NoError(t, q.Unsubscribe(ctx, id+"-obs", room))

	member, err := q.Join(ctx, room)
	require.NoError(t, err)
	observer, err := q.Join(ctx, room, queue.AsObserver())
	require.NoError(t, err)
	timedOut := make(chan string, 1)
	acked := make(chan error, 10)
	var w *queue.Worker
	w, err = q.NewWorker(queue.WorkerOptions{
		AutoHeartbeat: true,
		HandleMessage: func(ctx context.Context, client string, m *queue.Message) error {
			if m.AckToken != "" {
				acked <- w.Ack(ctx, client, m.AckToken)
			}
			return nil
		},
	})
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Subscribe(ctx, "worker-client", room))
	// A client that never beats, evicted by housekeeping.
	silent, err := q.NewWorker(queue.WorkerOptions{
		HandleMessage:       func(context.Context, string, *queue.Message) error { return nil },
		HandleClientTimeout: func(_ context.Context, client, _ string) error { timedOut <- client; return nil },
	})
	require.NoError(t, err)
	defer silent.Close()
	require.NoError(t, silent.Subscribe(ctx, "silent-client", other))
	// A follow-all worker finds the rooms with members itself.
	followed := make(chan struct{}, 1)
	all, err := q.NewWorker(queue.WorkerOptions{FollowAll: true, DiscoveryInterval: 20 * time.Millisecond,
		HandleMessage: func(context.Context, string, *queue.Message) error {
			select {
			case followed <- struct{}{}:
			default:
			}
			return nil
		}})
	require.NoError(t, err)
	defer all.Close()

	for i := range 3 {
		_, err := q.Send(ctx, room, payload(0, i, i), queue.Priority(i), queue.Producer("acl"))
		require.NoError(t, err)
	}
	_, err = q.SendOutOfBand(ctx, room, map[string]int{"oob": 1}, queue.Producer("acl"))
	require.NoError(t, err)
	pending, err := q.Peek(ctx, room, 0, 10)
	require.NoError(t, err)
	require.NotEmpty(t, pending)
	queued, oob := 0, 0
	for queued < 3 || oob < 1 {
		m, err := member.Next(ctx)
		require.NoError(t, err)
		o, err := observer.Next(ctx)
		require.NoError(t, err)
		require.Equal(t, m.ID, o.ID)
		if m.OutOfBand {
			oob++
			continue
		}
		if queued == 1 {
			// Drop every connection of the library: the readers reconnect
			// and check that the room was not reset before reading again.
			kill()
		}
		queued++
		// An ack cut by kill may have counted before the connection broke;
		// go-redis then sends it again, which finds it stale.
		if err := retry(ctx, func() error { return m.Ack(ctx) }); !errors.Is(err, queue.ErrStaleAck) {
			require.NoError(t, err)
		}
		select {
		case err := <-acked:
			if !errors.Is(err, queue.ErrStaleAck) {
				require.NoError(t, err)
			}
		case <-ctx.Done():
			t.Fatal("the worker's client did not ack")
		}
	}
	// The follow-all worker delivers what is released once it found the
	// room: release more until it did.
	for done := false; !done; {
		_, err := q.Send(ctx, room, []byte("for the follow-all worker"))
		require.NoError(t, err)
		m, err := member.Next(ctx)
		require.NoError(t, err)
		require.NoError(t, m.Ack(ctx))
		_, err = observer.Next(ctx)
		require.NoError(t, err)
		select {
		case err := <-acked:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("the worker's client did not ack")
		}
		select {
		case <-followed:
			done = true
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the follow-all worker delivered nothing")
		}
	}
	select {
	case c := <-timedOut:
		require.Equal(t, "silent-client", c)
	case <-ctx.Done():
		t.Fatal("no client timeout")
	}

	// A connection that kill cut may still sit idle in the pool: a caller
	// whose client does not retry (MaxRetries -1, as TestTLS's) gets EOF
	// from it once, and the library passes that on.
	require.NoError(t, retry(ctx, func() error { _, err := q.RoomState(ctx, room); return err }))
	require.NoError(t, retry(ctx, func() error { _, err := q.Metrics(ctx, 5); return err }))
	readHistory(ctx, t, q, room)
	require.NoError(t, member.Close(ctx))
	require.NoError(t, observer.Close(ctx))
}

// readHistory reads a room's stream in the three ways the library offers.
func readHistory(ctx context.Context, t *testing.T, q *queue.Queue, room string) {
	t.Helper()
	n := 0
	for _, err := range q.History(ctx, room, streams.Range{}) {
		require.NoError(t, err)
		n++
	}
	require.NotZero(t, n)
	require.NoError(t, q.ReplayInto(ctx, room, streams.Range{}, func(streams.Event) error { return nil }, streams.ReplayOptions{}))
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, err := range q.Tail(tctx, room, "0-0") {
		require.NoError(t, err)
		break // the first event is enough to have read
	}
}

// readOnlyWorkload is what the CLI's inspection commands do: open a Queue
// on an existing deployment and read a room's state, pending messages,
// history and the deployment's metrics.
// adminWorkload makes every operator's transition under rdb's user.
func adminWorkload(ctx context.Context, t *testing.T, rdb redis.UniversalClient, prefix string) {
	t.Helper()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix, Logger: discardLogger()})
	require.NoError(t, err)
	defer q.Close()
	const room = "acl-admin-room"
	s, err := q.Join(ctx, room)
	require.NoError(t, err)
	other, err := q.Join(ctx, room)
	require.NoError(t, err)
	for i := range 4 {
		_, err := q.Send(ctx, room, []byte{byte(i)})
		require.NoError(t, err)
	}
	_, err = s.Next(ctx)
	require.NoError(t, err)
	adm := q.Admin("ops")
	require.NoError(t, adm.Pause(ctx, room, "acl"))
	require.NoError(t, adm.Resume(ctx, room, "acl"))
	n, err := adm.Purge(ctx, room, queue.PurgeFilter{UpTo: "2"}, "acl")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	missing, err := adm.Release(ctx, room, "acl")
	require.NoError(t, err)
	require.Len(t, missing, 2)
	require.NoError(t, adm.Kick(ctx, room, other.ClientID(), "acl"))
	require.NoError(t, adm.DeleteRoom(ctx, room, "acl"))
	_, err = s.Next(ctx)
	for err == nil {
		_, err = s.Next(ctx)
	}
	require.ErrorIs(t, err, queue.ErrRoomDeleted)
}

func readOnlyWorkload(ctx context.Context, t *testing.T, rdb redis.UniversalClient, prefix, room string) *queue.Queue {
	t.Helper()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix, DisableHousekeeping: true, Logger: discardLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	st, err := q.RoomState(ctx, room)
	require.NoError(t, err)
	require.NotZero(t, st.LastSeq)
	_, err = q.Peek(ctx, room, 0, 10)
	require.NoError(t, err)
	_, err = q.Metrics(ctx, 5)
	require.NoError(t, err)
	readHistory(ctx, t, q, room)
	return q
}

// isNoPerm reports a Redis ACL refusal, of a command or of a command run
// by a script.
func isNoPerm(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "NOPERM") ||
		strings.Contains(err.Error(), "The user executing the script can't run this command"))
}
