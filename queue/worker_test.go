package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// Helpers only the worker tests use carry a "wk" prefix; the shared ones
// (setup, setupOn, next...) are in helpers_test.go.

// wkNamedClient returns a client of the backend whose connections carry
// name (CLIENT SETNAME), so that CLIENT LIST on a server shared with other
// tests tells them apart. The Queue's reader connections copy the options,
// name included.
func wkNamedClient(t *testing.T, b *redistest.Backend, name string) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	if b.Name == redistest.NameCluster {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: b.Addrs, ClientName: name})
	} else {
		c = redis.NewClient(&redis.Options{Addr: b.Addrs[0], ClientName: name})
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// wkBlockedReads counts, over every master, the connections named name
// that wait for deliveries: blocked (flags b) in XREAD, or in pub/sub mode
// (flags P), should a reader wait for notifications instead.
func wkBlockedReads(ctx context.Context, b *redistest.Backend, name string) (int, error) {
	n := 0
	err := b.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		list, err := c.ClientList(ctx).Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(list, "\n") {
			f := map[string]string{}
			for _, kv := range strings.Fields(line) {
				k, v, _ := strings.Cut(kv, "=")
				f[k] = v
			}
			blocked := f["cmd"] == "xread" && strings.Contains(f["flags"], "b")
			if f["name"] == name && (blocked || strings.Contains(f["flags"], "P")) {
				n++
			}
		}
		return nil
	})
	return n, err
}

// wkWaitFor polls cond until it holds or ctx ends: for states with no
// event to wait on (a server-side count, a counter of another goroutine).
func wkWaitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

type wkDelivery struct {
	client string
	msg    *queue.Message
}

// wkInbox routes deliveries to one channel per room. The map is written
// before the worker starts delivering and only read afterwards.
type wkInbox map[string]chan wkDelivery

func (in wkInbox) handle(_ context.Context, clientID string, m *queue.Message) error {
	in[m.Room] <- wkDelivery{clientID, m}
	return nil
}

func wkRooms(n int) []string {
	rooms := make([]string, n)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room-%d", i)
	}
	return rooms
}

// wkRecv returns the next delivery, failing the test at ctx's end.
func wkRecv(t *testing.T, ctx context.Context, ch <-chan wkDelivery) wkDelivery {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-ctx.Done():
		t.Fatalf("no delivery: %v", ctx.Err())
		return wkDelivery{}
	}
}

func wkDecodeInt(m *queue.Message) (int, error) {
	var v int
	err := m.Decode(&v)
	return v, err
}

// wkLockStepRoom drives one room whose clients are hosted by w: for each
// of msgs queued messages (payloads 0..msgs-1), it waits until every client
// received it, acks it for all but one client (batched), checks that the
// room still waits for exactly that client, acks the last one, and goes
// on. Then it sends an out-of-band end marker and checks that each client
// got nothing but the marker in between: every message reached every
// client exactly once, in order, and no message was released before the
// previous one was acked by every member.
func wkLockStepRoom(ctx context.Context, q *queue.Queue, w *queue.Worker, room string, clients []string, in <-chan wkDelivery, msgs int, onAcked func()) error {
	next := func() (wkDelivery, error) {
		select {
		case d := <-in:
			return d, nil
		case <-ctx.Done():
			return wkDelivery{}, fmt.Errorf("room %s: %w", room, ctx.Err())
		}
	}
	for k := range msgs {
		got := map[string]*queue.Message{}
		for len(got) < len(clients) {
			d, err := next()
			if err != nil {
				return fmt.Errorf("room %s message %d: got %d of %d deliveries: %w", room, k, len(got), len(clients), err)
			}
			v, err := wkDecodeInt(d.msg)
			if err != nil || d.msg.OutOfBand || v != k {
				return fmt.Errorf("room %s: client %s got payload %d (oob %v, err %v) while message %d was in flight", room, d.client, v, d.msg.OutOfBand, err, k)
			}
			if got[d.client] != nil {
				return fmt.Errorf("room %s: client %s got message %d twice", room, d.client, k)
			}
			if d.msg.AckToken == "" {
				return fmt.Errorf("room %s: message %d without an ack token", room, k)
			}
			got[d.client] = d.msg
		}
		last := clients[len(clients)-1]
		errs := make(chan error, len(clients))
		for _, c := range clients[:len(clients)-1] {
			go func() { errs <- w.Ack(ctx, c, got[c].AckToken) }()
		}
		for range len(clients) - 1 {
			if err := <-errs; err != nil {
				return fmt.Errorf("room %s: ack of message %d: %w", room, k, err)
			}
		}
		st, err := q.RoomState(ctx, room)
		if err != nil {
			return err
		}
		if st.InFlight == nil || st.InFlight.Seq != got[last].ID || !slices.Equal(st.Missing, []string{last}) {
			return fmt.Errorf("room %s: after all acks but one, in flight %+v missing %v; want message %d waiting for %s", room, st.InFlight, st.Missing, got[last].ID, last)
		}
		select {
		case d := <-in:
			return fmt.Errorf("room %s: client %s got message %d before the last ack of message %d", room, d.client, d.msg.ID, got[last].ID)
		default:
		}
		if err := got[last].Ack(ctx); err != nil {
			return fmt.Errorf("room %s: last ack of message %d: %w", room, k, err)
		}
		if onAcked != nil {
			onAcked()
		}
	}
	if _, err := q.SendOutOfBand(ctx, room, -1); err != nil {
		return err
	}
	ended := map[string]bool{}
	for len(ended) < len(clients) {
		d, err := next()
		if err != nil {
			return fmt.Errorf("room %s: waiting for the end marker: %w", room, err)
		}
		v, err := wkDecodeInt(d.msg)
		if err != nil || !d.msg.OutOfBand || v != -1 || ended[d.client] {
			return fmt.Errorf("room %s: client %s got an extra delivery %d (oob %v) after the last message", room, d.client, v, d.msg.OutOfBand)
		}
		ended[d.client] = true
	}
	return nil
}

// TestWorkerManyClientsLockStep is the acceptance test of the worker: one
// worker hosting 1,000 clients in 200 rooms delivers every message to
// every client exactly once, in lock-step, through one blocked connection
// per shard.
func TestWorkerManyClientsLockStep(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		const numRooms, perRoom, msgs, shards = 200, 5, 3, 16
		rdb := wkNamedClient(t, b, b.Prefix)
		q := setupOn(t, rdb, b.Prefix, queue.Options{NumShards: shards})
		rooms := wkRooms(numRooms)
		in := wkInbox{}
		for _, r := range rooms {
			in[r] = make(chan wkDelivery, 4*perRoom*(msgs+1))
		}
		w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: in.handle, AutoHeartbeat: true})
		require.NoError(t, err)
		defer w.Close()

		clients := map[string][]string{}
		var mu sync.Mutex
		sem := make(chan struct{}, 32)
		var wg sync.WaitGroup
		for _, r := range rooms {
			for range perRoom {
				id, err := q.CreateClientID(ctx)
				require.NoError(t, err)
				clients[r] = append(clients[r], id)
			}
			for _, id := range clients[r] {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					if err := w.Subscribe(ctx, id, r); err != nil {
						mu.Lock()
						defer mu.Unlock()
						t.Errorf("subscribe %s to %s: %v", id, r, err)
					}
				})
			}
		}
		wg.Wait()
		require.False(t, t.Failed())
		require.Equal(t, numRooms, w.Stats().Rooms)
		require.Equal(t, numRooms*perRoom, w.Stats().Clients)

		layout, err := keys.New(b.Prefix, shards)
		require.NoError(t, err)
		used := map[int]bool{}
		for _, r := range rooms {
			used[layout.ShardOf(r)] = true
		}
		// Every shard's reader ends up blocked, and there is never more
		// than one per shard.
		require.NoError(t, wkWaitFor(ctx, "one blocked reader per shard", func() (bool, error) {
			n, err := wkBlockedReads(ctx, b, b.Prefix)
			if n > len(used) {
				return false, fmt.Errorf("%d connections blocked in XREAD for %d shards", n, len(used))
			}
			return n == len(used), err
		}))

		for _, r := range rooms {
			for k := range msgs {
				_, err := q.Send(ctx, r, k)
				require.NoError(t, err)
			}
		}
		errs := make(chan error, numRooms)
		for _, r := range rooms {
			go func() { errs <- wkLockStepRoom(ctx, q, w, r, clients[r], in[r], msgs, nil) }()
		}
		for range rooms {
			require.NoError(t, <-errs)
		}
		n, err := wkBlockedReads(ctx, b, b.Prefix)
		require.NoError(t, err)
		require.LessOrEqual(t, n, len(used), "blocked XREAD connections after the run")

		m := w.Stats()
		require.Equal(t, uint64(numRooms*(msgs+1)), m.Received)
		require.Equal(t, uint64(numRooms*perRoom*(msgs+1)), m.Delivered)
		require.Equal(t, int64(numRooms*perRoom*msgs), m.Acks)
		require.Less(t, m.AckCalls, m.Acks, "acks of one room and message are batched")
		require.Zero(t, m.HandlerErrors+m.HandlerPanics+m.Invalid)
		require.Equal(t, min(int(m.Received), 1000), m.LatencySamples)
		require.True(t, m.LatencyMin <= m.LatencyAvg && m.LatencyAvg <= m.LatencyMax, "%+v", m)
		t.Logf("%s: %d deliveries, %d acks in %d calls, %d blocked readers, latency min/avg/max %v/%v/%v",
			b.Name, m.Delivered, m.Acks, m.AckCalls, n, m.LatencyMin, m.LatencyAvg, m.LatencyMax)
	})
}

// TestWorkerReaderConnectionsPerShard: 10,000 local subscriptions over 16
// shards hold at most 16 blocked connections (CLIENT LIST on every master).
func TestWorkerReaderConnectionsPerShard(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		// 20,000 round trips to subscribe: ~20 s per backend under -race on
		// two cores, several times that while other test binaries run.
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		const numClients, numRooms, shards = 10000, 1000, 16
		rdb := wkNamedClient(t, b, b.Prefix)
		// Liveness is not what this test is about, and subscribing 10,000
		// clients takes a while on a loaded machine.
		q := setupOn(t, rdb, b.Prefix, queue.Options{NumShards: shards, ClientTimeout: time.Minute})
		w, err := q.NewWorker(queue.WorkerOptions{AutoHeartbeat: true, HandleMessage: func(context.Context, string, *queue.Message) error { return nil }})
		require.NoError(t, err)
		defer w.Close()
		rooms := wkRooms(numRooms)
		begin := time.Now()
		defer func() { t.Logf("%s: %v", b.Name, time.Since(begin)) }()
		work := make(chan int)
		var failed atomic.Int64
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for i := range work {
					if err := w.Subscribe(ctx, fmt.Sprintf("c%d", i), rooms[i%numRooms]); err != nil {
						if failed.Add(1) == 1 {
							t.Errorf("subscribe: %v", err)
						}
					}
				}
			})
		}
		for i := range numClients {
			work <- i
		}
		close(work)
		wg.Wait()
		require.Zero(t, failed.Load())
		require.Equal(t, numClients, w.Stats().Clients)
		var n int
		require.NoError(t, wkWaitFor(ctx, "the readers to block", func() (bool, error) {
			var err error
			n, err = wkBlockedReads(ctx, b, b.Prefix)
			if n > shards {
				return false, fmt.Errorf("%d connections blocked in XREAD for %d clients over %d shards", n, numClients, shards)
			}
			return n == shards, err
		}))
		t.Logf("%s: %d clients in %d rooms: %d blocked XREAD connections", b.Name, numClients, numRooms, n)
	})
}

// wkAckCounter is a go-redis hook that counts ack_batch script calls and
// the clients each carried, and can hold the first call until released.
type wkAckCounter struct {
	mu      sync.Mutex
	sizes   []int
	held    bool
	hold    chan struct{} // nil: no holding
	holding chan struct{} // closed when the first call is held
}

func (h *wkAckCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *wkAckCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *wkAckCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) > 3 && lua.Called(cmd) == lua.AckBatch {
			// evalsha sha (or fcall function) numkeys keys... room maxlen maxage acktimeout hold epoch seq clients...
			nkeys, _ := args[2].(int)
			h.mu.Lock()
			first := !h.held
			h.held = true
			h.mu.Unlock()
			if first && h.hold != nil {
				close(h.holding)
				<-h.hold
			}
			err := next(ctx, cmd)
			// An EVALSHA refused with NOSCRIPT is followed by an EVAL of the
			// same call: one round trip more, but the same call.
			if err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
				h.mu.Lock()
				// ARGV: 7 fixed, then the clients and their incarnations.
				h.sizes = append(h.sizes, (len(args)-3-nkeys-7)/2)
				h.mu.Unlock()
			}
			return err
		}
		return next(ctx, cmd)
	}
}

func (h *wkAckCounter) calls() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sizes)
}

// TestWorkerAckBatching: a lone ack goes out at once, and the acks of a
// hundred subscribers of a room that arrive while a call is out go to
// Redis in one script call.
func TestWorkerAckBatching(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const n = 100
		hook := &wkAckCounter{hold: make(chan struct{}), holding: make(chan struct{})}
		rdb := b.NewClient(t)
		rdb.AddHook(hook)
		q := setupOn(t, rdb, b.Prefix, queue.Options{})
		in := wkInbox{"room": make(chan wkDelivery, 4*n)}
		// No coalescing (TestWorkerAckCoalescing): acks go out as they come.
		w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: in.handle, AutoHeartbeat: true, AckCoalesce: -1})
		require.NoError(t, err)
		defer w.Close()
		clients := make([]string, n)
		for i := range clients {
			clients[i] = fmt.Sprintf("client-%03d", i)
			require.NoError(t, w.Subscribe(ctx, clients[i], "room"))
		}
		for k := range 2 {
			_, err := q.Send(ctx, "room", k)
			require.NoError(t, err)
		}
		tokens := map[string]string{}
		for len(tokens) < n {
			select {
			case d := <-in["room"]:
				v, err := wkDecodeInt(d.msg)
				require.NoError(t, err)
				require.Equal(t, 0, v)
				tokens[d.client] = d.msg.AckToken
			case <-ctx.Done():
				t.Fatalf("got %d of %d deliveries", len(tokens), n)
			}
		}

		errs := make(chan error, n)
		go func() { errs <- w.Ack(ctx, clients[0], tokens[clients[0]]) }()
		select {
		case <-hook.holding: // the lone ack went out without waiting for company
		case <-ctx.Done():
			t.Fatal("the first ack was not sent")
		}
		for _, c := range clients[1:] {
			go func() { errs <- w.Ack(ctx, c, tokens[c]) }()
		}
		require.NoError(t, wkWaitFor(ctx, "the other acks to queue up", func() (bool, error) {
			return w.Stats().AcksWaiting == n-1, nil
		}))
		close(hook.hold)
		for range n {
			require.NoError(t, <-errs)
		}
		require.Equal(t, []int{1, n - 1}, hook.calls(), "clients per ack_batch call")
		m := w.Stats()
		require.Equal(t, int64(n), m.Acks)
		require.Equal(t, int64(2), m.AckCalls)
		require.Equal(t, uint64(1), q.Stats().BarrierWait.Count, "the batch that completed message 0 observed its barrier wait")

		// The batch released the next message; acking it concurrently takes
		// far fewer calls than clients.
		var round2 sync.WaitGroup
		for range n {
			select {
			case d := <-in["room"]:
				v, err := wkDecodeInt(d.msg)
				require.NoError(t, err)
				require.Equal(t, 1, v)
				round2.Go(func() { errs <- w.Ack(ctx, d.client, d.msg.AckToken) })
			case <-ctx.Done():
				t.Fatal("message 1 was not delivered to every client")
			}
		}
		round2.Wait()
		for range n {
			require.NoError(t, <-errs)
		}
		st, err := q.RoomState(ctx, "room")
		require.NoError(t, err)
		require.Nil(t, st.InFlight, "every ack of message 1 counted")
		calls := hook.calls()[2:]
		t.Logf("%s: %d acks sent as they arrived took %d calls: %v", b.Name, n, len(calls), calls)
		require.Less(t, len(calls), n/2)

		// Refused acks are reported one by one, and change nothing.
		require.ErrorIs(t, w.Ack(ctx, clients[0], tokens[clients[0]]), queue.ErrStaleAck)
		require.ErrorIs(t, w.Ack(ctx, clients[1], tokens[clients[0]]), queue.ErrInvalidToken)
		require.ErrorIs(t, w.Ack(ctx, clients[0], "garbage"), queue.ErrInvalidToken)
	})
}

// TestWorkerAckCoalescing: the acks of the worker's clients handed the same
// message wait for each other (AckCoalesce), so a hundred of them go in one
// call even when the first arrives alone; a client that does not ack holds
// the others back at most AckCoalesce.
func TestWorkerAckCoalescing(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const n = 100
		hook := &wkAckCounter{}
		rdb := b.NewClient(t)
		rdb.AddHook(hook)
		q := setupOn(t, rdb, b.Prefix, queue.Options{})
		const straggler = "client-000"
		release := make(chan struct{})
		// The handlers of a message ack once all of them run: on a loaded
		// machine, starting a hundred goroutines alone can take longer than
		// AckCoalesce (79 of 100 made one call once at load 16), and the
		// test is about the acks waiting for each other, not about the
		// scheduler.
		var arrived [4]atomic.Int32
		var allIn [4]chan struct{}
		for i := range allIn {
			allIn[i] = make(chan struct{})
		}
		w, err := q.NewWorker(queue.WorkerOptions{
			AutoHeartbeat: true,
			AckCoalesce:   100 * time.Millisecond,
			HandleMessage: func(ctx context.Context, clientID string, m *queue.Message) error {
				if m.ID == 2 && clientID == straggler {
					select {
					case <-release:
					case <-ctx.Done():
						return ctx.Err()
					}
					return m.Ack(ctx)
				}
				want := int32(n)
				if m.ID == 2 {
					want = n - 1
				}
				if arrived[m.ID].Add(1) == want {
					close(allIn[m.ID])
				}
				select {
				case <-allIn[m.ID]:
				case <-ctx.Done():
					return ctx.Err()
				}
				return m.Ack(ctx)
			},
		})
		require.NoError(t, err)
		defer w.Close()
		for i := range n {
			require.NoError(t, w.Subscribe(ctx, fmt.Sprintf("client-%03d", i), "room"))
		}
		for k := range 3 {
			_, err := q.Send(ctx, "room", k)
			require.NoError(t, err)
		}
		// Message 1: every client acks from its handler at once; the first
		// ack waits for the 99 others and they go together.
		require.NoError(t, wkWaitFor(ctx, "message 1 acked by all", func() (bool, error) {
			return len(hook.calls()) >= 1, nil
		}))
		require.Equal(t, []int{n}, hook.calls(), "clients per ack_batch call for message 1")

		// Message 2: the straggler does not ack; the others go after
		// AckCoalesce, then the straggler's ack alone releases message 3.
		require.NoError(t, wkWaitFor(ctx, "message 2 acked by all but one", func() (bool, error) {
			return len(hook.calls()) >= 2, nil
		}))
		st, err := q.RoomState(ctx, "room")
		require.NoError(t, err)
		require.NotNil(t, st.InFlight)
		require.EqualValues(t, 2, st.InFlight.Seq, "released before the straggler acked")
		require.Equal(t, []string{straggler}, st.Missing)
		close(release)
		require.NoError(t, wkWaitFor(ctx, "message 3 acked by all", func() (bool, error) {
			return len(hook.calls()) >= 4, nil
		}))
		require.Equal(t, []int{n, n - 1, 1, n}, hook.calls(), "clients per ack_batch call")
		m := w.Stats()
		require.Equal(t, int64(3*n), m.Acks)
		require.Equal(t, int64(4), m.AckCalls)
	})
}

// TestWorkerHandlerFailuresContained: handler errors and panics are counted
// and change nothing for the other clients or the next messages.
func TestWorkerHandlerFailuresContained(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		in := wkInbox{"room": make(chan wkDelivery, 64)}
		w, err := q.NewWorker(queue.WorkerOptions{
			AutoHeartbeat: true,
			HandleMessage: func(ctx context.Context, clientID string, m *queue.Message) error {
				_ = in.handle(ctx, clientID, m)
				switch clientID {
				case "fails":
					return errors.New("handler failed")
				case "panics":
					panic("handler panicked")
				}
				return nil
			},
		})
		require.NoError(t, err)
		defer w.Close()
		clients := []string{"fails", "panics", "fine"}
		for _, c := range clients {
			require.NoError(t, w.Subscribe(ctx, c, "room"))
		}
		const msgs = 3
		for k := range msgs {
			_, err := q.Send(ctx, "room", k)
			require.NoError(t, err)
		}
		require.NoError(t, wkLockStepRoom(ctx, q, w, "room", clients, in["room"], msgs, nil))
		// The handlers record a delivery before they fail, so the last
		// failures may still be on their way into the counters.
		want := uint64(msgs + 1)
		require.NoError(t, wkWaitFor(ctx, "the handler failures to be counted", func() (bool, error) {
			m := w.Stats()
			return m.HandlerErrors >= want && m.HandlerPanics >= want, nil
		}))
		m := w.Stats()
		require.Equal(t, uint64(msgs+1), m.HandlerErrors)
		require.Equal(t, uint64(msgs+1), m.HandlerPanics)
		require.Equal(t, uint64(len(clients)*(msgs+1)), m.Delivered)
	})
}

// TestWorkerClientTimeout: a hosted client that stops pinging is evicted
// and HandleClientTimeout is told exactly once; the others carry on.
func TestWorkerClientTimeout(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Deadlines are a minute away, so a loaded machine stalling the
		// pings evicts nobody unplanned; silent gets a 1s deadline from one
		// Ping through short.
		q := setupOn(t, b.Client, b.Prefix, queue.Options{ClientTimeout: time.Minute, HousekeepingInterval: 100 * time.Millisecond})
		short := setupOn(t, b.NewClient(t), b.Prefix, queue.Options{ClientTimeout: time.Second, HousekeepingInterval: 100 * time.Millisecond})
		in := wkInbox{"room": make(chan wkDelivery, 64)}
		timeouts := make(chan [2]string, 8)
		w, err := q.NewWorker(queue.WorkerOptions{
			HandleMessage: in.handle,
			HandleClientTimeout: func(ctx context.Context, clientID, room string) error {
				select {
				case timeouts <- [2]string{clientID, room}:
				case <-ctx.Done(): // a full channel must not hang Close
				}
				return nil
			},
		})
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, w.Subscribe(ctx, "alive", "room"))
		require.NoError(t, w.Subscribe(ctx, "silent", "room"))
		require.NoError(t, short.Ping(ctx, "silent"))
		// The end client "alive" pings through the gateway; "silent" is gone.
		pingCtx, stopPing := context.WithCancel(ctx)
		defer stopPing()
		go func() {
			tk := time.NewTicker(200 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-pingCtx.Done():
					return
				case <-tk.C:
					_ = q.Ping(pingCtx, "alive")
				}
			}
		}()
		select {
		case got := <-timeouts:
			require.Equal(t, [2]string{"silent", "room"}, got)
		case <-ctx.Done():
			t.Fatal("HandleClientTimeout was not called")
		}
		// A message released after the eviction reaches the live client
		// only and needs only its ack; no second timeout call came before it.
		_, err = q.Send(ctx, "room", 7)
		require.NoError(t, err)
		select {
		case d := <-in["room"]:
			require.Equal(t, "alive", d.client)
			require.NoError(t, d.msg.Ack(ctx))
		case <-ctx.Done():
			t.Fatal("no delivery after the eviction")
		}
		st, err := q.RoomState(ctx, "room")
		require.NoError(t, err)
		require.Nil(t, st.InFlight)
		require.Len(t, timeouts, 0)
		require.Len(t, in["room"], 0)
		require.Equal(t, uint64(1), w.Stats().ClientTimeouts)
		require.Equal(t, 1, w.Stats().Clients)
	})
}

// TestWorkerAckTimeout: a hosted client that receives but never acks is
// evicted by the ack timeout, reported once, and the room moves on.
func TestWorkerAckTimeout(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// "acks" must ack within AckTimeout of each delivery, through the
		// worker, its handler and this goroutine: 2s leaves room for a
		// loaded machine; "stuck" goes 2s after message 0.
		q := setupOn(t, b.Client, b.Prefix, queue.Options{AckTimeout: 2 * time.Second, HousekeepingInterval: 50 * time.Millisecond})
		in := wkInbox{"room": make(chan wkDelivery, 64)}
		timeouts := make(chan [2]string, 8)
		w, err := q.NewWorker(queue.WorkerOptions{
			AutoHeartbeat: true,
			HandleMessage: in.handle,
			HandleClientTimeout: func(_ context.Context, clientID, room string) error {
				timeouts <- [2]string{clientID, room}
				return nil
			},
		})
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, w.Subscribe(ctx, "acks", "room"))
		require.NoError(t, w.Subscribe(ctx, "stuck", "room"))
		for k := range 2 {
			_, err := q.Send(ctx, "room", k)
			require.NoError(t, err)
		}
		for range 2 {
			d := wkRecv(t, ctx, in["room"])
			if d.client == "acks" {
				require.NoError(t, d.msg.Ack(ctx))
			}
		}
		select {
		case got := <-timeouts:
			require.Equal(t, [2]string{"stuck", "room"}, got)
		case <-ctx.Done():
			t.Fatal("HandleClientTimeout was not called")
		}
		d := wkRecv(t, ctx, in["room"])
		require.Equal(t, "acks", d.client)
		v, err := wkDecodeInt(d.msg)
		require.NoError(t, err)
		require.Equal(t, 1, v, "the room moved on after the eviction")
		require.Len(t, timeouts, 0)
	})
}

// TestWorkerAutoHeartbeat: with AutoHeartbeat the worker keeps its clients
// alive; a client of another worker without it is evicted meanwhile.
func TestWorkerAutoHeartbeat(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Beats every 100ms against a 3s deadline: a loaded machine can
		// stall the beating worker for a second or two without evicting
		// "kept", while "dropped", which nobody beats for, goes after 3s.
		q := setupOn(t, b.Client, b.Prefix, queue.Options{ClientTimeout: 3 * time.Second, HeartbeatInterval: 100 * time.Millisecond, HousekeepingInterval: 100 * time.Millisecond})
		noop := func(context.Context, string, *queue.Message) error { return nil }
		timeouts := make(chan string, 8)
		onTimeout := func(_ context.Context, clientID, _ string) error { timeouts <- clientID; return nil }
		beating, err := q.NewWorker(queue.WorkerOptions{HandleMessage: noop, HandleClientTimeout: onTimeout, AutoHeartbeat: true})
		require.NoError(t, err)
		defer beating.Close()
		relaying, err := q.NewWorker(queue.WorkerOptions{HandleMessage: noop, HandleClientTimeout: onTimeout})
		require.NoError(t, err)
		defer relaying.Close()
		require.NoError(t, beating.Subscribe(ctx, "kept", "room"))
		require.NoError(t, relaying.Subscribe(ctx, "dropped", "room"))
		select {
		case c := <-timeouts:
			require.Equal(t, "dropped", c)
		case <-ctx.Done():
			t.Fatal("the client without heartbeats was not evicted")
		}
		// "kept" joined first and has outlived a ClientTimeout.
		st, err := q.RoomState(ctx, "room")
		require.NoError(t, err)
		require.Len(t, st.Members, 1)
		require.Equal(t, "kept", st.Members[0].ClientID)
		require.Len(t, timeouts, 0)
	})
}

// TestWorkerRoomsComeAndGo: rooms joining and leaving a shard's reader
// while another room of the shard streams lose and repeat nothing.
func TestWorkerRoomsComeAndGo(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		const shards, n = 4, 300
		q := setupOn(t, b.Client, b.Prefix, queue.Options{NumShards: shards})
		layout, err := keys.New(b.Prefix, shards)
		require.NoError(t, err)
		var sameShard []string
		for i := 0; len(sameShard) < 5; i++ {
			if r := fmt.Sprintf("r%d", i); layout.ShardOf(r) == layout.ShardOf("stream") {
				sameShard = append(sameShard, r)
			}
		}
		got := make(chan int, n+1)
		w, err := q.NewWorker(queue.WorkerOptions{
			AutoHeartbeat: true,
			HandleMessage: func(_ context.Context, clientID string, m *queue.Message) error {
				if clientID == "reader" {
					v, _ := wkDecodeInt(m)
					got <- v
				}
				return nil
			},
		})
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, w.Subscribe(ctx, "reader", "stream"))

		// Between every 30 messages, a round of the other rooms of the
		// shard joining and leaving the reader.
		churnCtx, stopChurn := context.WithCancel(ctx)
		rounds := make(chan struct{})
		churned := make(chan error, 1)
		go func() {
			for churnCtx.Err() == nil {
				for i, r := range sameShard {
					c := fmt.Sprintf("churn-%d", i)
					if err := w.Subscribe(churnCtx, c, r); err != nil {
						churned <- err
						return
					}
					if err := w.Unsubscribe(churnCtx, c, r); err != nil && churnCtx.Err() == nil {
						churned <- err
						return
					}
				}
				select {
				case rounds <- struct{}{}:
				case <-churnCtx.Done():
				}
			}
			churned <- nil
		}()
		for i := range n {
			if i%30 == 0 {
				select {
				case <-rounds:
				case err := <-churned:
					t.Fatalf("churn: %v", err)
				case <-ctx.Done():
					t.Fatal("no churn round")
				}
			}
			_, err := q.SendOutOfBand(ctx, "stream", i)
			require.NoError(t, err)
		}
		for want := range n {
			select {
			case v := <-got:
				require.Equal(t, want, v, "entries of the streaming room, in order, once")
			case <-ctx.Done():
				t.Fatalf("got %d of %d messages", want, n)
			}
		}
		stopChurn()
		if err := <-churned; err != nil && !errors.Is(err, context.Canceled) {
			require.NoError(t, err)
		}
		_, err = q.SendOutOfBand(ctx, "stream", n)
		require.NoError(t, err)
		select {
		case v := <-got:
			require.Equal(t, n, v, "nothing repeated before the last message")
		case <-ctx.Done():
			t.Fatal("the last message was not delivered")
		}
	})
}

// TestWorkerReaderResumesAfterCut: after the connections to Redis are cut,
// the shared reader resumes every room from its last ID: nothing lost,
// nothing repeated. A fault test, on a private server behind a proxy.
func TestWorkerReaderResumesAfterCut(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := redistest.NewServer(t, redistest.ServerOptions{})
	proxy := redistest.NewProxy(t, srv.Addr())
	viaProxy := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = viaProxy.Close() })
	const prefix, n = "cut", 200
	gateway := setupOn(t, viaProxy, prefix, queue.Options{})
	producer := setupOn(t, srv.Client(t), prefix, queue.Options{})
	rooms := []string{"a", "b", "c"}
	in := wkInbox{}
	for _, r := range rooms {
		in[r] = make(chan wkDelivery, 2*n)
	}
	w, err := gateway.NewWorker(queue.WorkerOptions{HandleMessage: in.handle})
	require.NoError(t, err)
	defer w.Close()
	for _, r := range rooms {
		require.NoError(t, w.Subscribe(ctx, "client-"+r, r))
	}
	for i := range n {
		if i == n/3 {
			proxy.Cut()
		}
		if i == 2*n/3 {
			proxy.Heal()
		}
		for _, r := range rooms {
			_, err := producer.SendOutOfBand(ctx, r, i)
			require.NoError(t, err)
		}
	}
	for _, r := range rooms {
		for want := range n {
			select {
			case d := <-in[r]:
				v, err := wkDecodeInt(d.msg)
				require.NoError(t, err)
				require.Equal(t, want, v, "room %s", r)
			case <-ctx.Done():
				t.Fatalf("room %s: got %d of %d messages", r, want, n)
			}
		}
	}
	_, err = producer.SendOutOfBand(ctx, "a", n)
	require.NoError(t, err)
	d := wkRecv(t, ctx, in["a"])
	v, err := wkDecodeInt(d.msg)
	require.NoError(t, err)
	require.Equal(t, n, v, "nothing repeated")
	for _, r := range rooms[1:] {
		require.Len(t, in[r], 0, "nothing repeated in room %s", r)
	}
}

// TestWorkerFollowAll: the original deployment shape. Clients subscribe
// through another process; two follow-all workers split the shards and
// deliver, between them, every message to every member exactly once,
// including the message that was already in flight when they started,
// and report an eviction once.
func TestWorkerFollowAll(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		// Members' deadlines are a minute away, so a loaded machine that
		// stalls the pings for a second evicts nobody; silent gets a 1s
		// deadline from its last ping, through short.
		opts := queue.Options{ClientTimeout: time.Minute, HousekeepingInterval: 100 * time.Millisecond}
		subs := setupOn(t, b.NewClient(t), b.Prefix, opts)
		short := setupOn(t, b.NewClient(t), b.Prefix, queue.Options{ClientTimeout: time.Second, HousekeepingInterval: 100 * time.Millisecond})
		const numRooms, perRoom, msgs = 12, 3, 3
		rooms := wkRooms(numRooms)
		members := map[string][]string{}
		var pingMu sync.Mutex
		var all []string // pinged by the subscribers' process
		for _, r := range rooms {
			for i := range perRoom {
				c := fmt.Sprintf("%s-m%d", r, i)
				require.NoError(t, subs.Subscribe(ctx, c, r))
				members[r] = append(members[r], c)
				all = append(all, c)
			}
		}
		require.NoError(t, subs.Subscribe(ctx, "silent", rooms[0]))
		// silent is pinged too until a worker delivered it message 0 (it
		// is then known to the worker): only then does it go silent.
		all = append(all, "silent")
		pingCtx, stopPing := context.WithCancel(ctx)
		defer stopPing()
		var pinging sync.WaitGroup
		defer pinging.Wait()
		defer stopPing()
		pinging.Go(func() {
			tk := time.NewTicker(150 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-pingCtx.Done():
					return
				case <-tk.C:
					// A whole round under pingMu: once silent is out of
					// the list, no ping of it is under way.
					pingMu.Lock()
					for _, c := range all {
						_ = subs.Ping(pingCtx, c)
					}
					pingMu.Unlock()
				}
			}
		})
		// Messages are in the rooms before any worker runs: the first one
		// of each room is in flight, waiting for acks.
		for _, r := range rooms {
			for k := range msgs {
				_, err := subs.Send(ctx, r, k)
				require.NoError(t, err)
			}
		}

		type got struct {
			worker int
			d      wkDelivery
		}
		deliveries := make(chan got, 4*numRooms*perRoom*(msgs+1))
		timeouts := make(chan string, 8)
		var workers []*queue.Worker
		for i := range 2 {
			q := setupOn(t, b.NewClient(t), b.Prefix, opts)
			w, err := q.NewWorker(queue.WorkerOptions{
				FollowAll: true, FollowAllIndex: i, FollowAllCount: 2,
				DiscoveryInterval: 50 * time.Millisecond,
				HandleMessage: func(ctx context.Context, clientID string, m *queue.Message) error {
					select {
					case deliveries <- got{i, wkDelivery{clientID, m}}:
					case <-ctx.Done(): // Close does not wait for the test
						return ctx.Err()
					}
					if clientID == "silent" || m.OutOfBand {
						return nil
					}
					// The original example: the worker acks on the client's behalf.
					return m.Ack(ctx)
				},
				HandleClientTimeout: func(ctx context.Context, clientID, _ string) error {
					select {
					case timeouts <- clientID:
					case <-ctx.Done(): // a full channel must not hang Close
					}
					return nil
				},
			})
			require.NoError(t, err)
			defer w.Close()
			workers = append(workers, w)
		}
		require.ErrorIs(t, workers[0].Subscribe(ctx, "x", "y"), queue.ErrInvalidOption)

		layout, err := keys.New(b.Prefix, 16)
		require.NoError(t, err)
		seen := map[string]int{} // client -> next payload expected
		for range numRooms*perRoom*msgs + 1 /* silent gets message 0 of its room */ {
			var g got
			select {
			case g = <-deliveries:
			case <-ctx.Done():
				t.Fatalf("deliveries so far: %v", seen)
			}
			require.Equal(t, layout.ShardOf(g.d.msg.Room)%2, g.worker, "room %s delivered by the worker of its shard", g.d.msg.Room)
			v, err := wkDecodeInt(g.d.msg)
			require.NoError(t, err)
			require.Equal(t, seen[g.d.client], v, "client %s: messages in order, once", g.d.client)
			seen[g.d.client]++
			if g.d.client == "silent" {
				require.Zero(t, v, "silent never acks, so message 1 waits for its eviction")
				pingMu.Lock()
				all = slices.DeleteFunc(all, func(c string) bool { return c == "silent" })
				pingMu.Unlock()
				require.NoError(t, short.Ping(ctx, "silent"))
			}
		}
		select {
		case c := <-timeouts:
			require.Equal(t, "silent", c)
		case <-ctx.Done():
			t.Fatal("no HandleClientTimeout for the silent member")
		}
		// A member joining now receives what is released after it joined.
		require.NoError(t, subs.Subscribe(ctx, "late", rooms[1]))
		pingMu.Lock()
		all = append(all, "late")
		pingMu.Unlock()
		for _, r := range rooms[:2] {
			_, err := subs.SendOutOfBand(ctx, r, 100)
			require.NoError(t, err)
		}
		want := map[string]bool{"late": true}
		for _, r := range rooms[:2] {
			for _, c := range members[r] {
				want[c] = true
			}
		}
		for len(want) > 0 {
			var g got
			select {
			case g = <-deliveries:
			case <-ctx.Done():
				t.Fatalf("end markers missing for %v", want)
			}
			v, err := wkDecodeInt(g.d.msg)
			require.NoError(t, err)
			require.Equal(t, 100, v, "client %s got an extra delivery", g.d.client)
			require.True(t, want[g.d.client], "client %s got the marker twice or is not in the room", g.d.client)
			delete(want, g.d.client)
		}
		require.Len(t, timeouts, 0)
		var sum queue.WorkerStats
		for _, w := range workers {
			m := w.Stats()
			sum.Delivered += m.Delivered
			sum.ClientTimeouts += m.ClientTimeouts
			require.Zero(t, m.HandlerErrors+m.HandlerPanics)
		}
		require.Equal(t, uint64(numRooms*perRoom*msgs+1+2*perRoom+1), sum.Delivered)
		require.Equal(t, uint64(1), sum.ClientTimeouts)
	})
}

// TestWorkerLifecycle: options are checked, Close is prompt and idempotent,
// and closing the Queue closes its workers.
func TestWorkerLifecycle(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		q := setupOn(t, b.Client, b.Prefix, queue.Options{})
		noop := func(context.Context, string, *queue.Message) error { return nil }
		for _, o := range []queue.WorkerOptions{
			{},
			{HandleMessage: noop, FollowAllCount: 2},
			{HandleMessage: noop, FollowAll: true, FollowAllIndex: 2, FollowAllCount: 2},
			{HandleMessage: noop, DiscoveryInterval: time.Microsecond},
			{HandleMessage: noop, LatencyWindow: -1},
			{HandleMessage: noop, AckCoalesce: time.Second},
		} {
			_, err := q.NewWorker(o)
			require.ErrorIs(t, err, queue.ErrInvalidOption, "%+v", o)
		}
		block := make(chan struct{})
		started := make(chan struct{}, 1)
		w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: func(ctx context.Context, _ string, _ *queue.Message) error {
			started <- struct{}{}
			select { // a handler that honours its context
			case <-ctx.Done():
			case <-block:
			}
			return nil
		}})
		require.NoError(t, err)
		require.ErrorIs(t, w.Subscribe(ctx, "c", "bad{room}"), queue.ErrInvalidRoom)
		require.NoError(t, w.Subscribe(ctx, "c", "room"))
		require.NoError(t, w.Subscribe(ctx, "c", "room"), "subscribing twice is harmless")
		_, err = q.SendOutOfBand(ctx, "room", 1)
		require.NoError(t, err)
		<-started
		require.NoError(t, w.Close())
		require.NoError(t, w.Close())
		require.ErrorIs(t, w.Subscribe(ctx, "c", "room"), queue.ErrClosed)
		require.ErrorIs(t, w.Ack(ctx, "c", "token"), queue.ErrClosed)
		st, err := q.RoomState(ctx, "room")
		require.NoError(t, err)
		require.Empty(t, st.Members, "the worker's clients left on Close")

		w2, err := q.NewWorker(queue.WorkerOptions{HandleMessage: noop})
		require.NoError(t, err)
		require.NoError(t, w2.Subscribe(ctx, "d", "room"))
		require.NoError(t, q.Close())
		require.ErrorIs(t, w2.Subscribe(ctx, "d", "room"), queue.ErrClosed)
		_, err = q.NewWorker(queue.WorkerOptions{HandleMessage: noop})
		require.ErrorIs(t, err, queue.ErrClosed)
		close(block)
	})
}
