package queue_test

// TestModelRandomized runs a random sequence of operations against Redis,
// through the public API, and against a small reference model of the rules
// of docs/semantics.md written in plain Go, and compares what can be observed
// after every step: the room state, the pending order, the new entries of
// the delivery stream and what every subscription receives.
//
// Clients live in a Queue ("qs") whose heartbeat loop never fires during
// the test (an hour's interval), so whether a member stays alive is
// decided by the test alone: the main Queue ("q", ClientTimeout two
// minutes) joins it and pings it. A rare "advance" step pings some members
// one last time through a Queue with ClientTimeout 1s ("qv"), stops
// pinging them and waits until they are evicted. Which evictions share one script call is
// up to the timing of housekeeping and heartbeats, so the model replays
// the evictions in the order the stream shows them; everything else the
// model predicts on its own.
//
// Policy steps set window and quorum policies and, now and then, a
// backlog limit (MaxPending with each Overflow), a per-room payload limit
// and the straggler policy Skip on top; the model refuses and drops as the
// rules say and compares the drop events and Stats.Dropped.
//
// Ack deadlines (rules 26 and 27) without wall-clock assertions: sends
// carry, now and then, an AckDeadline of an hour, which never passes
// during a run but must show as RoomState.InFlight.AckDeadline exactly
// while its message is the oldest in flight. A "deadline" step takes a
// room with members and nothing pending or in flight, sends a message
// without a deadline and one with the shortest (10ms), and has its
// members ack at random: some the second (cumulatively both), some the
// first, some nothing, until the model says an ack made the second the
// oldest in flight, which arms its deadline (or completed it). Nothing
// touches the room after that ack until the server clock is past its
// reply time plus 10ms; then a ping of a member runs the room's due
// processing (or housekeeping already did: the outcome is the same), and
// the model predicts the stragglers' eviction or skip from the acks it
// took. No step leaves a short deadline behind, so whatever else runs
// later cannot see one pass. A "release" step is an operator's force
// release, which the model treats as the same skip (rule 27).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

var mdlSeedFlag = flag.Uint64("seed", 0, "seed of TestModelRandomized (0: from the clock; env SYNCFANOUT_SEED works too)")

const (
	mdlOps = 2000
	// mdlClientTimeout is the deadline an advance step's last ping gives
	// its victims, which then time out.
	mdlClientTimeout = time.Second
	// mdlAliveTimeout is the deadline every other Subscribe and Ping sets:
	// long enough that no member times out unless an advance step means
	// it to, however long a loaded machine stalls the test between pings
	// (with 1s, a stall of a second evicted members unplanned).
	mdlAliveTimeout = 2 * time.Minute
	// mdlKeepalive is how stale a member's last ping may get before the
	// test pings it again.
	mdlKeepalive = 200 * time.Millisecond
	// Advance steps wait about ClientTimeout each: a few per run, at
	// random points of the sequence.
	mdlAdvances = 6
	mdlWait     = 15 * time.Second // bound of every single wait
)

func mdlSeed(t *testing.T) uint64 {
	if *mdlSeedFlag != 0 {
		return *mdlSeedFlag
	}
	if v := os.Getenv("SYNCFANOUT_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "SYNCFANOUT_SEED=%q", v)
		return n
	}
	return uint64(time.Now().UnixNano())
}

// ---- the reference model ----

type mdlMsg struct {
	seq      uint64
	prio     int
	producer string
	payload  string
}

type mdlEvent struct {
	typ      streams.Type
	msg      mdlMsg // Message, OutOfBand
	client   string // Join, Leave, Evict
	reason   string // Leave, Evict
	observer bool   // Join
	policy   string // Policy: its text form
	size     int    // Dropped: payload bytes (msg: seq, prio, producer; reason: the overflow policy)
	actor    string // ForceRelease (msg: seq; reason: the operator's)
	missing  string // ForceRelease: the members excused, sorted, "\n"-joined
}

func (e mdlEvent) String() string {
	switch e.typ {
	case streams.Message:
		return fmt.Sprintf("message %d (p%d)", e.msg.seq, e.msg.prio)
	case streams.OutOfBand:
		return fmt.Sprintf("oob %d", e.msg.seq)
	}
	return fmt.Sprintf("%s %s %s", e.typ, e.client, e.reason)
}

// mdlRoom is one room of the model.
type mdlRoom struct {
	name      string
	seq       uint64
	pending   [queue.MaxPriority + 1][]mdlMsg
	members   map[string]bool // the voting members (the value is unused)
	gen       map[string]int  // client -> its memberships so far: tokens of an earlier one are stale
	observers map[string]bool
	inflight  uint64 // the oldest message not complete; 0: none
	// The barrier as positions (project rules window-* and quorum-*): the
	// messages released to members are numbered from 1 (rel[n-1] is the
	// seq of number n), pos is how far each member acked (cumulatively; a
	// joiner starts at the last number), cn the last number complete and
	// base the last number no longer tracked. Lock-step is window 1 with
	// every member's ack.
	pol queue.Policy
	// dropped counts the messages the overflow policy dropped (rule 24),
	// skipped the stragglers skipped (rule 27).
	dropped, skipped uint64
	// deadline holds the messages sent with an AckDeadline (rule 26).
	deadline map[uint64]bool
	rel      []uint64
	pos      map[string]int
	cn       int
	base     int
	stream   []mdlEvent
	// inbox holds, per client, what its subscription has yet to yield:
	// deliveries, then possibly the leave or evict that ends it.
	inbox map[string][]mdlEvent
}

func newMdlRoom(name string) *mdlRoom {
	return &mdlRoom{name: name, members: map[string]bool{}, gen: map[string]int{}, observers: map[string]bool{}, inbox: map[string][]mdlEvent{}, pos: map[string]int{}, deadline: map[uint64]bool{}}
}

func (r *mdlRoom) add(ev mdlEvent) {
	r.stream = append(r.stream, ev)
	switch ev.typ {
	case streams.Message, streams.OutOfBand:
		for c := range r.members {
			r.inbox[c] = append(r.inbox[c], ev)
		}
		for c := range r.observers {
			r.inbox[c] = append(r.inbox[c], ev)
		}
	case streams.Leave, streams.Evict:
		r.inbox[ev.client] = append(r.inbox[ev.client], ev)
	}
}

func (r *mdlRoom) pendingCount() int {
	n := 0
	for _, l := range r.pending {
		n += len(l)
	}
	return n
}

// order lists the pending messages in release order.
func (r *mdlRoom) order() []mdlMsg {
	var out []mdlMsg
	for _, l := range r.pending {
		out = append(out, l...)
	}
	return out
}

func (r *mdlRoom) pop() (mdlMsg, bool) {
	for p, l := range r.pending {
		if len(l) > 0 {
			r.pending[p] = l[1:]
			return l[0], true
		}
	}
	return mdlMsg{}, false
}

// settle is the release step that ends every state change (rules 2, 6, 8
// and the window and quorum rules): complete what Q members' positions
// reach, release while fewer than Window messages are in flight, evict
// members more than MaxLag behind, and again until nobody is evicted.
func (r *mdlRoom) settle() {
	for {
		rn := len(r.rel)
		if len(r.members) == 0 {
			r.cn = rn
			// Nobody to wait for: everything goes straight to the stream.
			for {
				m, ok := r.pop()
				if !ok {
					break
				}
				r.add(mdlEvent{typ: streams.Message, msg: m})
			}
		} else {
			ps := make([]int, 0, len(r.pos))
			for _, p := range r.pos {
				ps = append(ps, p)
			}
			slices.Sort(ps)
			slices.Reverse(ps)
			if k := ps[r.quorum()-1]; k > r.cn {
				r.cn = min(k, rn)
			}
			for len(r.rel)-r.cn < max(r.pol.Window, 1) {
				m, ok := r.pop()
				if !ok {
					break
				}
				r.add(mdlEvent{typ: streams.Message, msg: m})
				r.rel = append(r.rel, m.seq)
			}
		}
		var lagging []string
		limit := r.pol.MaxLag
		if limit == 0 {
			limit = max(r.pol.Window, queue.DefaultMaxLag)
		}
		for c, p := range r.pos {
			if len(r.rel)-p > limit {
				lagging = append(lagging, c)
			}
		}
		if len(lagging) == 0 {
			break
		}
		sort.Strings(lagging)
		for _, c := range lagging {
			r.drop(c)
			r.add(mdlEvent{typ: streams.Evict, client: c, reason: queue.EvictReasonMaxLag})
		}
	}
	r.inflight = 0
	if r.cn < len(r.rel) {
		r.inflight = r.rel[r.cn]
	}
	r.base = r.cn
	for _, p := range r.pos {
		r.base = min(r.base, p)
	}
}

// quorum is how many members' positions complete a message.
func (r *mdlRoom) quorum() int {
	n := len(r.members)
	switch {
	case r.pol.Quorum > 0:
		return min(r.pol.Quorum, n)
	case r.pol.QuorumFraction > 0:
		return min(n, max(1, int(math.Ceil(r.pol.QuorumFraction*float64(n)-1e-9))))
	}
	return n
}

func (r *mdlRoom) drop(c string) {
	delete(r.members, c)
	delete(r.pos, c)
}

// tracked returns the release number of message seq while acks of it are
// taken: above base.
func (r *mdlRoom) tracked(seq uint64) (int, bool) {
	for n := r.base + 1; n <= len(r.rel); n++ {
		if r.rel[n-1] == seq {
			return n, true
		}
	}
	return 0, false
}

// setPolicy replaces the room's policy (SetPolicy): a policy event, then
// what the new policy releases.
func (r *mdlRoom) setPolicy(p queue.Policy) {
	r.pol = p
	r.add(mdlEvent{typ: streams.Policy, policy: p.String()})
	r.settle()
}

// late lists the members that have not acked the oldest message in
// flight, sorted.
func (r *mdlRoom) late() []string {
	var out []string
	for c := range r.members {
		if r.pos[c] <= r.cn {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// deadlinePassed is the due processing once the oldest message's ack
// deadline passed (rule 27): its stragglers are evicted (ack-timeout) or,
// with Skip, named in skip events and excused from it.
func (r *mdlRoom) deadlinePassed() {
	late := r.late()
	for _, c := range late {
		if r.pol.Straggler == queue.Skip {
			r.add(mdlEvent{typ: streams.Skipped, msg: mdlMsg{seq: r.inflight}, client: c, reason: "ack-deadline"})
			r.pos[c] = r.cn + 1
			r.skipped++
		} else {
			r.drop(c)
			r.add(mdlEvent{typ: streams.Evict, client: c, reason: "ack-timeout"})
		}
	}
	r.settle()
}

// forceRelease is an operator's Release: the skip of rule 27, made by hand.
func (r *mdlRoom) forceRelease(actor, reason string) ([]string, error) {
	if r.inflight == 0 {
		return nil, queue.ErrNoInFlight
	}
	late := r.late()
	r.add(mdlEvent{typ: streams.ForceRelease, msg: mdlMsg{seq: r.inflight}, actor: actor, reason: reason, missing: strings.Join(late, "\n")})
	for _, c := range late {
		r.pos[c] = r.cn + 1
	}
	r.settle()
	if late == nil {
		late = []string{}
	}
	return late, nil
}

// send enqueues a message within the room's policy: a payload above
// MaxPayloadBytes, or one more message than MaxPending with Reject, is
// refused with nothing changed; the dropping overflow policies drop until
// the backlog fits (rules 23 to 25).
func (r *mdlRoom) send(prio int, producer, payload string) (uint64, error) {
	return r.sendDeadline(prio, producer, payload, false)
}

// sendDeadline is send of a message with its own ack deadline or not.
func (r *mdlRoom) sendDeadline(prio int, producer, payload string, deadline bool) (uint64, error) {
	p := r.pol
	if p.MaxPayloadBytes > 0 && len(payload) > p.MaxPayloadBytes {
		return 0, queue.ErrPayloadTooLarge
	}
	if p.MaxPending > 0 && p.Overflow == queue.Reject && r.pendingCount()+1 > p.MaxPending {
		return 0, queue.ErrRoomFull
	}
	r.seq++
	if deadline {
		r.deadline[r.seq] = true
	}
	r.pending[prio] = append(r.pending[prio], mdlMsg{seq: r.seq, prio: prio, producer: producer, payload: payload})
	for p.MaxPending > 0 && r.pendingCount() > p.MaxPending {
		var lvl, at int
		switch p.Overflow {
		case queue.DropOldest:
			lvl = -1
			for l, list := range r.pending {
				if len(list) > 0 && (lvl < 0 || list[0].seq < r.pending[lvl][0].seq) {
					lvl = l
				}
			}
		case queue.DropLowestPriority:
			for l := range r.pending {
				if len(r.pending[l]) > 0 {
					lvl = l
				}
			}
			at = len(r.pending[lvl]) - 1
		}
		m := r.pending[lvl][at]
		r.pending[lvl] = slices.Delete(r.pending[lvl], at, at+1)
		r.add(mdlEvent{typ: streams.Dropped, msg: mdlMsg{seq: m.seq, prio: m.prio, producer: m.producer}, reason: p.Overflow.String(), size: len(m.payload)})
		r.dropped++
	}
	r.settle()
	return r.seq, nil
}

// oob appends an out-of-band message; the room's MaxPayloadBytes applies
// (rule 25).
func (r *mdlRoom) oob(producer, payload string) (uint64, error) {
	if r.pol.MaxPayloadBytes > 0 && len(payload) > r.pol.MaxPayloadBytes {
		return 0, queue.ErrPayloadTooLarge
	}
	r.seq++
	r.add(mdlEvent{typ: streams.OutOfBand, msg: mdlMsg{seq: r.seq, producer: producer, payload: payload}})
	return r.seq, nil
}

// join adds a member; one that joins mid-flight does not owe the ack of
// the in-flight message (rule 5). Joining again changes nothing.
func (r *mdlRoom) join(c string) {
	if _, ok := r.members[c]; ok {
		return
	}
	r.members[c] = true
	r.pos[c] = len(r.rel)
	r.gen[c]++
	r.add(mdlEvent{typ: streams.Join, client: c})
	r.settle()
}

func (r *mdlRoom) observe(c string) {
	r.observers[c] = true
	r.add(mdlEvent{typ: streams.Join, client: c, observer: true})
	r.settle()
}

func (r *mdlRoom) leave(c string) error {
	if _, ok := r.members[c]; !ok {
		return queue.ErrNotMember
	}
	r.drop(c)
	r.add(mdlEvent{typ: streams.Leave, client: c, reason: "leave"})
	r.settle()
	return nil
}

// evict removes a member whose heartbeat deadline passed; the caller
// settles once the evictions of one script call are done.
func (r *mdlRoom) evict(c string) {
	r.drop(c)
	r.add(mdlEvent{typ: streams.Evict, client: c, reason: "timeout"})
}

// ack takes c's ack of seq with a token delivered to c's membership gen.
func (r *mdlRoom) ack(c string, seq uint64, gen int) error {
	if _, ok := r.members[c]; !ok {
		return queue.ErrNotMember
	}
	n, ok := r.tracked(seq)
	if !ok || gen != r.gen[c] {
		return queue.ErrStaleAck
	}
	r.pos[c] = max(r.pos[c], n)
	r.settle()
	return nil
}

func (r *mdlRoom) missing() []string {
	out := []string{}
	if r.inflight == 0 {
		return out
	}
	for c := range r.members {
		if r.pos[c] <= r.cn {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

func mdlKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// mdlModel is the whole deployment: rooms and each client's room set
// (what Ping heartbeats).
type mdlModel struct {
	rooms       map[string]*mdlRoom
	clientRooms map[string]map[string]bool
}

func (m *mdlModel) subscribed(c, room string) {
	if m.clientRooms[c] == nil {
		m.clientRooms[c] = map[string]bool{}
	}
	m.clientRooms[c][room] = true
}

func (m *mdlModel) forget(c, room string) { delete(m.clientRooms[c], room) }

// ping returns the rooms Ping reports the client gone from, and whether
// the client is unknown (in no room at all).
func (m *mdlModel) ping(c string) (gone []string, unknown bool) {
	rooms := m.clientRooms[c]
	if len(rooms) == 0 {
		return nil, true
	}
	for room := range rooms {
		r := m.rooms[room]
		if _, ok := r.members[c]; !ok && !r.observers[c] {
			gone = append(gone, room)
		}
	}
	for _, room := range gone {
		delete(rooms, room)
	}
	sort.Strings(gone)
	return gone, false
}

// memberRooms lists the rooms where c is a voting member.
func (m *mdlModel) memberRooms(c string) []string {
	var out []string
	for name, r := range m.rooms {
		if _, ok := r.members[c]; ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// ---- the harness ----

type mdlKey struct{ room, client string }

// mdlToken is a delivered ack token and the membership it was delivered to.
type mdlToken struct {
	tok string
	gen int
}

type mdlHarness struct {
	t       *testing.T
	b       *redistest.Backend
	seed    uint64
	rng     *rand.Rand
	ctx     context.Context
	q       *queue.Queue // producer, membership, pings, acks, housekeeping
	qv      *queue.Queue // the advance steps' last ping of their victims
	qs      *queue.Queue // hosts the subscriptions; never beats on its own
	layout  *keys.Layout
	model   *mdlModel
	rooms   []string
	clients []string

	subs   map[mdlKey]*queue.Subscription
	subGen map[mdlKey]int                 // the membership (mdlRoom.gen) of each subscription
	tokens map[mdlKey]map[uint64]mdlToken // kept after a subscription ends
	// refreshed is when the test last set a member's deadline in a room
	// (by Subscribe or Ping), taken before the call: a lower bound.
	refreshed map[mdlKey]time.Time
	position  map[string]string // room -> last stream ID compared
	compared  map[string]int    // room -> model events compared

	op         int
	trail      []string // the latest operations, for failure reports
	advanceAt  map[int]bool
	advanceDue bool // an advance step found nobody to silence: try again
	advances   int
	maxGap     time.Duration // longest time a member went without a ping
	counts     struct{ sent, oob, acked, stale, notMember, invalid, delivered uint64 }
	// What the policies exercised: checks that saw several messages in
	// flight, acks of a message already complete (a quorum's late acks),
	// evictions for lag.
	// Ack deadlines that passed, the stragglers they evicted, force
	// releases.
	policyCounts struct{ wide, late, maxLag, deadlines, ackTimeout, forced int }
}

// at prefixes a failure message with what is needed to reproduce it.
func (h *mdlHarness) at(format string, args ...any) string {
	return fmt.Sprintf("seed=%d backend=%s op=%d: %s", h.seed, h.b.Name, h.op, fmt.Sprintf(format, args...))
}

func (h *mdlHarness) note(format string, args ...any) {
	h.trail = append(h.trail, fmt.Sprintf("#%d ", h.op)+fmt.Sprintf(format, args...))
	if len(h.trail) > 40 {
		h.trail = h.trail[1:]
	}
}

func TestModelRandomized(t *testing.T) {
	t.Parallel()
	seed := mdlSeed(t)
	t.Logf("seed %d (replay with -seed=%d or SYNCFANOUT_SEED=%d)", seed, seed, seed)
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		h := newMdlHarness(t, b, seed)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("seed %d; longest gap between pings %v (ClientTimeout %v); the last operations:\n  %s",
					seed, h.maxGap, mdlAliveTimeout, strings.Join(h.trail, "\n  "))
			}
		})
		h.run()
	})
}

func newMdlHarness(t *testing.T, b *redistest.Backend, seed uint64) *mdlHarness {
	quiet := slog.New(slog.DiscardHandler)
	h := &mdlHarness{
		t: t, b: b, seed: seed,
		rng:       rand.New(rand.NewPCG(seed, 0x5eed)),
		ctx:       testContextWithin(t, 3*time.Minute),
		layout:    layoutOf(t, b, 0),
		model:     &mdlModel{rooms: map[string]*mdlRoom{}, clientRooms: map[string]map[string]bool{}},
		rooms:     []string{"model:a", "model b", "model::c"},
		clients:   []string{"c0", "c:1", "c::2", "c3", "c4", "c 5"},
		subs:      map[mdlKey]*queue.Subscription{},
		subGen:    map[mdlKey]int{},
		tokens:    map[mdlKey]map[uint64]mdlToken{},
		refreshed: map[mdlKey]time.Time{},
		position:  map[string]string{},
		compared:  map[string]int{},
		advanceAt: map[int]bool{},
	}
	for len(h.advanceAt) < mdlAdvances {
		h.advanceAt[50+h.rng.IntN(mdlOps-100)] = true
	}
	h.q = setupOn(t, b.Client, b.Prefix, queue.Options{ClientTimeout: mdlAliveTimeout, StreamMaxLen: -1, Logger: quiet})
	h.qv = setupOn(t, b.NewClient(t), b.Prefix, queue.Options{ClientTimeout: mdlClientTimeout, StreamMaxLen: -1, Logger: quiet})
	h.qs = setupOn(t, b.NewClient(t), b.Prefix, queue.Options{
		ClientTimeout: 2 * time.Hour, HeartbeatInterval: time.Hour, DisableHousekeeping: true,
		StreamMaxLen: -1, Logger: quiet,
	})
	for _, room := range h.rooms {
		h.model.rooms[room] = newMdlRoom(room)
		h.position[room] = "0-0"
		// An observer per room sees every delivery of the whole run.
		obs := "observer@" + room
		s, err := h.qs.Join(h.ctx, room, queue.AsObserver(), queue.WithClientID(obs))
		require.NoError(t, err)
		h.subs[mdlKey{room, obs}] = s
		h.model.rooms[room].observe(obs)
		h.model.subscribed(obs, room)
		h.checkRoom(room)
	}
	return h
}

func (h *mdlHarness) run() {
	for h.op = 1; h.op <= mdlOps; h.op++ {
		h.keepalive()
		touched := h.step()
		h.drain()
		for _, room := range touched {
			h.checkRoom(room)
		}
	}
	h.op = 0
	// The full history of every room, from the start, against the model's.
	for _, room := range h.rooms {
		var got []streams.Event
		for ev, err := range streams.History(h.ctx, h.b.Client, h.layout.Stream(room), room, streams.Range{}) {
			require.NoError(h.t, err, h.at("history of %q", room))
			got = append(got, ev)
		}
		want := h.model.rooms[room].stream
		require.Len(h.t, got, len(want), h.at("history length of %q", room))
		for i := range want {
			h.sameEvent(room, i, want[i], got[i])
			if want[i].reason == queue.EvictReasonMaxLag {
				h.policyCounts.maxLag++
			}
		}
	}
	// Nothing is left over in any subscription: the next delivery of every
	// one of them is a last out-of-band message.
	for _, room := range h.rooms {
		id, err := h.q.SendOutOfBand(h.ctx, room, []byte("the end"))
		require.NoError(h.t, err, h.at("final oob"))
		h.counts.oob++
		want, err := h.model.rooms[room].oob("", "the end")
		require.NoError(h.t, err)
		require.Equal(h.t, want, id, h.at("final oob ID"))
	}
	h.drain()
	st := h.q.Stats()
	require.Equal(h.t, h.counts.sent, st.Sent, h.at("Stats.Sent"))
	var dropped uint64
	for _, r := range h.model.rooms {
		dropped += r.dropped
	}
	require.Equal(h.t, dropped, st.Dropped, h.at("Stats.Dropped"))
	h.t.Logf("backlog limits: %d messages dropped", dropped)
	var skipped uint64
	for _, r := range h.model.rooms {
		skipped += r.skipped
	}
	mt, err := h.q.Metrics(h.ctx, 0)
	require.NoError(h.t, err)
	require.EqualValues(h.t, skipped, mt.Skipped, h.at("Metrics.Skipped"))
	require.Equal(h.t, h.counts.oob, st.OutOfBand, h.at("Stats.OutOfBand"))
	require.Equal(h.t, h.counts.acked, st.Acked, h.at("Stats.Acked"))
	require.Equal(h.t, h.counts.stale, st.AckStale, h.at("Stats.AckStale"))
	require.Equal(h.t, h.counts.notMember, st.AckNotMember, h.at("Stats.AckNotMember"))
	require.Equal(h.t, h.counts.invalid, st.AckInvalid, h.at("Stats.AckInvalid"))
	require.Equal(h.t, h.counts.delivered, h.qs.Stats().Delivered, h.at("subscriptions' Stats.Delivered"))
	h.t.Logf("%d operations, %d advance steps, %d sends, %d oob, %d acks, %d deliveries checked; longest gap between pings %v",
		mdlOps, h.advances, h.counts.sent, h.counts.oob, h.counts.acked, h.counts.delivered, h.maxGap.Round(time.Millisecond))
	h.t.Logf("policies: %d checks with several messages in flight, %d late acks, %d evictions for lag",
		h.policyCounts.wide, h.policyCounts.late, h.policyCounts.maxLag)
	h.t.Logf("deadlines: %d passed, %d stragglers evicted, %d skipped; %d force releases",
		h.policyCounts.deadlines, h.policyCounts.ackTimeout, skipped, h.policyCounts.forced)
}

// keepalive pings every member whose last ping is getting old.
func (h *mdlHarness) keepalive() {
	for _, c := range h.clients {
		if len(h.model.memberRooms(c)) == 0 {
			continue
		}
		var oldest time.Time
		for _, room := range h.model.memberRooms(c) {
			if at := h.refreshed[mdlKey{room, c}]; oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
		if gap := time.Since(oldest); gap > mdlKeepalive {
			// A long gap means the machine stalled the test: the failure
			// report says so.
			h.maxGap = max(h.maxGap, gap)
			h.ping(c)
		}
	}
}

// ping runs Ping on Redis and on the model and compares the outcome.
func (h *mdlHarness) ping(c string) { h.pingOn(h.q, c) }

// pingOn pings through q, which sets q's ClientTimeout as c's deadline.
func (h *mdlHarness) pingOn(q *queue.Queue, c string) {
	at := time.Now()
	for _, room := range h.model.memberRooms(c) {
		h.refreshed[mdlKey{room, c}] = at
	}
	err := q.Ping(h.ctx, c)
	gone, unknown := h.model.ping(c)
	switch {
	case unknown:
		require.ErrorIs(h.t, err, queue.ErrUnknownClient, h.at("Ping %s", c))
	case len(gone) > 0:
		var ev *queue.EvictedError
		require.ErrorAs(h.t, err, &ev, h.at("Ping %s", c))
		require.Equal(h.t, gone, dftSorted(ev.Rooms...), h.at("Ping %s: rooms it is gone from", c))
	default:
		require.NoError(h.t, err, h.at("Ping %s", c))
	}
}

func (h *mdlHarness) pick(list []string) string { return list[h.rng.IntN(len(list))] }

// step runs one random operation and returns the rooms it may have changed.
func (h *mdlHarness) step() []string {
	if h.advanceDue || h.advanceAt[h.op] {
		if h.advance() {
			h.advanceDue = false
			return h.rooms
		}
		h.advanceDue = true
	}
	for {
		x := h.rng.Float64()
		switch {
		case x < 0.30:
			return h.opSend()
		case x < 0.35:
			return h.opOOB()
		case x < 0.47:
			return h.opJoin()
		case x < 0.55:
			return h.opLeave()
		case x < 0.85:
			if rooms, ok := h.opAck(); ok {
				return rooms
			}
		case x < 0.91:
			if rooms, ok := h.opStaleAck(); ok {
				return rooms
			}
		case x < 0.93:
			if rooms, ok := h.opForeignAck(); ok {
				return rooms
			}
		case x < 0.945:
			return h.opPolicy()
		case x < 0.975:
			if rooms, ok := h.opDeadline(); ok {
				return rooms
			}
		case x < 0.985:
			if rooms, ok := h.opForceRelease(); ok {
				return rooms
			}
		default:
			c := h.pick(h.clients)
			h.note("ping %s", c)
			h.ping(c)
			return nil
		}
	}
}

func (h *mdlHarness) opSend() []string {
	room := h.pick(h.rooms)
	producer := h.pick([]string{"", "p1", "p:2", "p::3"})
	payload := fmt.Sprintf("%s/%d", room, h.op)
	opts := []queue.SendOption{queue.Producer(producer)}
	prio := queue.DefaultPriority
	if h.rng.IntN(5) > 0 {
		prio = h.rng.IntN(queue.MaxPriority + 1)
		opts = append(opts, queue.Priority(prio))
	}
	// A deadline that never passes during a run (rule 26's bookkeeping);
	// the deadline step sends the short ones.
	long := h.rng.IntN(4) == 0
	if long {
		opts = append(opts, queue.AckDeadline(time.Hour))
	}
	h.note("send %q p%d deadline %v", room, prio, long)
	h.sendAs(room, prio, producer, payload, long, opts...)
	return []string{room}
}

// sendAs sends on Redis and in the model and compares the outcome; it
// returns the message's ID, 0 if the policy refused it.
func (h *mdlHarness) sendAs(room string, prio int, producer, payload string, deadline bool, opts ...queue.SendOption) uint64 {
	id, err := h.q.Send(h.ctx, room, []byte(payload), opts...)
	r := h.model.rooms[room]
	want, werr := r.sendDeadline(prio, producer, payload, deadline)
	if werr != nil {
		require.ErrorIs(h.t, err, werr, h.at("Send refused by the policy %v", r.pol))
		return 0
	}
	require.NoError(h.t, err, h.at("Send"))
	h.counts.sent++
	require.Equal(h.t, want, id, h.at("Send ID"))
	return id
}

func (h *mdlHarness) opOOB() []string {
	room := h.pick(h.rooms)
	payload := fmt.Sprintf("oob %s/%d", room, h.op)
	h.note("oob %q", room)
	id, err := h.q.SendOutOfBand(h.ctx, room, []byte(payload), queue.Producer("oob"))
	want, werr := h.model.rooms[room].oob("oob", payload)
	if werr != nil {
		require.ErrorIs(h.t, err, werr, h.at("SendOutOfBand refused by the policy"))
		return []string{room}
	}
	require.NoError(h.t, err, h.at("SendOutOfBand"))
	h.counts.oob++
	require.Equal(h.t, want, id, h.at("SendOutOfBand ID"))
	return []string{room}
}

func (h *mdlHarness) opJoin() []string {
	room, c := h.pick(h.rooms), h.pick(h.clients)
	r := h.model.rooms[room]
	if _, ok := r.members[c]; ok {
		// Subscribing again is a heartbeat of that room, nothing else.
		h.note("join %s %q (again)", c, room)
		h.refreshed[mdlKey{room, c}] = time.Now()
		require.NoError(h.t, h.q.Subscribe(h.ctx, c, room), h.at("Subscribe again"))
		h.model.subscribed(c, room)
		return []string{room}
	}
	h.note("join %s %q", c, room)
	// The subscription first (its Queue sets a deadline of hours), then
	// Subscribe through the main Queue, which sets the deadline the test
	// controls with its pings.
	s, err := h.qs.Join(h.ctx, room, queue.WithClientID(c))
	require.NoError(h.t, err, h.at("Join"))
	h.refreshed[mdlKey{room, c}] = time.Now()
	require.NoError(h.t, h.q.Subscribe(h.ctx, c, room), h.at("Subscribe"))
	h.subs[mdlKey{room, c}] = s
	r.join(c)
	h.subGen[mdlKey{room, c}] = r.gen[c]
	h.model.subscribed(c, room)
	return []string{room}
}

func (h *mdlHarness) opLeave() []string {
	room, c := h.pick(h.rooms), h.pick(h.clients)
	r := h.model.rooms[room]
	key := mdlKey{room, c}
	if _, ok := r.members[c]; ok && h.rng.IntN(2) == 0 {
		h.note("leave %s %q (Close)", c, room)
		require.NoError(h.t, h.subs[key].Close(h.ctx), h.at("Subscription.Close"))
		delete(h.subs, key)
		require.NoError(h.t, r.leave(c))
		r.inbox[c] = nil // the subscription is gone with what it had not read
		h.model.forget(c, room)
		return []string{room}
	}
	h.note("leave %s %q (Unsubscribe)", c, room)
	err := h.q.Unsubscribe(h.ctx, c, room)
	if want := r.leave(c); want != nil {
		require.ErrorIs(h.t, err, want, h.at("Unsubscribe %s from %q", c, room))
	} else {
		require.NoError(h.t, err, h.at("Unsubscribe %s from %q", c, room))
	}
	h.model.forget(c, room)
	return []string{room}
}

// opAck acks, for a member holding its token, a message whose acks are
// taken: the in-flight one in lock-step; under a window or a quorum any
// tracked one (acks are cumulative, and repeating one is accepted).
func (h *mdlHarness) opAck() ([]string, bool) {
	room := h.pick(h.rooms)
	r := h.model.rooms[room]
	type held struct {
		c   string
		seq uint64
	}
	var cands []held
	for _, c := range mdlKeys(r.members) {
		for seq, tok := range h.tokens[mdlKey{room, c}] {
			if _, ok := r.tracked(seq); ok && tok.gen == r.gen[c] {
				cands = append(cands, held{c, seq})
			}
		}
	}
	if len(cands) == 0 {
		return nil, false
	}
	slices.SortFunc(cands, func(a, b held) int {
		if a.c != b.c {
			return strings.Compare(a.c, b.c)
		}
		return int(a.seq) - int(b.seq)
	})
	x := cands[h.rng.IntN(len(cands))]
	require.True(h.t, h.ackAs(room, x.c, x.seq))
	return []string{room}, true
}

// ackAs acks message seq for member c, on Redis and in the model, if c
// holds a token of its current membership for it and the message is
// tracked (rule 18); it returns whether it acked.
func (h *mdlHarness) ackAs(room, c string, seq uint64) bool {
	r := h.model.rooms[room]
	tok, ok := h.tokens[mdlKey{room, c}][seq]
	if _, member := r.members[c]; !member || !ok || tok.gen != r.gen[c] {
		return false
	}
	n, tracked := r.tracked(seq)
	if !tracked {
		return false
	}
	h.note("ack %s %q %d", c, room, seq)
	err := h.q.Ack(h.ctx, c, tok.tok)
	require.NoError(h.t, err, h.at("Ack of the tracked message %d by %s", seq, c))
	if n <= r.cn {
		h.policyCounts.late++
	}
	require.NoError(h.t, r.ack(c, seq, tok.gen))
	h.counts.acked++
	return true
}

// opDeadline lets a message's ack deadline pass (rules 26 and 27; see the
// top of this file): in a room with members and nothing pending or in
// flight, a message without a deadline and one with 10ms, acks until the
// model says the second is the oldest in flight (its deadline armed) or
// complete, then the due processing once the server clock is past it.
func (h *mdlHarness) opDeadline() ([]string, bool) {
	var quiet []string
	for _, room := range h.rooms {
		r := h.model.rooms[room]
		if len(r.members) > 0 && r.pendingCount() == 0 && r.inflight == 0 {
			quiet = append(quiet, room)
		}
	}
	if len(quiet) == 0 {
		return nil, false
	}
	room := h.pick(quiet)
	r := h.model.rooms[room]
	h.note("deadline %q (policy %q)", room, r.pol)
	first := h.sendAs(room, queue.DefaultPriority, "d", fmt.Sprintf("d%d", h.op), false, queue.Producer("d"))
	if first == 0 {
		return []string{room}, true // the room's limits refused it: nothing pending, nothing armed
	}
	second := h.sendAs(room, queue.DefaultPriority, "d", fmt.Sprintf("e%d", h.op), true, queue.Producer("d"), queue.AckDeadline(10*time.Millisecond))
	require.NotZero(h.t, second, h.at("the limits took the first message, so the second"))
	h.drain() // the members' tokens
	// armedAt is the server time after the ack that armed the deadline: the
	// deadline is at most 10ms after it.
	var armedAt time.Time
	ack := func(c string, seq uint64) {
		if h.ackAs(room, c, seq) {
			armedAt = serverTime(h.t, h.ctx, h.b.Client)
		}
	}
	members := mdlKeys(r.members)
	h.rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	for _, c := range members {
		if r.inflight != first {
			break
		}
		// The second (cumulative: both), the first only, or nothing yet.
		if seq := []uint64{second, first, 0}[h.rng.IntN(3)]; seq != 0 {
			ack(c, seq)
		}
	}
	// Whoever has not acked the first does now, until it completes.
	for _, c := range mdlKeys(r.members) {
		if r.inflight != first {
			break
		}
		if r.pos[c] <= r.cn {
			ack(c, first)
		}
	}
	require.NotEqual(h.t, first, r.inflight, h.at("every member acked %d", first))
	if r.inflight != second {
		return []string{room}, true // its acks completed it in time
	}
	require.False(h.t, armedAt.IsZero())
	h.checkRoom(room)
	h.policyCounts.deadlines++
	for !serverTime(h.t, h.ctx, h.b.Client).After(armedAt.Add(10 * time.Millisecond)) {
		time.Sleep(2 * time.Millisecond)
	}
	c := mdlKeys(r.members)[0]
	h.note("deadline of %d passed in %q: late %v, ping %s", second, room, r.late(), c)
	if r.pol.Straggler == queue.Evict {
		h.policyCounts.ackTimeout += len(r.late())
	}
	r.deadlinePassed()
	h.ping(c) // its heartbeat runs the due processing, if housekeeping did not
	return []string{room}, true
}

// opForceRelease is an operator's Release of a room's (oldest) in-flight
// message (rule 27).
func (h *mdlHarness) opForceRelease() ([]string, bool) {
	room := h.pick(h.rooms)
	r := h.model.rooms[room]
	h.note("force release %q", room)
	missing, err := h.q.Admin("ops").Release(h.ctx, room, "model")
	want, werr := r.forceRelease("ops", "model")
	if werr != nil {
		require.ErrorIs(h.t, err, werr, h.at("Release"))
		return []string{room}, true
	}
	require.NoError(h.t, err, h.at("Release"))
	require.Equal(h.t, want, append([]string{}, missing...), h.at("Release: the members excused"))
	h.policyCounts.forced++
	return []string{room}, true
}

// opPolicy sets a room's window/quorum policy (or the default back).
func (h *mdlHarness) opPolicy() []string {
	room := h.pick(h.rooms)
	policies := []queue.Policy{
		{}, {}, {Window: 2}, {Window: 3}, {Window: 4, MaxLag: 6},
		{Quorum: 2}, {Window: 2, Quorum: 1, MaxLag: 3}, {QuorumFraction: 0.5, MaxLag: 4},
		{Window: 3, QuorumFraction: 0.7},
	}
	p := policies[h.rng.IntN(len(policies))]
	// Backlog limits (rules 23 to 25) on top, now and then.
	if h.rng.IntN(2) == 0 {
		p.MaxPending = []int{1, 2, 4, 8}[h.rng.IntN(4)]
		p.Overflow = queue.OverflowPolicy(h.rng.IntN(3))
	}
	if h.rng.IntN(4) == 0 {
		// The payloads are "<room>/<op>": this limit refuses some.
		p.MaxPayloadBytes = len(room) + 3
	}
	if h.rng.IntN(2) == 0 {
		p.Straggler = queue.Skip
	}
	h.note("policy %q %s", room, p)
	require.NoError(h.t, h.q.SetPolicy(h.ctx, room, p), h.at("SetPolicy"))
	h.model.rooms[room].setPolicy(p)
	return []string{room}
}

// opStaleAck acks, with a real token, a message that is not in flight, or
// the one in flight with a token of an earlier membership of the client.
func (h *mdlHarness) opStaleAck() ([]string, bool) {
	room := h.pick(h.rooms)
	r := h.model.rooms[room]
	type held struct {
		c   string
		seq uint64
	}
	var old []held
	for _, c := range h.clients {
		for seq, tok := range h.tokens[mdlKey{room, c}] {
			if _, ok := r.tracked(seq); !ok || tok.gen != r.gen[c] {
				old = append(old, held{c, seq})
			}
		}
	}
	if len(old) == 0 {
		return nil, false
	}
	slices.SortFunc(old, func(a, b held) int {
		if a.c != b.c {
			return strings.Compare(a.c, b.c)
		}
		return int(a.seq) - int(b.seq)
	})
	x := old[h.rng.IntN(len(old))]
	h.note("stale ack %s %q %d", x.c, room, x.seq)
	tok := h.tokens[mdlKey{room, x.c}][x.seq]
	err := h.q.Ack(h.ctx, x.c, tok.tok)
	want := r.ack(x.c, x.seq, tok.gen)
	require.ErrorIs(h.t, err, want, h.at("Ack of message %d by %s (in flight: %d)", x.seq, x.c, r.inflight))
	if errors.Is(want, queue.ErrStaleAck) {
		h.counts.stale++
	} else {
		h.counts.notMember++
	}
	return []string{room}, true
}

// opForeignAck presents someone else's token.
func (h *mdlHarness) opForeignAck() ([]string, bool) {
	room := h.pick(h.rooms)
	owner := h.pick(h.clients)
	toks := h.tokens[mdlKey{room, owner}]
	if len(toks) == 0 {
		return nil, false
	}
	seqs := make([]uint64, 0, len(toks))
	for seq := range toks {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	tok := toks[seqs[h.rng.IntN(len(seqs))]].tok
	other := h.pick(h.clients)
	if other == owner {
		return nil, false
	}
	h.note("foreign ack %s with %s's token in %q", other, owner, room)
	require.ErrorIs(h.t, h.q.Ack(h.ctx, other, tok), queue.ErrInvalidToken, h.at("Ack with another client's token"))
	h.counts.invalid++
	return []string{room}, true
}

// advance stops pinging some members and waits until every one of them is
// evicted from all its rooms, while the others are kept alive.
func (h *mdlHarness) advance() bool {
	var alive []string
	for _, c := range h.clients {
		if len(h.model.memberRooms(c)) > 0 {
			alive = append(alive, c)
		}
	}
	if len(alive) == 0 {
		return false
	}
	h.advances++
	victims := map[string]bool{}
	for len(victims) == 0 {
		for _, c := range alive {
			if h.rng.IntN(2) == 0 {
				victims[c] = true
			}
		}
	}
	var survivors []string
	for _, c := range alive {
		if !victims[c] {
			survivors = append(survivors, c)
		}
	}
	h.note("advance: %v go silent, %v stay", mdlKeys(victims), survivors)
	// Ping everyone once in step with the model (it may report rooms they
	// were evicted from earlier): the victims with the short timeout they
	// run out of. Then keep the survivors alive in the background.
	for _, c := range survivors {
		h.ping(c)
	}
	for _, c := range mdlKeys(victims) {
		h.pingOn(h.qv, c)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pingErr error
	pinged := make(map[string]time.Time, len(survivors)) // when the goroutine last pinged each
	wg.Go(func() {
		tick := time.NewTicker(mdlKeepalive)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, c := range survivors {
				at := time.Now()
				if err := h.q.Ping(h.ctx, c); err != nil {
					pingErr = fmt.Errorf("Ping %s: %w", c, err)
					return
				}
				pinged[c] = at
			}
		}
	})
	// Each victim's subscriptions yield what was released before its
	// eviction, then the eviction.
	got := map[mdlKey][]*queue.Message{}
	wctx, cancel := context.WithTimeout(h.ctx, mdlWait)
	for _, c := range mdlKeys(victims) {
		for _, room := range h.model.memberRooms(c) {
			key := mdlKey{room, c}
			got[key] = nil
			for {
				m, err := h.subs[key].Next(wctx)
				if err != nil {
					require.ErrorIs(h.t, err, queue.ErrEvicted, h.at("victim %s in %q", c, room))
					break
				}
				got[key] = append(got[key], m)
			}
		}
	}
	cancel()
	close(stop)
	wg.Wait()
	require.NoError(h.t, pingErr, h.at("a member the test kept alive was evicted"))
	for c, at := range pinged {
		for _, room := range h.model.memberRooms(c) {
			h.refreshed[mdlKey{room, c}] = at
		}
	}

	// Replay the evictions as the streams show them: a run of evict events
	// is one script's reap, followed by that script's release step.
	for _, room := range h.rooms {
		r := h.model.rooms[room]
		evs := h.readStream(room)
		for i := 0; i < len(evs); {
			if evs[i].Type != streams.Evict {
				require.Failf(h.t, "unexpected event", h.at("room %q: %+v while members time out; the model expected %v", room, evs[i], h.pendingModel(room)))
			}
			for ; i < len(evs) && evs[i].Type == streams.Evict; i++ {
				c := evs[i].ClientID
				require.True(h.t, victims[c], h.at("room %q: %s evicted, but it was kept alive", room, c))
				_, member := r.members[c]
				require.True(h.t, member, h.at("room %q: %s evicted while not a member", room, c))
				r.evict(c)
			}
			before := len(r.stream)
			r.settle()
			i += len(r.stream) - before
		}
		h.compareNew(room, evs)
	}
	for key, msgs := range got {
		delete(h.subs, key)
		r := h.model.rooms[key.room]
		want := r.inbox[key.client]
		require.NotEmpty(h.t, want, h.at("%v", key))
		require.Equal(h.t, streams.Evict, want[len(want)-1].typ, h.at("%v ends with its eviction", key))
		require.Len(h.t, msgs, len(want)-1, h.at("deliveries to %v before its eviction", key))
		for i, m := range msgs {
			h.sameDelivery(key, want[i], m)
		}
		r.inbox[key.client] = nil
	}
	return true
}

// drain reads, from every subscription, what the model says it must have
// received by now, and nothing else.
func (h *mdlHarness) drain() {
	keys := make([]mdlKey, 0, len(h.subs))
	for k := range h.subs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b mdlKey) int {
		return strings.Compare(a.room+"\x00"+a.client, b.room+"\x00"+b.client)
	})
	for _, key := range keys {
		r := h.model.rooms[key.room]
		for _, want := range r.inbox[key.client] {
			ctx, cancel := context.WithTimeout(h.ctx, mdlWait)
			m, err := h.subs[key].Next(ctx)
			cancel()
			switch want.typ {
			case streams.Evict:
				require.ErrorIs(h.t, err, queue.ErrEvicted, h.at("%v: want its eviction", key))
				delete(h.subs, key)
			case streams.Leave:
				require.ErrorIs(h.t, err, queue.ErrNotMember, h.at("%v: want its removal", key))
				delete(h.subs, key)
			default:
				require.NoError(h.t, err, h.at("%v: want %v", key, want))
				h.sameDelivery(key, want, m)
			}
		}
		r.inbox[key.client] = nil
	}
}

func (h *mdlHarness) sameDelivery(key mdlKey, want mdlEvent, m *queue.Message) {
	h.counts.delivered++
	got := mdlEvent{typ: streams.Message, msg: mdlMsg{seq: m.ID, prio: m.Priority, producer: m.Producer, payload: string(m.Data())}}
	if m.OutOfBand {
		got.typ = streams.OutOfBand
	}
	if got != want {
		require.Equal(h.t, want, got, h.at("%v: delivery", key))
	}
	observer := h.model.rooms[key.room].observers[key.client]
	if want.typ != streams.Message || observer {
		require.Empty(h.t, m.AckToken, h.at("%v: out-of-band messages and observers carry no token", key))
		return
	}
	require.NotEmpty(h.t, m.AckToken, h.at("%v: token of %d", key, m.ID))
	if h.tokens[key] == nil {
		h.tokens[key] = map[uint64]mdlToken{}
	}
	h.tokens[key][m.ID] = mdlToken{tok: m.AckToken, gen: h.subGen[key]}
}

// readStream returns the room's stream entries after the last one compared.
func (h *mdlHarness) readStream(room string) []streams.Event {
	msgs, err := h.b.Client.XRange(h.ctx, h.layout.Stream(room), "("+h.position[room], "+").Result()
	require.NoError(h.t, err, h.at("XRANGE %q", room))
	out := make([]streams.Event, 0, len(msgs))
	for _, m := range msgs {
		ev, err := streams.Decode(room, m)
		require.NoError(h.t, err, h.at("room %q: entry %s", room, m.ID))
		out = append(out, ev)
	}
	return out
}

// compareNew checks the stream entries read since the last comparison
// against the events the model added since then.
func (h *mdlHarness) compareNew(room string, got []streams.Event) {
	want := h.model.rooms[room].stream[h.compared[room]:]
	if len(got) != len(want) {
		require.Failf(h.t, "stream differs", h.at("room %q: stream has %d new entries %v, the model %d: %v",
			room, len(got), mdlDescribe(got), len(want), want))
	}
	for i := range want {
		h.sameEvent(room, h.compared[room]+i, want[i], got[i])
	}
	h.compared[room] += len(want)
	if len(got) > 0 {
		h.position[room] = got[len(got)-1].ID
	}
}

func mdlDescribe(evs []streams.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		switch ev.Type {
		case streams.Message, streams.OutOfBand:
			out[i] = fmt.Sprintf("%s %d", ev.Type, ev.MessageID)
		default:
			out[i] = fmt.Sprintf("%s %s %s", ev.Type, ev.ClientID, ev.Reason)
		}
	}
	return out
}

// mdlFromStream is what the model would have written for a stream event.
func mdlFromStream(ev streams.Event) mdlEvent {
	out := mdlEvent{typ: ev.Type}
	switch ev.Type {
	case streams.Message, streams.OutOfBand:
		payload, _ := strings.CutPrefix(string(ev.Payload), "r")
		out.msg = mdlMsg{seq: ev.MessageID, prio: ev.Priority, producer: ev.Producer, payload: payload}
		if len(ev.Payload) == 0 || ev.Payload[0] != 'r' {
			out.msg.payload = "(not a []byte payload) " + string(ev.Payload)
		}
	case streams.Policy:
		out.policy = ev.Policy
	case streams.Dropped:
		out.msg = mdlMsg{seq: ev.MessageID, prio: ev.Priority, producer: ev.Producer}
		out.reason, out.size = ev.Reason, ev.Size
	case streams.Skipped:
		out.msg = mdlMsg{seq: ev.MessageID}
		out.client, out.reason = ev.ClientID, ev.Reason
	case streams.ForceRelease:
		out.msg = mdlMsg{seq: ev.MessageID}
		out.actor, out.reason, out.missing = ev.Actor, ev.Reason, strings.Join(ev.Missing, "\n")
	default:
		out.client, out.reason, out.observer = ev.ClientID, ev.Reason, ev.Observer
	}
	return out
}

func (h *mdlHarness) sameEvent(room string, i int, want mdlEvent, got streams.Event) {
	if g := mdlFromStream(got); g != want {
		require.Equal(h.t, want, g, h.at("room %q stream entry %d (%s)", room, i, got.ID))
	}
}

func (h *mdlHarness) pendingModel(room string) string {
	r := h.model.rooms[room]
	return fmt.Sprintf("members %v, in flight %d, pending %d", r.members, r.inflight, r.pendingCount())
}

// mdlView is what the tests compare of a room after each step.
type mdlView struct {
	LastSeq    uint64
	Pending    int
	ByPriority [queue.MaxPriority + 1]int
	InFlight   uint64
	Members    []string
	Missing    []string
	Observers  []string
	Peek       []mdlMsg // in release order
	Window     []uint64 // the messages in flight, oldest first
	Lags       []int    // of Members, in order
	// HasDeadline: the oldest message in flight has an ack deadline.
	HasDeadline bool
}

func (r *mdlRoom) view() mdlView {
	v := mdlView{
		LastSeq: r.seq, Pending: r.pendingCount(), InFlight: r.inflight,
		Members: mdlKeys(r.members), Missing: r.missing(), Observers: mdlKeys(r.observers),
		Peek: r.order(), Window: []uint64{}, HasDeadline: r.deadline[r.inflight],
	}
	if r.cn < len(r.rel) {
		v.Window = slices.Clone(r.rel[r.cn:])
	}
	for _, c := range v.Members {
		v.Lags = append(v.Lags, len(r.rel)-r.pos[c])
	}
	for p, l := range r.pending {
		v.ByPriority[p] = len(l)
	}
	return v
}

// checkRoom compares the observable state of a room with the model's:
// RoomState, Peek and the stream entries added since the last check.
func (h *mdlHarness) checkRoom(room string) {
	st, err := h.q.RoomState(h.ctx, room)
	require.NoError(h.t, err, h.at("RoomState %q", room))
	got := mdlView{
		LastSeq: st.LastSeq, Pending: st.Pending, ByPriority: st.ByPriority, InFlight: dftInFlight(st),
		Members: dftMemberIDs(st), Missing: dftSorted(st.Missing...), Observers: []string{},
		Window: []uint64{}, HasDeadline: st.InFlight != nil && !st.InFlight.AckDeadline.IsZero(),
	}
	for _, f := range st.Window {
		got.Window = append(got.Window, f.Seq)
	}
	for _, m := range st.Members {
		got.Lags = append(got.Lags, m.Lag)
	}
	for _, o := range st.Observers {
		got.Observers = append(got.Observers, o.ClientID)
	}
	sort.Strings(got.Observers)
	pend, err := h.q.Peek(h.ctx, room, 0, 10000)
	require.NoError(h.t, err, h.at("Peek %q", room))
	for _, p := range pend {
		got.Peek = append(got.Peek, mdlMsg{seq: p.ID, prio: p.Priority, producer: p.Producer, payload: string(p.Data())})
	}
	want := h.model.rooms[room].view()
	if len(want.Window) > 1 {
		h.policyCounts.wide++
	}
	if !reflect.DeepEqual(want, got) {
		require.Equal(h.t, want, got, h.at("room %q", room))
	}
	h.compareNew(room, h.readStream(room))
}
