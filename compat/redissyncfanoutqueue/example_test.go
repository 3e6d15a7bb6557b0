package redissyncfanoutqueue_test

import (
	"context"
	"fmt"
	"time"

	redisSyncFanoutQueue "github.com/syncfanout/syncfanout/compat/redissyncfanoutqueue"
	"github.com/syncfanout/syncfanout/internal/redistest"
)

// A program written for the original library, after its import lines
// changed: the pending messages of a room, in release order.
func ExampleNewApiClient() {
	b, cleanup, err := redistest.ExampleBackend()
	if err != nil {
		panic(err)
	}
	defer cleanup()
	ctx := context.TODO()

	client, err := redisSyncFanoutQueue.NewApiClient(ctx, &redisSyncFanoutQueue.ApiOptions{
		RedisClient:    b.Client, // or RedisOptions: &redis.Options{Addr: ...}, as in the original
		ClientTimeout:  time.Second * 15,
		RedisKeyPrefix: fmt.Sprintf("{%s}::%v", b.Prefix, "test"),
	})
	if err != nil {
		panic(err)
	}
	defer client.Close()

	clientId, _ := client.CreateClientID(ctx)
	_ = client.Subscribe(ctx, clientId, "GO-ROOM-TEST")
	_ = client.Send(ctx, "MSG_PRODUCER_ID", "GO-ROOM-TEST", "first: released at once", 5)
	_ = client.Send(ctx, "MSG_PRODUCER_ID", "GO-ROOM-TEST", "low", 7)
	_ = client.Send(ctx, "MSG_PRODUCER_ID", "GO-ROOM-TEST", map[string]int{"n": 1}, 1)
	_ = client.Send(ctx, "MSG_PRODUCER_ID", "GO-ROOM-TEST", "urgent", -100) // below 0: sent as 0

	msgs, err := client.Peek(ctx, "GO-ROOM-TEST", 0, 10)
	if err != nil {
		panic(err)
	}
	for index, msg := range msgs {
		fmt.Printf("Peek: %d: %v (%T)\n", index, *msg.Data, *msg.Data)
	}
	// Output:
	// Peek: 0: urgent (string)
	// Peek: 1: map[n:1] (map[string]interface {})
	// Peek: 2: low (string)
}
