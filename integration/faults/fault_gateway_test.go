package faults_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// gatewayLog reads a gateway child's "acked|holding <client> <id>" lines
// until done says it has seen enough; it returns the IDs per client.
// seen holds such lines already read (see gatewayReady).
func gatewayLog(ctx context.Context, t *testing.T, gw *child, seen []string, done func(acked, held map[string][]string) bool) (acked, held map[string][]string) {
	t.Helper()
	acked, held = map[string][]string{}, map[string][]string{}
	take := func(line string) {
		f := strings.Fields(line)
		require.Len(t, f, 3, "gateway said %q", line)
		switch f[0] {
		case "acked":
			acked[f[1]] = append(acked[f[1]], f[2])
		case "holding":
			held[f[1]] = append(held[f[1]], f[2])
		default:
			t.Fatalf("gateway said %q", line)
		}
	}
	for _, line := range seen {
		take(line)
	}
	for !done(acked, held) {
		select {
		case line, ok := <-gw.lines:
			require.True(t, ok, "the gateway exited")
			take(line)
		case <-ctx.Done():
			t.Fatalf("gateway: %v (acked %v, held %v)", ctx.Err(), acked, held)
		}
	}
	return acked, held
}

// gatewayReady waits for the gateway's "ready" line and returns the lines
// before it: a restarted gateway may already deliver (and ack) a held
// message while it is still subscribing its other clients.
func gatewayReady(ctx context.Context, t *testing.T, gw *child) []string {
	t.Helper()
	var before []string
	for {
		select {
		case line, ok := <-gw.lines:
			require.True(t, ok, "the gateway exited before it was ready")
			if line == "ready" {
				return before
			}
			before = append(before, line)
		case <-ctx.Done():
			t.Fatalf("gateway: no ready line: %v (before it: %q)", ctx.Err(), before)
		}
	}
}

// keepAlive pings clients now and every period until stop is called: the
// heartbeats of clients whose process restarts, so that they do not time
// out however long the restart takes on a loaded machine. F7 assumes the
// restart comes before ClientTimeout (a restart after it is F1); how fast
// a process starts is not what it tests.
func keepAlive(q *queue.Queue, period time.Duration, clients ...string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			for _, c := range clients {
				_ = q.Ping(ctx, c) // a client already gone fails the test later, on its own terms
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

func ids(v []uint64) []string {
	out := make([]string, len(v))
	for i, id := range v {
		out[i] = fmt.Sprint(id)
	}
	return out
}

// TestGatewayRestarted is F7: a gateway process hosting two clients (a
// Worker beating for them) is killed -9 while both hold the in-flight
// message, and started again with the same client IDs before they time
// out (the test pings for them meanwhile: keepAlive). The restarted gateway subscribes them again and gets the message
// they had not acked, so the room goes on: the member that stayed receives
// everything once, in order, and the gateway's clients receive, in the new
// process, the held message and everything after it, once each.
func TestGatewayRestarted(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		const room = "gateway-room"
		const clientTimeout = 3 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: clientTimeout})
		rec := newRecorder()
		s, err := q.Join(ctx, room)
		require.NoError(t, err)
		m := startMember(t, "stayed", s, rec)
		cluster := b.Name == redistest.NameCluster
		clients := []string{"gw-a", "gw-b"}
		env := []string{childMode + "=gateway", childClients + "=" + strings.Join(clients, ",")}

		gw1 := startChild(t, b.Addrs, cluster, b.Prefix, room, clientTimeout, 3, env...)
		gw1.expect(ctx, t, "ready")
		var sent []uint64
		for i := range 7 {
			id, err := q.Send(ctx, room, payload(0, i, queue.DefaultPriority))
			require.NoError(t, err)
			sent = append(sent, id)
		}
		acked, held := gatewayLog(ctx, t, gw1, nil, func(_, held map[string][]string) bool { return len(held) == len(clients) })
		for _, c := range clients {
			require.Equal(t, ids(sent[:3]), acked[c], "client %s in the first gateway", c)
			require.Equal(t, ids(sent[3:4]), held[c], "client %s in the first gateway", c)
		}
		for i := range 4 {
			require.Equal(t, sent[i], m.next(ctx, t).ID)
		}

		stopPings := keepAlive(q, clientTimeout/5, clients...)
		gw1.kill(t)
		gw2 := startChild(t, b.Addrs, cluster, b.Prefix, room, clientTimeout, -1, env...)
		early := gatewayReady(ctx, t, gw2)
		stopPings() // the restarted gateway beats for them from now on
		restarted := time.Now()
		require.Equal(t, sent[4], m.next(ctx, t).ID)
		resumed := time.Since(restarted)
		for i := 5; i < len(sent); i++ {
			require.Equal(t, sent[i], m.next(ctx, t).ID)
		}
		acked, _ = gatewayLog(ctx, t, gw2, early, func(acked, _ map[string][]string) bool {
			for _, c := range clients {
				if len(acked[c]) < len(sent)-3 {
					return false
				}
			}
			return true
		})
		for _, c := range clients {
			require.Equal(t, ids(sent[3:]), acked[c], "client %s in the restarted gateway", c)
		}
		st, err := q.RoomState(ctx, room)
		require.NoError(t, err)
		require.Len(t, st.Members, 3, "nobody was evicted")
		rp, problems := rec.check([]string{"stayed"}, sent)
		require.Empty(t, problems)
		t.Logf("F7 %s: gateway killed -9 and restarted; its clients got the held message again and the room resumed %v after the restart; %s",
			b.Name, resumed.Round(time.Millisecond), rp)
		m.stop()
	})
}

// TestSubscriberRestarted is F7 for a plain subscriber process: killed -9
// while it holds the in-flight message and started again with the same
// client ID (Join with WithClientID) before it times out (keepAlive), it receives the
// message it had not acked, acks it, and the room goes on.
func TestSubscriberRestarted(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		const room = "restarted-room"
		const clientTimeout = 3 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		q := newQueue(t, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: clientTimeout})
		rec := newRecorder()
		s, err := q.Join(ctx, room)
		require.NoError(t, err)
		m := startMember(t, "stayed", s, rec)
		cluster := b.Name == redistest.NameCluster
		id := "restarted-client"

		sub1 := startChild(t, b.Addrs, cluster, b.Prefix, room, clientTimeout, 2, childClients+"="+id)
		require.Equal(t, id, sub1.expect(ctx, t, "joined"))
		var sent []uint64
		for i := range 5 {
			id, err := q.Send(ctx, room, payload(0, i, queue.DefaultPriority))
			require.NoError(t, err)
			sent = append(sent, id)
		}
		require.Equal(t, fmt.Sprint(sent[0]), sub1.expect(ctx, t, "acked"))
		require.Equal(t, fmt.Sprint(sent[1]), sub1.expect(ctx, t, "acked"))
		require.Equal(t, fmt.Sprint(sent[2]), sub1.expect(ctx, t, "holding"))
		for i := range 3 {
			require.Equal(t, sent[i], m.next(ctx, t).ID)
		}
		stopPings := keepAlive(q, clientTimeout/5, id)
		sub1.kill(t)

		sub2 := startChild(t, b.Addrs, cluster, b.Prefix, room, clientTimeout, 100, childClients+"="+id)
		require.Equal(t, id, sub2.expect(ctx, t, "joined"))
		stopPings() // the restarted subscriber beats from now on
		for _, want := range sent[2:] {
			require.Equal(t, fmt.Sprint(want), sub2.expect(ctx, t, "acked"))
		}
		for _, want := range sent[3:] {
			require.Equal(t, want, m.next(ctx, t).ID)
		}
		rp, problems := rec.check([]string{"stayed"}, sent)
		require.Empty(t, problems)
		t.Logf("F7 %s (subscriber): restarted with its client ID, it got the held message again; %s", b.Name, rp)
		m.stop()
	})
}
