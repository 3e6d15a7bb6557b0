package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/sferr"
	"github.com/syncfanout/syncfanout/oob"
)

// Queue is the entry point: producers, membership, acks, inspection and
// in-process subscribers. It is safe for concurrent use.
type Queue struct {
	rdb     redis.UniversalClient
	opts    Options
	layout  *keys.Layout
	barrier *barrier.Barrier
	oob     *oob.Broadcaster

	stats counters

	warnHousekeeping warnLimiter

	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	router *router // in-process subscriptions and their readers

	acks *joinAcks // coalesces the acks of the subscriptions of a room
	// partial holds the rooms whose quorum completes messages without
	// every member (notePartial).
	partial sync.Map
	// shardAcks batches single acks that overlap (shardbatch.go); nil with WaitReplicas,
	// whose WAIT follows each call and has no pipelined form here.
	shardAcks *shardAcks
}

// New validates opts, checks that NumShards agrees with the deployment (it
// is stored on first use) and starts housekeeping. The caller keeps
// ownership of rdb: Close does not close it.
func New(ctx context.Context, rdb redis.UniversalClient, opts Options) (*Queue, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", sferr.ErrInvalidOption)
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	layout, err := keys.New(opts.Prefix, opts.NumShards)
	if err != nil {
		return nil, err
	}
	watchTopology(ctx, rdb)
	if err := checkShards(ctx, rdb, layout); err != nil {
		return nil, err
	}
	warnContextTimeout(rdb, opts.Logger)
	if opts.WaitReplicas > 0 {
		if rdb, err = newWaitClient(rdb, opts.WaitReplicas, opts.WaitTimeout); err != nil {
			return nil, err
		}
	}
	maxLen := opts.StreamMaxLen
	if maxLen < 0 {
		maxLen = 0
	}
	cfg := lua.RoomConfig{
		MaxLen:       maxLen,
		MaxAgeMillis: opts.StreamMaxAge.Milliseconds(),
		AckTimeoutMs: opts.AckTimeout.Milliseconds(),
		Hold:         opts.HoldWhenEmpty,
		// Negative: kept forever.
		IdleTTLMillis: opts.IdleRoomTTL.Milliseconds(),
		DefaultPolicy: opts.DefaultPolicy.String(),
	}
	q := &Queue{
		rdb:     rdb,
		opts:    opts,
		layout:  layout,
		barrier: barrier.New(rdb, layout, cfg, opts.ClientTimeout),
		oob:     oob.New(rdb, layout, cfg),
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.router = newRouter(q)
	q.acks = newJoinAcks(q)
	if opts.WaitReplicas == 0 {
		q.shardAcks = newShardAcks(q)
	}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.router.heartbeatLoop(q.ctx, opts.HeartbeatInterval)
	}()
	if !opts.DisableHousekeeping {
		q.wg.Add(1)
		go q.housekeeping()
	}
	return q, nil
}

// Close stops every goroutine of the Queue, ends its subscriptions (their
// members leave their rooms, so nobody waits for them) and closes the
// connections it opened itself. It is idempotent.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	q.router.close()
	q.cancel()
	q.wg.Wait()
	return nil
}

func (q *Queue) check(ctx context.Context) error {
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return sferr.ErrClosed
	}
	return ctx.Err()
}

// Stats returns a snapshot of the Queue's in-process counters.
func (q *Queue) Stats() Stats { return q.stats.snapshot() }

// Send enqueues data for every member of room. data is msgpack-encoded
// unless it is a []byte, which is stored untouched. It returns the
// message's ID, unique within the room. The message is released when every
// member acked the previous one, lowest priority number first, then in the
// order Redis accepted the sends.
func (q *Queue) Send(ctx context.Context, room string, data any, opts ...SendOption) (id uint64, err error) {
	return q.sendOne(ctx, room, data, opts, false)
}

// sendOne is Send, or SendOutOfBand when oob is set: they differ only in
// the script that stores the message and in what counts it.
func (q *Queue) sendOne(ctx context.Context, room string, data any, opts []SendOption, oob bool) (id uint64, err error) {
	if err := q.check(ctx); err != nil {
		return 0, err
	}
	so, err := q.sendOptions(room, opts)
	if err != nil {
		return 0, err
	}
	done, err := q.startSend(ctx, room, &so, oob, 1)
	if done != nil {
		defer func() { done(oneID(id), err) }()
	}
	if err != nil {
		return 0, err
	}
	payload, err := q.encode(data, so)
	if err != nil {
		return 0, err
	}
	if oob {
		res, err := q.oob.Send(ctx, room, so.producer, payload)
		if err != nil {
			return 0, err
		}
		q.stats.OutOfBand.Add(1)
		return res.Seq, nil
	}
	res, err := q.enqueue(ctx, room, so, payload)
	if err != nil {
		return 0, err
	}
	return res.Seq, nil
}

func oneID(id uint64) []uint64 {
	if id == 0 {
		return nil
	}
	return []uint64{id}
}

// enqueue runs the send script for checked payloads, counts them and hands
// what it released to this process's subscribers.
func (q *Queue) enqueue(ctx context.Context, room string, so sendOptions, payloads ...[]byte) (res barrier.Enqueued, err error) {
	a := barrier.SendArgs{Room: room, Priority: so.priority, Producer: so.producer, AckTimeout: so.ackDeadline, Payloads: payloads}
	if q.shardAcks != nil {
		res, err = q.shardAcks.send(ctx, a) // with the concurrent calls of its shard
	} else {
		ls := &laneSend{args: a}
		err = q.sendAlone(ctx, ls)
		res = ls.res
	}
	if err != nil {
		return res, refusedSend(room, len(payloads), err)
	}
	q.stats.Sent.Add(uint64(len(payloads)))
	q.stats.Dropped.Add(uint64(res.Dropped))
	q.stats.Released.Add(uint64(res.Released))
	return res, nil
}

// sendAlone runs the send s in a call of its own and hands what it
// released to the local subscribers.
func (q *Queue) sendAlone(ctx context.Context, s *laneSend) error {
	a := s.args
	res, err := q.barrier.Enqueue(ctx, a.Room, a.Priority, a.Producer, a.AckTimeout, a.Payloads...)
	if err != nil {
		return err
	}
	s.res = res
	q.router.direct(a.Room, res.Appended)
	return nil
}

// MaxBatch is the most messages one SendBatch call takes: a batch is one
// script run, during which Redis serves nobody else.
const MaxBatch = 1000

// SendBatch enqueues every element of data for every member of room in one
// atomic step, as the same number of Sends in a row would, and returns
// their IDs, which are consecutive. Every message gets the same options.
// It costs Redis about what one Send does, so a producer with several
// messages at hand sends many times more per second this way. An empty
// batch or one of more than MaxBatch messages is an ErrInvalidBatch; a
// payload that fails Send's checks fails the whole batch, and nothing is
// sent.
func (q *Queue) SendBatch(ctx context.Context, room string, data []any, opts ...SendOption) (ids []uint64, err error) {
	if err := q.check(ctx); err != nil {
		return nil, err
	}
	if len(data) == 0 || len(data) > MaxBatch {
		return nil, fmt.Errorf("%w: %d messages, want 1..%d", ErrInvalidBatch, len(data), MaxBatch)
	}
	so, err := q.sendOptions(room, opts)
	if err != nil {
		return nil, fmt.Errorf("message 0: %w", err)
	}
	done, err := q.startSend(ctx, room, &so, false, len(data))
	if done != nil {
		defer func() { done(ids, err) }()
	}
	if err != nil {
		return nil, err
	}
	if err := checkHeaders(so.headers); err != nil {
		return nil, fmt.Errorf("message 0: %w", err)
	}
	payloads := make([][]byte, len(data))
	for i := range data {
		if payloads[i], err = encodePayload(data[i], q.opts.MaxPayloadBytes, so.headers); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
	}
	res, err := q.enqueue(ctx, room, so, payloads...)
	if err != nil {
		return nil, err
	}
	ids = make([]uint64, len(data))
	for i := range ids {
		ids[i] = res.Seq + uint64(i)
	}
	return ids, nil
}

// SendOutOfBand appends data to room's delivery stream at once: every
// subscriber receives it whatever the barrier is doing, and nobody acks it.
func (q *Queue) SendOutOfBand(ctx context.Context, room string, data any, opts ...SendOption) (id uint64, err error) {
	return q.sendOne(ctx, room, data, opts, true)
}

// sendOptions checks the room and applies the options of a send.
func (q *Queue) sendOptions(room string, opts []SendOption) (sendOptions, error) {
	so := sendOptions{priority: DefaultPriority}
	if err := keys.ValidateRoom(room); err != nil {
		return so, err
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&so); err != nil {
			return so, err
		}
	}
	return so, nil
}

// encode checks the headers as a whole (a tracer's included) and encodes
// one message.
func (q *Queue) encode(data any, so sendOptions) ([]byte, error) {
	if err := checkHeaders(so.headers); err != nil {
		return nil, err
	}
	return encodePayload(data, q.opts.MaxPayloadBytes, so.headers)
}

// CreateClientID returns a new client ID, unique across every process that
// shares the Redis deployment and across restarts: a Redis counter plus 64
// random bits, so even a counter reset by a Redis restart cannot repeat one.
func (q *Queue) CreateClientID(ctx context.Context) (string, error) {
	if err := q.check(ctx); err != nil {
		return "", err
	}
	n, err := q.rdb.Incr(ctx, q.layout.ClientSeq()).Result()
	if err != nil {
		return "", fmt.Errorf("syncfanout: creating a client ID: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("syncfanout: creating a client ID: %w", err)
	}
	return strconv.FormatInt(n, 36) + "-" + hex.EncodeToString(r[:]), nil
}

// Subscribe makes clientID a voting member of room: from now on it
// receives every message released there, and the room waits for its ack.
// Subscribing twice is harmless. The client stays a member while something
// calls Ping(clientID) at least every ClientTimeout. Once it left or was
// evicted, subscribing again starts a new membership: the ack tokens
// delivered to the previous one return ErrStaleAck.
func (q *Queue) Subscribe(ctx context.Context, clientID, room string) error {
	_, err := q.subscribe(ctx, clientID, room, false)
	return err
}

// SubscribeObserver adds clientID to room as an observer: it receives
// everything, never holds the barrier and never acks.
func (q *Queue) SubscribeObserver(ctx context.Context, clientID, room string) error {
	_, err := q.subscribe(ctx, clientID, room, true)
	return err
}

func (q *Queue) subscribe(ctx context.Context, clientID, room string, observer bool) (barrier.Joined, error) {
	if err := q.check(ctx); err != nil {
		return barrier.Joined{}, err
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return barrier.Joined{}, err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return barrier.Joined{}, err
	}
	j, err := q.barrier.Join(ctx, room, clientID, observer)
	if err != nil {
		return j, err
	}
	// The client's own set of rooms lives in the client's shard, so Ping
	// finds them without scanning; a crash between the two calls leaves a
	// member that nobody pings, which eviction then removes.
	ckey := q.layout.Client(clientID)
	if err := q.rdb.SAdd(ctx, ckey, room).Err(); err != nil {
		return j, fmt.Errorf("syncfanout: recording room %q for client %q: %w", room, clientID, err)
	}
	if ttl := q.clientSetTTL(); ttl > 0 {
		if err := q.rdb.PExpire(ctx, ckey, ttl).Err(); err != nil {
			return j, fmt.Errorf("syncfanout: recording room %q for client %q: %w", room, clientID, err)
		}
	}
	return j, nil
}

// clientSetTTL is how long a client's room set outlives the client's last
// Subscribe or Ping (0: forever). Its memberships end ClientTimeout after
// its last heartbeat, and the rooms it leaves idle go IdleRoomTTL after
// that: the set, which only Ping reads, goes with them, so a client that
// died leaves nothing behind.
func (q *Queue) clientSetTTL() time.Duration {
	if q.opts.IdleRoomTTL <= 0 {
		return 0
	}
	return q.opts.IdleRoomTTL + q.opts.ClientTimeout
}

// Unsubscribe removes clientID from room. If the room was waiting only for
// this client's ack, the next message is released in the same step.
func (q *Queue) Unsubscribe(ctx context.Context, clientID, room string) error {
	if err := q.check(ctx); err != nil {
		return err
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return err
	}
	return q.leave(ctx, clientID, room)
}

// leave removes clientID from room, then room from the client's room set
// (which Ping reads). A client that was no longer a member gets
// ErrNotMember, once its room set is clean too.
func (q *Queue) leave(ctx context.Context, clientID, room string) error {
	_, lerr := q.barrier.Leave(ctx, room, clientID)
	if lerr != nil && !errors.Is(lerr, sferr.ErrNotMember) {
		return lerr
	}
	if err := q.rdb.SRem(ctx, q.layout.Client(clientID), room).Err(); err != nil {
		return fmt.Errorf("syncfanout: forgetting room %q for client %q: %w", room, clientID, err)
	}
	return lerr
}

// Ping is the heartbeat of clientID in every room it joined, from any
// process. Its cost depends on the client's own rooms only. It returns
// ErrUnknownClient when the client is in no room, and an *EvictedError
// (errors.Is ErrEvicted) naming the rooms it was evicted from, so the
// caller can subscribe again.
func (q *Queue) Ping(ctx context.Context, clientID string) error {
	if err := q.check(ctx); err != nil {
		return err
	}
	if err := keys.ValidateClientID(clientID); err != nil {
		return err
	}
	ckey := q.layout.Client(clientID)
	// The set's expiry moves with each Ping, in the same round trip.
	pipe := q.rdb.Pipeline()
	members := pipe.SMembers(ctx, ckey)
	if ttl := q.clientSetTTL(); ttl > 0 {
		pipe.PExpire(ctx, ckey, ttl)
	}
	_, _ = pipe.Exec(ctx) // the error is the first command's, read below
	rooms, err := members.Result()
	if err != nil {
		return fmt.Errorf("syncfanout: ping %q: %w", clientID, err)
	}
	if len(rooms) == 0 {
		return fmt.Errorf("%w: %q", sferr.ErrUnknownClient, clientID)
	}
	gone, err := q.beat(ctx, clientID, rooms)
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		return nil
	}
	goneRooms := make([]any, len(gone))
	for i, r := range gone {
		goneRooms[i] = r
	}
	if err := q.rdb.SRem(ctx, ckey, goneRooms...).Err(); err != nil {
		return fmt.Errorf("syncfanout: ping %q: %w", clientID, err)
	}
	// A Subscribe of the client to one of these rooms may have run since
	// its heartbeat (it joins, then adds the room to the set): beat again,
	// after the SREM, and put back the rooms it is in, or nobody would beat
	// for that membership.
	evicted, err := q.beat(ctx, clientID, gone)
	if err != nil {
		return err
	}
	for _, room := range gone {
		if slices.Contains(evicted, room) {
			continue
		}
		if err := q.rdb.SAdd(ctx, ckey, room).Err(); err != nil {
			return fmt.Errorf("syncfanout: ping %q: %w", clientID, err)
		}
		if ttl := q.clientSetTTL(); ttl > 0 {
			// The SREM above may have emptied, and so deleted, the set.
			if err := q.rdb.PExpire(ctx, ckey, ttl).Err(); err != nil {
				return fmt.Errorf("syncfanout: ping %q: %w", clientID, err)
			}
		}
	}
	if len(evicted) == 0 {
		return nil
	}
	return &EvictedError{ClientID: clientID, Rooms: evicted}
}

// beat extends the client's deadline in each room and returns the rooms it
// is no longer in.
func (q *Queue) beat(ctx context.Context, clientID string, rooms []string) (gone []string, err error) {
	for _, room := range rooms {
		alive, err := q.barrier.Heartbeat(ctx, room, []string{clientID})
		if err != nil {
			return nil, err
		}
		if !alive[0] {
			gone = append(gone, room)
		}
	}
	return gone, nil
}

// Ack acknowledges the delivery named by token (Message.AckToken) on
// behalf of clientID. When it was the last ack missing, the next message
// is released in the same step. Acking twice is harmless; a token for a
// message that is no longer in flight returns ErrStaleAck and changes
// nothing.
func (q *Queue) Ack(ctx context.Context, clientID, ackToken string) error {
	t, err := q.verifyAck(ctx, clientID, ackToken)
	if err != nil {
		return err
	}
	return q.ackToken(ctx, t)
}

// ownTokenAck returns a Message's ack function: its own token t, issued
// by this process as issued, goes to trusted without verifying; another
// one (the caller changed AckToken) goes through verify (Ack).
func ownTokenAck(t token, issued string, verify func(ctx context.Context, clientID, tok string) error, trusted func(context.Context, token) error) func(context.Context, string) error {
	return func(ctx context.Context, tok string) error {
		if tok != issued {
			return verify(ctx, t.client, tok)
		}
		return trusted(ctx, t)
	}
}

// ackIssued acks a token a subscription of this Queue issued, with the
// acks of the room's other local members handed the same message
// (joinAcks).
func (q *Queue) ackIssued(ctx context.Context, t token) error {
	if err := q.check(ctx); err != nil {
		return err
	}
	return q.acks.ack(ctx, t)
}

// ackToken acks for a token already checked (or issued by this process),
// in its shard's next batch when another ack of the shard is in flight.
func (q *Queue) ackToken(ctx context.Context, t token) error {
	if q.shardAcks == nil {
		return q.ackAlone(ctx, t)
	}
	return q.shardAcks.ack(ctx, t)
}

// ackAlone acks t in a call of its own.
func (q *Queue) ackAlone(ctx context.Context, t token) error {
	res, err := q.barrier.Ack(ctx, t.room, t.client, t.seq, t.epoch, t.inc)
	if err != nil {
		q.stats.ackRejected(err)
		return err
	}
	q.router.direct(t.room, res.Appended)
	q.ackCounted(res)
	q.notePartial(t.room, res.Partial)
	return nil
}

// ackCounted counts an accepted ack.
func (q *Queue) ackCounted(res barrier.Acked) {
	q.stats.Acked.Add(1)
	q.stats.observeAck(res)
	q.stats.Released.Add(uint64(res.Released))
}

// notePartial records whether room's quorum completes messages without
// every member, as its last ack reply said: the local coalescing of acks
// (joinAcks, Worker.AckCoalesce) then sends each ack at once, since the
// message need not wait for the members it would wait for.
func (q *Queue) notePartial(room string, partial bool) {
	if partial {
		q.partial.Store(room, struct{}{})
	} else if _, ok := q.partial.Load(room); ok {
		q.partial.Delete(room)
	}
}

func (q *Queue) isPartial(room string) bool {
	_, ok := q.partial.Load(room)
	return ok
}

// PendingMessage is a message waiting for the barrier.
type PendingMessage struct {
	ID         uint64
	Room       string
	Producer   string
	Priority   int
	EnqueuedAt time.Time
	Headers    map[string]string // see Message.Headers
	// Err is non-nil (matching ErrDecode) for an entry that something other
	// than Send wrote into the room's queue and that no reader could decode:
	// the release step will set it aside as a "malformed" stream event
	// instead of releasing it. Its other fields hold what could be read.
	Err     error
	payload []byte
}

// Data returns the payload body (see Message.Data); nil when Err is set.
func (p *PendingMessage) Data() []byte {
	if p.Err != nil {
		return nil
	}
	return p.payload[1:]
}

// Decode unmarshals the payload (see Message.Decode); it returns Err when
// that is set.
func (p *PendingMessage) Decode(v any) error {
	if p.Err != nil {
		return p.Err
	}
	return (&Message{payload: p.payload}).Decode(v)
}

// Peek lists up to limit pending entries of room starting at offset, in
// exactly the order they will be released. It changes nothing. Entries
// that will be set aside as malformed are listed where they are, with Err
// set, so offsets stay positions in the queue.
func (q *Queue) Peek(ctx context.Context, room string, offset, limit int) ([]*PendingMessage, error) {
	if err := q.check(ctx); err != nil {
		return nil, err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return nil, err
	}
	if offset < 0 || limit < 0 || limit > 10000 {
		return nil, fmt.Errorf("%w: Peek offset=%d limit=%d, want offset >= 0 and limit 0..10000", sferr.ErrInvalidOption, offset, limit)
	}
	if limit == 0 {
		return nil, nil
	}
	ps, err := q.barrier.Peek(ctx, room, offset, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*PendingMessage, 0, len(ps))
	for _, p := range ps {
		m := &PendingMessage{ID: p.Seq, Room: room, Producer: p.Producer, Priority: p.Priority, EnqueuedAt: p.Enqueued, Headers: p.Headers, payload: p.Payload}
		if p.Err != nil {
			m.Err = fmt.Errorf("room %q: pending entry %d of priority %d: %w", room, offset+len(out)+1, p.Priority, p.Err)
		}
		out = append(out, m)
	}
	return out, nil
}

// RoomState returns the room's pending count, in-flight message and its
// age, every member with its last heartbeat, and who acked or is missing.
// Rooms exist implicitly: one that holds nothing (never used, or expired)
// has an empty state (LastSeq 0, no members, StreamLen 0) and no error.
func (q *Queue) RoomState(ctx context.Context, room string) (RoomState, error) {
	if err := q.check(ctx); err != nil {
		return RoomState{}, err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return RoomState{}, err
	}
	s, err := q.barrier.State(ctx, room)
	if err != nil {
		return RoomState{}, err
	}
	r := roomState(s)
	if r.Policy, err = q.roomPolicy(room, s.Policy, s.PolicyStored); err != nil {
		return RoomState{}, err
	}
	r.PolicyStored = s.PolicyStored
	return r, nil
}
