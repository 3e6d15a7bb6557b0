// Package queue is the public API of syncfanout: lock-step fanout on
// Redis.
//
// Every message sent to a room reaches every subscriber of the room, and
// the room releases the next message only when every current member has
// acked the previous one. Pending messages are released by priority (0
// first, 9 last, default 5), then in the order Redis accepted the sends.
// Out-of-band messages skip the queue and the barrier. Every delivery,
// out-of-band message, join, leave and eviction goes to the room's
// delivery stream, which can be read back ([Queue.History]) or followed
// ([Queue.Tail]). Those calls take and yield the types of package streams,
// the streams' public codec, with the same stability promise as this
// package; no other package of this module is needed to use the API.
//
// A [Queue] wraps the caller's redis.UniversalClient (standalone or
// Cluster) and never closes it:
//
//	q, err := queue.New(ctx, rdb, queue.Options{Prefix: "myapp"})
//	if err != nil {
//		return err
//	}
//	defer q.Close()
//
//	id, err := q.Send(ctx, "lobby", payload, queue.Priority(1), queue.Producer("svc-a"))
//
// Subscribers come in two forms:
//
//   - In-process: [Queue.Join] returns a [Subscription]. The Queue creates
//     its client ID and sends its heartbeats, and its messages arrive
//     through [Subscription.Next] or [Subscription.Messages]. Each message
//     is acked with [Message.Ack].
//   - Gateway: the end clients live elsewhere. The gateway creates their
//     IDs ([Queue.CreateClientID]), subscribes them ([Queue.Subscribe]),
//     relays their heartbeats ([Queue.Ping]) and acks ([Queue.Ack] with
//     [Message.AckToken]), and a [Worker] ([Queue.NewWorker]) hands it
//     their messages.
//
// A member that sends no heartbeat for Options.ClientTimeout is evicted by
// the housekeeping that every Queue runs, even when nothing else happens
// in its room. Delivery is at most once. A reader that reconnects resumes
// from its last stream ID, so a disconnection shorter than the stream's
// retention loses nothing.
//
// Every error caused by bad input wraps one of the sentinel errors (see
// errors.go), for errors.Is, and changes nothing in Redis. The behaviour
// contract and the design are described in the repository's README.md and
// docs/design.md.
package queue
