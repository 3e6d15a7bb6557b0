package barrier

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Barrier runs room scripts against one Redis deployment.
type Barrier struct {
	rdb           redis.UniversalClient
	layout        *keys.Layout
	cfg           lua.RoomConfig
	clientTimeout time.Duration
}

// New returns a Barrier. clientTimeout is the heartbeat deadline given to
// members that join or beat through it.
func New(rdb redis.UniversalClient, layout *keys.Layout, cfg lua.RoomConfig, clientTimeout time.Duration) *Barrier {
	return &Barrier{rdb: rdb, layout: layout, cfg: cfg, clientTimeout: clientTimeout}
}

func (b *Barrier) run(ctx context.Context, s *lua.Script, room string, extra ...any) ([]any, error) {
	v, err := b.cfg.Engine.Run(ctx, b.rdb, s, b.layout.RoomKeys(room), b.cfg.Args(room, extra...)...).Slice()
	if err != nil {
		return nil, fmt.Errorf("syncfanout: room %q: %w", room, err)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("syncfanout: room %q: empty script reply", room)
	}
	return v, nil
}

// Appended is what one script call added to a room's stream: Prev is the
// stream's last ID before, Entries the new entries in order. A local reader
// positioned at Prev can take them without reading the stream.
type Appended struct {
	Prev    string
	Entries []redis.XMessage
}

func appended(v []any, i int) Appended {
	var a Appended
	if i+1 >= len(v) {
		return a
	}
	a.Prev = str(v, i)
	list, _ := v[i+1].([]any)
	for _, e := range list {
		pair, _ := e.([]any)
		if len(pair) != 2 {
			continue
		}
		id, _ := pair[0].(string)
		flat, _ := pair[1].([]any)
		values := make(map[string]any, len(flat)/2)
		for j := 0; j+1 < len(flat); j += 2 {
			values[str(flat, j)] = str(flat, j+1)
		}
		a.Entries = append(a.Entries, redis.XMessage{ID: id, Values: values})
	}
	return a
}

// Enqueued describes a sent message.
type Enqueued struct {
	Seq      uint64
	Epoch    string
	Released int       // messages the send released (0 while the barrier holds)
	At       time.Time // server time of the send
	Appended Appended
	Dropped  int // pending messages the room's overflow policy dropped
}

// Refused is a send the room's policy refused before writing anything:
// Status is sferr.StatusRoomFull (Limit is MaxPending, Pending the
// backlog) or sferr.StatusTooLarge (Limit is MaxPayloadBytes, Index and
// Size the first payload too large).
type Refused struct {
	Status  string
	Limit   int
	Pending int
	Index   int
	Size    int
}

func (r *Refused) Error() string {
	if r.Status == sferr.StatusRoomFull {
		return fmt.Sprintf("%v: MaxPending %d, %d pending", sferr.ErrRoomFull, r.Limit, r.Pending)
	}
	return fmt.Sprintf("%v: payload %d is %d bytes, room limit %d", sferr.ErrPayloadTooLarge, r.Index, r.Size, r.Limit)
}

// Unwrap returns the sentinel of the refusal.
func (r *Refused) Unwrap() error { return sferr.FromStatus(r.Status) }

// Enqueue adds messages with priority p (0..keys.Levels-1), in order, and
// releases the first at once when the barrier is open. Their seqs are
// consecutive from the returned Seq. At least one payload is required.
// ackTimeout, when positive, replaces the room's ack timeout for each of
// them. A refusal of the room's policy is a *Refused.
func (b *Barrier) Enqueue(ctx context.Context, room string, p int, producer string, ackTimeout time.Duration, payloads ...[]byte) (Enqueued, error) {
	if len(payloads) == 0 {
		return Enqueued{}, fmt.Errorf("%w: no message to send", sferr.ErrInvalidBatch)
	}
	v, err := b.run(ctx, lua.Send, room, enqueueArgs(p, producer, ackTimeout, payloads)...)
	if err != nil {
		return Enqueued{}, err
	}
	return enqueueReply(v, room)
}

// enqueueArgs are send.lua's own arguments (after the common part).
func enqueueArgs(p int, producer string, ackTimeout time.Duration, payloads [][]byte) []any {
	args := make([]any, 0, 2+len(payloads))
	if ackTimeout > 0 {
		args = append(args, strconv.Itoa(p)+":"+strconv.FormatInt(ackTimeout.Milliseconds(), 10), producer)
	} else {
		args = append(args, p, producer)
	}
	for _, pl := range payloads {
		args = append(args, pl)
	}
	return args
}

func enqueueReply(v []any, room string) (Enqueued, error) {
	switch st := str(v, sendStatus); st {
	case sferr.StatusOK:
	case sferr.StatusRoomFull:
		return Enqueued{}, &Refused{Status: st, Limit: int(u64(v, roomFullLimit)), Pending: int(u64(v, roomFullPending))}
	case sferr.StatusTooLarge:
		return Enqueued{}, &Refused{Status: st, Index: int(u64(v, tooLargeIndex)), Size: int(u64(v, tooLargeSize)), Limit: int(u64(v, tooLargeLimit))}
	default:
		return Enqueued{}, fmt.Errorf("syncfanout: room %q: %w", room, sferr.FromStatus(st))
	}
	return Enqueued{
		Seq: u64(v, sendSeq), Epoch: str(v, sendEpoch), Released: int(u64(v, sendReleased)), At: ms(v, sendNow),
		Appended: appended(v, sendAppended), Dropped: int(u64(v, sendDropped)),
	}, nil
}

// PolicySet describes a policy change.
type PolicySet struct {
	Released int
	Appended Appended
}

// SetPolicy stores a room's policy, given in its text form (checked by
// the caller), records it as a policy event and releases what it allows.
func (b *Barrier) SetPolicy(ctx context.Context, room, policy string) (PolicySet, error) {
	v, err := b.run(ctx, lua.SetPolicy, room, policy)
	if err != nil {
		return PolicySet{}, err
	}
	if err := sferr.FromStatus(str(v, policyStatus)); err != nil {
		return PolicySet{}, fmt.Errorf("syncfanout: room %q: %w", room, err)
	}
	return PolicySet{Released: int(u64(v, policyReleased)), Appended: appended(v, policyAppended)}, nil
}

// PolicyFields are the names, without "p:", of a room's policy fields in
// its meta hash.
var PolicyFields = []string{"window", "quorum", "qfrac", "maxlag", "maxpending", "overflow", "maxpayload", "straggler"}

// Policy reads a room's stored policy fields (by PolicyFields name; absent
// ones left out); stored is false when the room follows the default.
func (b *Barrier) Policy(ctx context.Context, room string) (fields map[string]string, stored bool, err error) {
	names := make([]string, 0, 1+len(PolicyFields))
	names = append(names, "p:set")
	for _, f := range PolicyFields {
		names = append(names, "p:"+f)
	}
	v, err := b.rdb.HMGet(ctx, b.layout.Meta(room), names...).Result()
	if err != nil {
		return nil, false, fmt.Errorf("syncfanout: policy of room %q: %w", room, err)
	}
	flat := make(map[string]string, len(names))
	for i, x := range v {
		if s, ok := x.(string); ok {
			flat[names[i]] = s
		}
	}
	fields, stored = policyFields(flat)
	return fields, stored, nil
}

// policyFields picks a room's policy out of its meta fields.
func policyFields(meta map[string]string) (map[string]string, bool) {
	if _, ok := meta["p:set"]; !ok {
		return nil, false
	}
	out := make(map[string]string, len(PolicyFields))
	for _, f := range PolicyFields {
		if v, ok := meta["p:"+f]; ok {
			out[f] = v
		}
	}
	return out, true
}

// Joined describes a join.
type Joined struct {
	Already bool   // the client was in the room before
	From    string // read the room's stream after this ID
	Epoch   string
	At      time.Time
	// Owed is, for a member that was already in the room and has not acked
	// the in-flight message, that message's entry (before From): deliver it
	// again, or the room waits for an ack that never comes.
	Owed []redis.XMessage
	// Incarnation names a member's membership (the stream ID of the join
	// that made it a member; "" for an observer): ack tokens carry it, and
	// an ack is refused once the member left or was evicted, even if it
	// joined again. Joining while a member keeps it.
	Incarnation string
}

// Join adds client as a voting member, or as an observer.
func (b *Barrier) Join(ctx context.Context, room, client string, observer bool) (Joined, error) {
	role := "m"
	if observer {
		role = "o"
	}
	v, err := b.run(ctx, lua.Join, room, client, role, b.clientTimeout.Milliseconds())
	if err != nil {
		return Joined{}, err
	}
	st := str(v, joinStatus)
	if st != sferr.StatusOK && st != sferr.StatusAlready {
		return Joined{}, sferr.FromStatus(st)
	}
	return Joined{Already: st == sferr.StatusAlready, From: str(v, joinFrom), Epoch: str(v, joinEpoch), At: ms(v, joinNow), Owed: appended(v, joinOwed).Entries, Incarnation: str(v, joinIncarnation)}, nil
}

// Leave removes client from the room; ErrNotMember if it was not there.
func (b *Barrier) Leave(ctx context.Context, room, client string) (released int, err error) {
	v, err := b.run(ctx, lua.Leave, room, client)
	if err != nil {
		return 0, err
	}
	if err := sferr.FromStatus(str(v, leaveStatus)); err != nil {
		return 0, fmt.Errorf("%w: client=%q room=%q", err, client, room)
	}
	return int(u64(v, leaveReleased)), nil
}

// Acked describes an accepted ack.
type Acked struct {
	Released    int       // 1 when this ack completed the barrier and a message followed
	ReleasedSeq uint64    // seq of the message released by this ack
	At          time.Time // server time of the ack
	InFlightAt  time.Time // release time of the acked message
	Appended    Appended
	Completed   bool // nobody is missing any more: the acked message is complete
	// Partial: the room's quorum completes messages without every member,
	// so waiting for the acks of other members gains nothing.
	Partial bool
}

// Ack records client's ack of message seq issued under epoch to the
// client's membership named by incarnation (Joined.Incarnation).
func (b *Barrier) Ack(ctx context.Context, room, client string, seq uint64, epoch, incarnation string) (Acked, error) {
	v, err := b.run(ctx, lua.Ack, room, client, seq, epoch, incarnation)
	if err != nil {
		return Acked{}, err
	}
	return ackReply(v, room, client, seq)
}

// ackReply reads the reply of ack.lua.
func ackReply(v []any, room, client string, seq uint64) (Acked, error) {
	if err := sferr.FromStatus(str(v, ackStatus)); err != nil {
		return Acked{}, fmt.Errorf("%w: client=%q room=%q seq=%d", err, client, room, seq)
	}
	return Acked{Released: int(u64(v, ackReleased)), ReleasedSeq: u64(v, ackReleasedSeq), At: ms(v, ackNow), InFlightAt: ms(v, ackInFlightAt), Appended: appended(v, ackAppended), Completed: u64(v, ackCompleted)&1 == 1, Partial: u64(v, ackCompleted)&2 == 2}, nil
}

// BatchAcked describes a batch of acks: Errs holds, in the order of the
// clients, nil for an accepted ack or the error Ack would have returned.
type BatchAcked struct {
	Errs        []error
	Released    int
	ReleasedSeq uint64
	At          time.Time
	InFlightAt  time.Time
	Appended    Appended
	Completed   bool // nobody is missing any more: the acked message is complete
	Partial     bool // as Acked.Partial
}

// AckBatch records, in one script call, the acks of several clients for
// message seq issued under epoch; incarnations[i] is the membership of
// clients[i] its token was issued under. It returns an error only when the
// call itself failed; refused acks are in Errs.
func (b *Barrier) AckBatch(ctx context.Context, room string, seq uint64, epoch string, clients, incarnations []string) (BatchAcked, error) {
	if len(incarnations) != len(clients) {
		return BatchAcked{}, fmt.Errorf("%w: %d clients, %d incarnations", sferr.ErrInvalidBatch, len(clients), len(incarnations))
	}
	extra := make([]any, 0, 2*len(clients)+2)
	extra = append(extra, epoch, seq)
	for _, c := range clients {
		extra = append(extra, c)
	}
	for _, inc := range incarnations {
		extra = append(extra, inc)
	}
	v, err := b.run(ctx, lua.AckBatch, room, extra...)
	if err != nil {
		return BatchAcked{}, err
	}
	if len(v) < ackBatchRefused || len(v)%2 != 0 {
		return BatchAcked{}, fmt.Errorf("syncfanout: room %q: ack batch reply has %d elements", room, len(v))
	}
	res := BatchAcked{
		Released: int(u64(v, ackReleased)), ReleasedSeq: u64(v, ackReleasedSeq), At: ms(v, ackNow), InFlightAt: ms(v, ackInFlightAt),
		Appended: appended(v, ackAppended), Completed: u64(v, ackCompleted)&1 == 1, Partial: u64(v, ackCompleted)&2 == 2, Errs: make([]error, len(clients)),
	}
	refuse := func(i int, status string) {
		if err := sferr.FromStatus(status); err != nil {
			res.Errs[i] = fmt.Errorf("%w: client=%q room=%q seq=%d", err, clients[i], room, seq)
		}
	}
	if st := str(v, ackStatus); st != sferr.StatusOK {
		for i := range clients {
			refuse(i, st)
		}
		return res, nil
	}
	// Only the refused clients are listed: position (1-based), status.
	for j := ackBatchRefused; j+1 < len(v); j += 2 {
		i := int(u64(v, j)) - 1
		if i < 0 || i >= len(clients) {
			return BatchAcked{}, fmt.Errorf("syncfanout: room %q: ack batch reply names client %d of %d", room, i+1, len(clients))
		}
		refuse(i, str(v, j+1))
	}
	return res, nil
}

// Heartbeat extends the deadlines of clients in room and reports, for each,
// whether it is still in the room.
func (b *Barrier) Heartbeat(ctx context.Context, room string, clients []string) ([]bool, error) {
	extra := make([]any, 0, len(clients)+1)
	extra = append(extra, b.clientTimeout.Milliseconds())
	for _, c := range clients {
		extra = append(extra, c)
	}
	v, err := b.run(ctx, lua.Heartbeat, room, extra...)
	if err != nil {
		return nil, err
	}
	alive := make([]bool, len(clients))
	for i := range clients {
		alive[i] = u64(v, heartbeatAlive+i) == 1
	}
	return alive, nil
}

// Reap evicts the expired members of a room and releases what it can. A
// room idle past its expiry is deleted (expired); an idle room's stream is
// trimmed to StreamMaxAge.
func (b *Barrier) Reap(ctx context.Context, room string) (evicted, released int, expired bool, err error) {
	v, err := b.run(ctx, lua.Reap, room)
	if err != nil {
		return 0, 0, false, err
	}
	return int(u64(v, reapEvicted)), int(u64(v, reapReleased)), u64(v, reapDeleted) == 1, nil
}

// Due returns up to limit rooms of a shard whose earliest deadline passed.
func (b *Barrier) Due(ctx context.Context, shard, limit int) ([]string, error) {
	v, err := b.cfg.Engine.Run(ctx, b.rdb, lua.Due, []string{b.layout.ShardDue(shard)}, limit).Slice()
	if err != nil {
		return nil, fmt.Errorf("syncfanout: shard %d: %w", shard, err)
	}
	rooms := make([]string, 0, len(v))
	for i := dueRooms; i < len(v); i++ {
		rooms = append(rooms, str(v, i))
	}
	return rooms, nil
}

// Reply helpers: scripts return integers, strings or nil (Lua false).

func str(v []any, i int) string {
	if i >= len(v) {
		return ""
	}
	switch x := v[i].(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func u64(v []any, i int) uint64 {
	if i >= len(v) {
		return 0
	}
	switch x := v[i].(type) {
	case int64:
		if x < 0 {
			return 0
		}
		return uint64(x)
	case string:
		n, _ := strconv.ParseUint(x, 10, 64)
		return n
	}
	return 0
}

func ms(v []any, i int) time.Time {
	n := u64(v, i)
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(n))
}
