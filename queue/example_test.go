package queue_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// exampleRedis stands in for the application's own Redis client: it
// returns a client on the test binary's shared server, a key prefix no
// other test uses, and a function that deletes the prefix's keys.
func exampleRedis() (redis.UniversalClient, string, func()) {
	b, cleanup, err := redistest.ExampleBackend()
	if err != nil {
		panic(err)
	}
	return b.Client, b.Prefix, cleanup
}

func ExampleNew() {
	ctx := context.Background()
	rdb, prefix, done := exampleRedis()
	defer done()

	// The Queue uses the caller's client and never closes it.
	q, err := queue.New(ctx, rdb, queue.Options{
		Prefix:        prefix,
		ClientTimeout: 15 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	_, err = queue.New(ctx, rdb, queue.Options{Prefix: prefix, ClientTimeout: time.Millisecond})
	fmt.Println(errors.Is(err, queue.ErrInvalidOption))
	// Output: true
}

// Lower priority numbers are released first, equal priorities in send
// order. The first message goes out at once: nothing was in flight.
func ExampleQueue_Send() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	sub, err := q.Join(ctx, "room-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	sends := []struct {
		text     string
		priority int
	}{{"first", 5}, {"later", 9}, {"normal-a", 5}, {"urgent", 0}, {"normal-b", 5}}
	for _, s := range sends {
		if _, err := q.Send(ctx, "room-1", s.text, queue.Priority(s.priority), queue.Producer("billing")); err != nil {
			fmt.Println(err)
			return
		}
	}
	for range sends {
		m, err := sub.Next(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		var text string
		if err := m.Decode(&text); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("#%d p%d %s from %s\n", m.ID, m.Priority, text, m.Producer)
		if err := m.Ack(ctx); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// #1 p5 first from billing
	// #4 p0 urgent from billing
	// #3 p5 normal-a from billing
	// #5 p5 normal-b from billing
	// #2 p9 later from billing
}

func ExampleQueue_Send_invalidPriority() {
	ctx := context.Background()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	_, err = q.Send(ctx, "room-1", "hello", queue.Priority(10))
	fmt.Println(errors.Is(err, queue.ErrInvalidPriority))
	_, err = q.Send(ctx, "", "hello")
	fmt.Println(errors.Is(err, queue.ErrInvalidRoom))
	// Output:
	// true
	// true
}

// Two members in lock-step: the second message stays pending until both
// acked the first.
func ExampleQueue_Join() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	fast, err := q.Join(ctx, "room-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	slow, err := q.Join(ctx, "room-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, text := range []string{"one", "two"} {
		if _, err := q.Send(ctx, "room-1", text); err != nil {
			fmt.Println(err)
			return
		}
	}

	m, _ := fast.Next(ctx)
	_ = m.Ack(ctx)
	st, _ := q.RoomState(ctx, "room-1")
	fmt.Printf("in flight #%d, pending %d, waiting for slow: %v\n",
		st.InFlight.Seq, st.Pending, len(st.Missing) == 1 && st.Missing[0] == slow.ClientID())

	m, _ = slow.Next(ctx)
	_ = m.Ack(ctx) // the last ack releases message 2 in the same step
	st, _ = q.RoomState(ctx, "room-1")
	fmt.Printf("in flight #%d, pending %d\n", st.InFlight.Seq, st.Pending)
	// Output:
	// in flight #1, pending 1, waiting for slow: true
	// in flight #2, pending 0
}

func ExampleSubscription_Messages() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	sub, err := q.Join(ctx, "room-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close(ctx)
	for i := 1; i <= 3; i++ {
		if _, err := q.Send(ctx, "room-1", map[string]int{"n": i}); err != nil {
			fmt.Println(err)
			return
		}
	}

	received := 0
	for m, err := range sub.Messages(ctx) {
		if err != nil { // evicted, removed, or ctx ended
			fmt.Println(err)
			return
		}
		var body map[string]int
		if err := m.Decode(&body); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("n =", body["n"])
		if err := m.Ack(ctx); err != nil {
			fmt.Println(err)
			return
		}
		if received++; received == 3 {
			break
		}
	}
	// Output:
	// n = 1
	// n = 2
	// n = 3
}

// An out-of-band message reaches members at once, even while the room
// waits for an ack, and is never acked.
func ExampleQueue_SendOutOfBand() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	sub, err := q.Join(ctx, "room-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = q.Send(ctx, "room-1", []byte("queued-1"))
	_, _ = q.Send(ctx, "room-1", []byte("queued-2"))
	_, _ = q.SendOutOfBand(ctx, "room-1", []byte("stop everything"))

	for range 3 {
		m, err := sub.Next(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s oob=%v token=%v\n", m.Data(), m.OutOfBand, m.AckToken != "")
		_ = m.Ack(ctx) // a no-op for the OOB message
	}
	// Output:
	// queued-1 oob=false token=true
	// stop everything oob=true token=false
	// queued-2 oob=false token=true
}

// Peek lists pending messages in release order and changes nothing.
func ExampleQueue_Peek() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix, HoldWhenEmpty: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	// With HoldWhenEmpty, a room without members keeps its messages.
	_, _ = q.Send(ctx, "room-1", []byte("b"), queue.Priority(7))
	_, _ = q.Send(ctx, "room-1", []byte("a"), queue.Priority(2))
	_, _ = q.Send(ctx, "room-1", []byte("c"), queue.Priority(7))

	pending, err := q.Peek(ctx, "room-1", 0, 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range pending {
		fmt.Printf("#%d p%d %s\n", p.ID, p.Priority, p.Data())
	}
	// Output:
	// #2 p2 a
	// #1 p7 b
	// #3 p7 c
}

// A gateway holds the barrier for remote clients: it creates their IDs,
// subscribes them, pings for them and relays their acks with q.Ack.
func ExampleQueue_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	client, err := q.CreateClientID(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := q.Subscribe(ctx, client, "room-1"); err != nil {
		fmt.Println(err)
		return
	}
	// Call at least once per ClientTimeout, for every client: one call
	// covers all the rooms of the client.
	if err := q.Ping(ctx, client); err != nil {
		fmt.Println(err)
		return
	}
	st, _ := q.RoomState(ctx, "room-1")
	fmt.Println("members:", len(st.Members))

	if err := q.Unsubscribe(ctx, client, "room-1"); err != nil {
		fmt.Println(err)
		return
	}
	err = q.Ping(ctx, client)
	fmt.Println("ping after leaving:", errors.Is(err, queue.ErrUnknownClient))
	// Output:
	// members: 1
	// ping after leaving: true
}

// Ack tokens are bound to a room, a message and a client: an ack for a
// message that is no longer in flight is refused and changes nothing.
func ExampleQueue_Ack() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	sub, err := q.Join(ctx, "room-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = q.Send(ctx, "room-1", []byte("one"))
	_, _ = q.Send(ctx, "room-1", []byte("two"))
	m, err := sub.Next(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The token can travel (to a remote client and back) as a string.
	token := m.AckToken
	fmt.Println("first ack:", q.Ack(ctx, sub.ClientID(), token))
	// That ack released message 2, so the token is now stale.
	fmt.Println("late ack:", errors.Is(q.Ack(ctx, sub.ClientID(), token), queue.ErrStaleAck))
	fmt.Println("other client:", errors.Is(q.Ack(ctx, "someone-else", token), queue.ErrInvalidToken))
	// Output:
	// first ack: <nil>
	// late ack: true
	// other client: true
}

func ExampleQueue_RoomState() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	a, _ := q.Join(ctx, "room-1")
	_, _ = q.Join(ctx, "room-1")
	for range 3 {
		_, _ = q.Send(ctx, "room-1", []byte("x"))
	}
	m, _ := a.Next(ctx)
	_ = m.Ack(ctx)

	st, err := q.RoomState(ctx, "room-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("pending=%d in-flight=#%d members=%d missing=%d\n",
		st.Pending, st.InFlight.Seq, len(st.Members), len(st.Missing))
	// Output: pending=2 in-flight=#1 members=2 missing=1
}

// Headers travel beside the payload to every subscriber; a message sent
// without headers has none.
func ExampleHeader() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, prefix, done := exampleRedis()
	defer done()
	q, err := queue.New(ctx, rdb, queue.Options{Prefix: prefix})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	sub, err := q.Join(ctx, "room-h")
	if err != nil {
		fmt.Println(err)
		return
	}

	if _, err := q.Send(ctx, "room-h", "order", queue.Header("content-type", "text/plain"), queue.Header("tenant", "acme")); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := q.SendOutOfBand(ctx, "room-h", "notice"); err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		m, err := sub.Next(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(m.ID, m.Headers)
	}
	_, err = q.Send(ctx, "room-h", "x", queue.Header("a=b", "v"))
	fmt.Println(errors.Is(err, queue.ErrInvalidHeader))
	// Output:
	// 1 map[content-type:text/plain tenant:acme]
	// 2 map[]
	// true
}
