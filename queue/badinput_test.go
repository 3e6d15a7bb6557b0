package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/streams"
)

// docs/semantics.md rule 15: bad input gets a clear error and changes nothing.
// TestBadInputMatrix calls every public entry point with every kind of bad
// input and checks, for each call, a typed error (errors.Is) and a
// keyspace identical before and after (every key of the test's prefix,
// DUMPed, on every master).

var (
	badSecret      = []byte("bad-input-secret-0123456789")
	badOtherSecret = []byte("some-other-secret-0123456789")
	badMaxPayload  = 1024
)

func discardBadLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// badNames are invalid room, client and producer names (the empty one is
// valid for producers and left out for them).
var badNames = map[string]string{
	"empty":               "",
	"too long":            strings.Repeat("x", 257),
	"open brace":          "a{b",
	"close brace":         "a}b",
	"NUL":                 "a\x00b",
	"newline":             "a\nb",
	"C1 control":          "a\u0085b",
	"invalid UTF-8":       "a\xffb",
	"truncated UTF-8":     "a\xc3",
	"UTF-16 surrogate":    "a\xed\xa0\x80b",
	"hash tag look-alike": "{0.0}",
}

// badEnv is what the cases act on: a room with two members and an
// observer, a completed message, an in-flight one and a pending one, a
// subscription, a worker, and closed twins of the Queue, subscription and
// worker.
type badEnv struct {
	b         *redistest.Backend
	q         *Queue
	closedQ   *Queue
	room      string
	a, b2     string // members
	obs       string
	epoch     string
	inc       map[string]string // member -> incarnation
	inflight  uint64
	completed uint64
	sub       *Subscription
	closedSub *Subscription
	w         *Worker
	closedW   *Worker
	canceled  context.Context
}

// tok forges a token the way a subscription issues them.
func (e *badEnv) tok(client string, seq uint64, epoch string, secret []byte) string {
	return token{epoch: epoch, room: e.room, client: client, inc: e.incOf(client), seq: seq}.encode(secret)
}

// incOf returns a member's incarnation, or a well-formed one nobody has.
func (e *badEnv) incOf(client string) string {
	if inc, ok := e.inc[client]; ok {
		return inc
	}
	return "1-0"
}

// keyspace returns every key of the prefix on every master with its DUMP.
func keyspace(ctx context.Context, t *testing.T, b *redistest.Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := b.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for {
			ks, next, err := c.Scan(ctx, cursor, b.Prefix+"*", 1000).Result()
			if err != nil {
				return err
			}
			for _, k := range ks {
				v, err := c.Dump(ctx, k).Result()
				if err != nil && !errors.Is(err, redis.Nil) {
					return err
				}
				out[k] = v
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	})
	require.NoError(t, err)
	return out
}

func keyspaceDiff(before, after map[string]string) []string {
	var diff []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			diff = append(diff, "deleted "+k)
		} else if w != v {
			diff = append(diff, "changed "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diff = append(diff, "created "+k)
		}
	}
	sort.Strings(diff)
	return diff
}

func newBadEnv(ctx context.Context, t *testing.T, b *redistest.Backend) *badEnv {
	t.Helper()
	// Nothing may change the keyspace but the calls under test: no
	// heartbeats (an hour's timeout, beats every half hour), no housekeeping.
	opts := Options{
		Prefix: b.Prefix, ClientTimeout: time.Hour, HeartbeatInterval: 30 * time.Minute,
		DisableHousekeeping: true, AckSecret: badSecret, MaxPayloadBytes: badMaxPayload,
		Logger: discardBadLogger(),
	}
	q, err := New(ctx, b.Client, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	closedQ, err := New(ctx, b.NewClient(t), opts)
	require.NoError(t, err)
	require.NoError(t, closedQ.Close())

	e := &badEnv{b: b, q: q, closedQ: closedQ, room: "bad-room", a: "member-a", b2: "member-b", obs: "observer", inc: map[string]string{}}
	for _, m := range []string{e.a, e.b2} {
		j, err := q.subscribe(ctx, m, e.room, false)
		require.NoError(t, err)
		e.inc[m] = j.Incarnation
	}
	require.NoError(t, q.SubscribeObserver(ctx, e.obs, e.room))
	e.completed, err = q.Send(ctx, e.room, []byte("first"))
	require.NoError(t, err)
	st, err := q.RoomState(ctx, e.room)
	require.NoError(t, err)
	e.epoch = st.Epoch
	require.NoError(t, q.Ack(ctx, e.a, e.tok(e.a, e.completed, e.epoch, badSecret)))
	require.NoError(t, q.Ack(ctx, e.b2, e.tok(e.b2, e.completed, e.epoch, badSecret)))
	e.inflight, err = q.Send(ctx, e.room, []byte("second"))
	require.NoError(t, err)
	_, err = q.Send(ctx, e.room, []byte("third"))
	require.NoError(t, err)
	st, err = q.RoomState(ctx, e.room)
	require.NoError(t, err)
	require.NotNil(t, st.InFlight)
	require.Equal(t, e.inflight, st.InFlight.Seq)
	require.Equal(t, 1, st.Pending)

	e.sub, err = q.Join(ctx, "bad-sub-room")
	require.NoError(t, err)
	e.closedSub, err = q.Join(ctx, "bad-sub-room")
	require.NoError(t, err)
	require.NoError(t, e.closedSub.Close(ctx))
	handler := func(context.Context, string, *Message) error { return nil }
	e.w, err = q.NewWorker(WorkerOptions{HandleMessage: handler})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.w.Close() })
	e.closedW, err = q.NewWorker(WorkerOptions{HandleMessage: handler})
	require.NoError(t, err)
	require.NoError(t, e.closedW.Close())
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	e.canceled = canceled
	return e
}

type badCase struct {
	name string
	call func(ctx context.Context, e *badEnv) error
	want error
}

func badCases() []badCase {
	var cs []badCase
	add := func(want error, name string, call func(ctx context.Context, e *badEnv) error) {
		cs = append(cs, badCase{name: name, call: call, want: want})
	}
	data := []byte("payload")

	// New: invalid options are refused before anything touches Redis.
	newWith := func(mod func(*Options)) func(ctx context.Context, e *badEnv) error {
		return func(ctx context.Context, e *badEnv) error {
			o := Options{Prefix: e.b.Prefix, Logger: discardBadLogger()}
			mod(&o)
			q, err := New(ctx, e.b.Client, o)
			if err == nil {
				_ = q.Close()
			}
			return err
		}
	}
	add(ErrInvalidOption, "New/nil client", func(ctx context.Context, e *badEnv) error {
		_, err := New(ctx, nil, Options{})
		return err
	})
	for name, o := range map[string]func(*Options){
		"prefix with brace":             func(o *Options) { o.Prefix = "a{b" },
		"prefix too long":               func(o *Options) { o.Prefix = strings.Repeat("p", 65) },
		"prefix with control":           func(o *Options) { o.Prefix = "p\x01" },
		"ClientTimeout below 1s":        func(o *Options) { o.ClientTimeout = 999 * time.Millisecond },
		"negative AckTimeout":           func(o *Options) { o.AckTimeout = -time.Second },
		"NumShards too big":             func(o *Options) { o.NumShards = 1025 },
		"NumShards negative":            func(o *Options) { o.NumShards = -1 },
		"MaxPayloadBytes negative":      func(o *Options) { o.MaxPayloadBytes = -1 },
		"StreamMaxLen below -1":         func(o *Options) { o.StreamMaxLen = -2 },
		"StreamMaxAge below 1s":         func(o *Options) { o.StreamMaxAge = time.Millisecond },
		"HousekeepingInterval too long": func(o *Options) { o.HousekeepingInterval = time.Hour },
		"HeartbeatInterval = timeout":   func(o *Options) { o.ClientTimeout = 2 * time.Second; o.HeartbeatInterval = 2 * time.Second },
		"short AckSecret":               func(o *Options) { o.AckSecret = []byte("short") },
		"PreviousAckSecrets, no secret": func(o *Options) { o.PreviousAckSecrets = [][]byte{badOtherSecret} },
		"short PreviousAckSecret":       func(o *Options) { o.AckSecret = badSecret; o.PreviousAckSecrets = [][]byte{[]byte("x")} },
		"negative WaitReplicas":         func(o *Options) { o.WaitReplicas = -1 },
		"WaitTimeout above ReadTimeout": func(o *Options) { o.WaitReplicas = 1; o.WaitTimeout = time.Minute },
		"negative WaitTimeout":          func(o *Options) { o.WaitTimeout = -time.Second },
	} {
		add(ErrInvalidOption, "New/"+name, newWith(o))
	}
	add(ErrShardMismatch, "New/NumShards differs from the stored value", newWith(func(o *Options) { o.NumShards = 8 }))

	rooms := func(method string, call func(ctx context.Context, e *badEnv, room string) error) {
		for name, room := range badNames {
			add(ErrInvalidRoom, method+"/room "+name, func(ctx context.Context, e *badEnv) error { return call(ctx, e, room) })
		}
	}
	clients := func(method string, call func(ctx context.Context, e *badEnv, client string) error) {
		for name, c := range badNames {
			add(ErrInvalidClientID, method+"/client "+name, func(ctx context.Context, e *badEnv) error { return call(ctx, e, c) })
		}
	}
	// Every call that touches Redis: a done context, then a closed Queue.
	lifecycle := func(method string, call func(ctx context.Context, q *Queue, e *badEnv) error) {
		add(context.Canceled, method+"/canceled context", func(ctx context.Context, e *badEnv) error { return call(e.canceled, e.q, e) })
		add(ErrClosed, method+"/after Close", func(ctx context.Context, e *badEnv) error { return call(ctx, e.closedQ, e) })
	}

	// Send and SendOutOfBand.
	sends := map[string]func(q *Queue) func(context.Context, string, any, ...SendOption) (uint64, error){
		"Send": func(q *Queue) func(context.Context, string, any, ...SendOption) (uint64, error) { return q.Send },
		"SendOutOfBand": func(q *Queue) func(context.Context, string, any, ...SendOption) (uint64, error) {
			return q.SendOutOfBand
		},
		// The value under test comes second, after a valid one: one bad
		// message fails the whole batch.
		"SendBatch": func(q *Queue) func(context.Context, string, any, ...SendOption) (uint64, error) {
			return func(ctx context.Context, room string, v any, opts ...SendOption) (uint64, error) {
				ids, err := q.SendBatch(ctx, room, []any{data, v}, opts...)
				if len(ids) > 0 {
					return ids[0], err
				}
				return 0, err
			}
		},
	}
	for name, batch := range map[string][]any{
		"nil":            nil,
		"empty":          {},
		"above MaxBatch": make([]any, MaxBatch+1),
		"above, all good": func() []any {
			b := make([]any, MaxBatch+1)
			for i := range b {
				b[i] = data
			}
			return b
		}(),
	} {
		add(ErrInvalidBatch, "SendBatch/batch "+name, func(ctx context.Context, e *badEnv) error {
			_, err := e.q.SendBatch(ctx, e.room, batch)
			return err
		})
	}
	for method, send := range sends {
		rooms(method, func(ctx context.Context, e *badEnv, room string) error {
			_, err := send(e.q)(ctx, room, data)
			return err
		})
		for name, p := range badNames {
			if p == "" {
				continue // the empty producer is allowed
			}
			add(ErrInvalidProducer, method+"/producer "+name, func(ctx context.Context, e *badEnv) error {
				_, err := send(e.q)(ctx, e.room, data, Producer(p))
				return err
			})
		}
		for name, v := range map[string]any{
			"nil":         nil,
			"nil []byte":  []byte(nil),
			"channel":     make(chan int),
			"func":        func() {},
			"complex":     complex(1, 2),
			"nested func": map[string]any{"f": func() {}},
		} {
			add(ErrEncode, method+"/payload "+name, func(ctx context.Context, e *badEnv) error {
				_, err := send(e.q)(ctx, e.room, v)
				return err
			})
		}
		add(ErrPayloadTooLarge, method+"/oversized []byte", func(ctx context.Context, e *badEnv) error {
			_, err := send(e.q)(ctx, e.room, make([]byte, badMaxPayload+1))
			return err
		})
		add(ErrPayloadTooLarge, method+"/oversized encoded value", func(ctx context.Context, e *badEnv) error {
			_, err := send(e.q)(ctx, e.room, strings.Repeat("x", badMaxPayload))
			return err
		})
		for _, p := range []int{-1, MaxPriority + 1, 1 << 31} {
			add(ErrInvalidPriority, fmt.Sprintf("%s/priority %d", method, p), func(ctx context.Context, e *badEnv) error {
				_, err := send(e.q)(ctx, e.room, data, Priority(p))
				return err
			})
		}
		for _, d := range []time.Duration{-time.Second, 0, 9 * time.Millisecond, 366 * 24 * time.Hour} {
			add(ErrInvalidOption, fmt.Sprintf("%s/AckDeadline %v", method, d), func(ctx context.Context, e *badEnv) error {
				_, err := send(e.q)(ctx, e.room, data, AckDeadline(d))
				return err
			})
		}
		// Headers: bad keys and values, and sets over the limits, whether
		// given one by one or as a map.
		tooMany := map[string]string{}
		for i := range MaxHeaders + 1 {
			tooMany[fmt.Sprint("k", i)] = "v"
		}
		for name, h := range map[string]map[string]string{
			"empty key":                 {"": "v"},
			"key with '='":              {"a=b": "v"},
			"key with a space":          {"a b": "v"},
			"key with a control byte":   {"a\x01": "v"},
			"non-ASCII key":             {"clé": "v"},
			"key too long":              {strings.Repeat("k", MaxHeaderKeyBytes+1): "v"},
			"value not UTF-8":           {"k": "a\xffb"},
			"too many headers":          tooMany,
			"block over MaxHeaderBytes": {"k": strings.Repeat("v", MaxHeaderBytes)},
		} {
			add(ErrInvalidHeader, method+"/headers "+name, func(ctx context.Context, e *badEnv) error {
				_, err := send(e.q)(ctx, e.room, data, Headers(h))
				return err
			})
			if len(h) == 1 {
				for k, v := range h {
					add(ErrInvalidHeader, method+"/header "+name, func(ctx context.Context, e *badEnv) error {
						_, err := send(e.q)(ctx, e.room, data, Header(k, v))
						return err
					})
				}
			}
		}
		lifecycle(method, func(ctx context.Context, q *Queue, e *badEnv) error {
			_, err := send(q)(ctx, e.room, data)
			return err
		})
	}

	// Room policies.
	rooms("SetPolicy", func(ctx context.Context, e *badEnv, room string) error { return e.q.SetPolicy(ctx, room, Policy{}) })
	rooms("Policy", func(ctx context.Context, e *badEnv, room string) error { _, err := e.q.Policy(ctx, room); return err })
	lifecycle("SetPolicy", func(ctx context.Context, q *Queue, e *badEnv) error { return q.SetPolicy(ctx, e.room, Policy{}) })
	lifecycle("Policy", func(ctx context.Context, q *Queue, e *badEnv) error { _, err := q.Policy(ctx, e.room); return err })
	for name, p := range map[string]Policy{
		"negative window":           {Window: -1},
		"quorum and fraction":       {Quorum: 1, QuorumFraction: 1},
		"fraction above 1":          {QuorumFraction: 2},
		"negative MaxPending":       {MaxPending: -1},
		"unknown overflow":          {Overflow: 3},
		"payload above the Queue's": {MaxPayloadBytes: badMaxPayload + 1},
		"unknown straggler":         {Straggler: 2},
	} {
		add(ErrInvalidPolicy, "SetPolicy/"+name, func(ctx context.Context, e *badEnv) error { return e.q.SetPolicy(ctx, e.room, p) })
		if p.MaxPayloadBytes == 0 { // New's Queue has the default payload limit
			add(ErrInvalidPolicy, "New/DefaultPolicy "+name, newWith(func(o *Options) { o.DefaultPolicy = p }))
		}
	}

	lifecycle("CreateClientID", func(ctx context.Context, q *Queue, e *badEnv) error {
		_, err := q.CreateClientID(ctx)
		return err
	})

	// Membership.
	joins := map[string]func(q *Queue) func(context.Context, string, string) error{
		"Subscribe":         func(q *Queue) func(context.Context, string, string) error { return q.Subscribe },
		"SubscribeObserver": func(q *Queue) func(context.Context, string, string) error { return q.SubscribeObserver },
		"Unsubscribe":       func(q *Queue) func(context.Context, string, string) error { return q.Unsubscribe },
	}
	for method, join := range joins {
		rooms(method, func(ctx context.Context, e *badEnv, room string) error { return join(e.q)(ctx, "client", room) })
		clients(method, func(ctx context.Context, e *badEnv, c string) error { return join(e.q)(ctx, c, e.room) })
		lifecycle(method, func(ctx context.Context, q *Queue, e *badEnv) error { return join(q)(ctx, "client", e.room) })
	}
	add(ErrNotMember, "Unsubscribe/not a member", func(ctx context.Context, e *badEnv) error {
		return e.q.Unsubscribe(ctx, "stranger", e.room)
	})

	clients("Ping", func(ctx context.Context, e *badEnv, c string) error { return e.q.Ping(ctx, c) })
	add(ErrUnknownClient, "Ping/unknown client", func(ctx context.Context, e *badEnv) error { return e.q.Ping(ctx, "stranger") })
	lifecycle("Ping", func(ctx context.Context, q *Queue, e *badEnv) error { return q.Ping(ctx, e.a) })

	// Acks, through the Queue and through the Worker.
	acks := map[string]func(e *badEnv) func(context.Context, string, string) error{
		"Ack":        func(e *badEnv) func(context.Context, string, string) error { return e.q.Ack },
		"Worker.Ack": func(e *badEnv) func(context.Context, string, string) error { return e.w.Ack },
	}
	for method, ack := range acks {
		clients(method, func(ctx context.Context, e *badEnv, c string) error {
			return ack(e)(ctx, c, e.tok(e.a, e.inflight, e.epoch, badSecret))
		})
		tokCase := func(want error, name string, client func(e *badEnv) string, tok func(e *badEnv) string) {
			add(want, method+"/token "+name, func(ctx context.Context, e *badEnv) error { return ack(e)(ctx, client(e), tok(e)) })
		}
		memberA := func(e *badEnv) string { return e.a }
		valid := func(e *badEnv) string { return e.tok(e.a, e.inflight, e.epoch, badSecret) }
		tokCase(ErrInvalidToken, "empty", memberA, func(*badEnv) string { return "" })
		tokCase(ErrInvalidToken, "not base64", memberA, func(*badEnv) string { return "not a token!" })
		tokCase(ErrInvalidToken, "oversized", memberA, func(*badEnv) string { return strings.Repeat("A", 5000) })
		tokCase(ErrInvalidToken, "truncated", memberA, func(e *badEnv) string { s := valid(e); return s[:len(s)-3] })
		tokCase(ErrInvalidToken, "one character altered", memberA, func(e *badEnv) string {
			s := []byte(valid(e))
			i := len(s) / 2
			if s[i] == 'A' {
				s[i] = 'B'
			} else {
				s[i] = 'A'
			}
			return string(s)
		})
		tokCase(ErrInvalidToken, "with a line break", memberA, func(e *badEnv) string { s := valid(e); return s[:4] + "\n" + s[4:] })
		tokCase(ErrInvalidToken, "unsigned", memberA, func(e *badEnv) string { return e.tok(e.a, e.inflight, e.epoch, nil) })
		tokCase(ErrInvalidToken, "foreign secret", memberA, func(e *badEnv) string { return e.tok(e.a, e.inflight, e.epoch, badOtherSecret) })
		tokCase(ErrInvalidToken, "issued to another client", func(e *badEnv) string { return e.b2 }, valid)
		tokCase(ErrInvalidToken, "message never sent", memberA, func(e *badEnv) string { return e.tok(e.a, e.inflight+100, e.epoch, badSecret) })
		tokCase(ErrRoomReset, "from before a reset", memberA, func(e *badEnv) string { return e.tok(e.a, e.inflight, "1000000000000000", badSecret) })
		tokCase(ErrStaleAck, "replayed (completed message)", memberA, func(e *badEnv) string { return e.tok(e.a, e.completed, e.epoch, badSecret) })
		tokCase(ErrStaleAck, "from an earlier membership", memberA, func(e *badEnv) string {
			return token{epoch: e.epoch, room: e.room, client: e.a, inc: "1-0", seq: e.inflight}.encode(badSecret)
		})
		tokCase(ErrInvalidToken, "of version 1 (no incarnation)", memberA, func(e *badEnv) string {
			return encodeV1(token{epoch: e.epoch, room: e.room, client: e.a, seq: e.inflight}, badSecret)
		})
		tokCase(ErrObserver, "of an observer", func(e *badEnv) string { return e.obs }, func(e *badEnv) string { return e.tok(e.obs, e.inflight, e.epoch, badSecret) })
		tokCase(ErrNotMember, "of a non-member", func(*badEnv) string { return "stranger" }, func(e *badEnv) string { return e.tok("stranger", e.inflight, e.epoch, badSecret) })
	}
	lifecycle("Ack", func(ctx context.Context, q *Queue, e *badEnv) error {
		return q.Ack(ctx, e.a, e.tok(e.a, e.inflight, e.epoch, badSecret))
	})

	// Reads.
	rooms("Peek", func(ctx context.Context, e *badEnv, room string) error {
		_, err := e.q.Peek(ctx, room, 0, 10)
		return err
	})
	for name, ol := range map[string][2]int{"negative offset": {-1, 10}, "negative limit": {0, -1}, "limit too big": {0, 10001}} {
		add(ErrInvalidOption, "Peek/"+name, func(ctx context.Context, e *badEnv) error { _, err := e.q.Peek(ctx, e.room, ol[0], ol[1]); return err })
	}
	lifecycle("Peek", func(ctx context.Context, q *Queue, e *badEnv) error { _, err := q.Peek(ctx, e.room, 0, 10); return err })
	rooms("RoomState", func(ctx context.Context, e *badEnv, room string) error {
		_, err := e.q.RoomState(ctx, room)
		return err
	})
	lifecycle("RoomState", func(ctx context.Context, q *Queue, e *badEnv) error { _, err := q.RoomState(ctx, e.room); return err })
	rooms("History", func(ctx context.Context, e *badEnv, room string) error {
		for _, err := range e.q.History(ctx, room, streams.Range{}) {
			return err
		}
		return nil
	})

	// Join and Subscription.
	rooms("Join", func(ctx context.Context, e *badEnv, room string) error { _, err := e.q.Join(ctx, room); return err })
	clients("Join", func(ctx context.Context, e *badEnv, c string) error {
		_, err := e.q.Join(ctx, e.room, WithClientID(c))
		return err
	})
	lifecycle("Join", func(ctx context.Context, q *Queue, e *badEnv) error { _, err := q.Join(ctx, e.room); return err })
	add(context.Canceled, "Subscription.Next/canceled context", func(ctx context.Context, e *badEnv) error { _, err := e.sub.Next(e.canceled); return err })
	add(ErrClosed, "Subscription.Next/after Close", func(ctx context.Context, e *badEnv) error { _, err := e.closedSub.Next(ctx); return err })
	add(context.Canceled, "Subscription.Close/canceled context", func(ctx context.Context, e *badEnv) error { return e.sub.Close(e.canceled) })

	// Worker.
	add(ErrInvalidOption, "NewWorker/no handler", func(ctx context.Context, e *badEnv) error { _, err := e.q.NewWorker(WorkerOptions{}); return err })
	add(ErrClosed, "NewWorker/after Close", func(ctx context.Context, e *badEnv) error {
		_, err := e.closedQ.NewWorker(WorkerOptions{HandleMessage: func(context.Context, string, *Message) error { return nil }})
		return err
	})
	rooms("Worker.Subscribe", func(ctx context.Context, e *badEnv, room string) error { return e.w.Subscribe(ctx, "client", room) })
	clients("Worker.Subscribe", func(ctx context.Context, e *badEnv, c string) error { return e.w.Subscribe(ctx, c, e.room) })
	rooms("Worker.Unsubscribe", func(ctx context.Context, e *badEnv, room string) error { return e.w.Unsubscribe(ctx, "client", room) })
	clients("Worker.Unsubscribe", func(ctx context.Context, e *badEnv, c string) error { return e.w.Unsubscribe(ctx, c, e.room) })
	add(context.Canceled, "Worker.Subscribe/canceled context", func(ctx context.Context, e *badEnv) error { return e.w.Subscribe(e.canceled, "client", e.room) })
	add(context.Canceled, "Worker.Ack/canceled context", func(ctx context.Context, e *badEnv) error {
		return e.w.Ack(e.canceled, e.a, e.tok(e.a, e.inflight, e.epoch, badSecret))
	})
	add(ErrClosed, "Worker.Subscribe/after Close", func(ctx context.Context, e *badEnv) error { return e.closedW.Subscribe(ctx, "client", e.room) })
	add(ErrClosed, "Worker.Ack/after Close", func(ctx context.Context, e *badEnv) error {
		return e.closedW.Ack(ctx, e.a, e.tok(e.a, e.inflight, e.epoch, badSecret))
	})
	return cs
}

func TestBadInputMatrix(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		e := newBadEnv(ctx, t, b)
		cases := badCases()
		for _, c := range cases {
			before := keyspace(ctx, t, b)
			err := c.call(ctx, e)
			require.Error(t, err, c.name)
			require.ErrorIs(t, err, c.want, "%s: %v", c.name, err)
			require.Empty(t, keyspaceDiff(before, keyspace(ctx, t, b)), "%s changed the keyspace", c.name)
		}
		// The room is as it was: the in-flight message still waits for both
		// members, and valid acks still work.
		st, err := e.q.RoomState(ctx, e.room)
		require.NoError(t, err)
		require.Equal(t, e.inflight, st.InFlight.Seq)
		require.Equal(t, []string{e.a, e.b2}, st.Missing)
		before := keyspace(ctx, t, b)
		require.NoError(t, e.q.Ack(ctx, e.a, e.tok(e.a, e.inflight, e.epoch, badSecret)))
		require.NoError(t, e.q.Ack(ctx, e.b2, e.tok(e.b2, e.inflight, e.epoch, badSecret)))
		require.NotEmpty(t, keyspaceDiff(before, keyspace(ctx, t, b)), "the snapshot must see real changes")
		st, err = e.q.RoomState(ctx, e.room)
		require.NoError(t, err)
		require.NotNil(t, st.InFlight)
		require.Equal(t, 0, st.Pending, "the third message follows the acks")
		// A Close with a done context changed nothing, so a later one leaves.
		require.NoError(t, e.sub.Close(ctx))
		sst, err := e.q.RoomState(ctx, e.sub.Room())
		require.NoError(t, err)
		require.Empty(t, sst.Members, "Close after a Close with a done context must leave the room")
		t.Logf("%s: %d bad-input cases, each a typed error and an unchanged keyspace", b.Name, len(cases))
	})
}

// TestGarbageStreamEntries: entries that anything with write access to
// Redis adds to a room's stream with a raw XADD (missing fields, unknown
// types, bad numbers, payloads without a kind byte) are counted and
// skipped: they never crash a reader, never reach Next or a worker's
// handler, and the messages after them are delivered as usual.
func TestGarbageStreamEntries(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q, err := New(ctx, b.Client, Options{Prefix: b.Prefix, Logger: discardBadLogger()})
		require.NoError(t, err)
		defer q.Close()
		const room = "garbage"
		sub, err := q.Join(ctx, room, AsObserver())
		require.NoError(t, err)
		got := make(chan *Message, 10)
		w, err := q.NewWorker(WorkerOptions{HandleMessage: func(_ context.Context, _ string, m *Message) error {
			got <- m
			return nil
		}})
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, w.Subscribe(ctx, "worker-client", room))

		undecodable := [][]any{
			{"t", "zz"},
			{"x", "1"},
			{"t", "m"},
			{"t", "m", "id", "0", "et", "1", "pr", "1", "d", "rx"},
			{"t", "m", "id", "-3", "et", "1", "pr", "1", "d", "rx"},
			{"t", "m", "id", "5", "et", "soon", "pr", "1", "d", "rx"},
			{"t", "m", "id", "5", "et", "1", "pr", "high", "d", "rx"},
			{"t", "m", "id", "5", "et", "1", "pr", "1", "d", ""},
			{"t", "o", "id", "5", "et", "1"},
			{"t", "e"},
			{"t", "l", "c", ""},
		}
		badKind := [][]any{
			{"t", "m", "id", "5", "et", "1", "pr", "1", "d", "\x00not a payload"},
			{"t", "o", "id", "6", "et", "1", "d", "?"},
		}
		stream := q.layout.Stream(room)
		for _, v := range append(append([][]any{}, undecodable...), badKind...) {
			require.NoError(t, b.Client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: v}).Err())
		}
		id, err := q.Send(ctx, room, []byte("valid"))
		require.NoError(t, err)

		m, err := sub.Next(ctx)
		require.NoError(t, err)
		require.Equal(t, id, m.ID)
		require.Equal(t, "valid", string(m.Data()))
		select {
		case m := <-got:
			require.Equal(t, id, m.ID, "the worker's handler must get the valid message only")
		case <-ctx.Done():
			t.Fatal("the worker delivered nothing")
		}
		// The Queue counts each undecodable entry once (its readers) and each
		// unreadable payload its subscription dropped; the worker counts
		// both kinds for itself.
		require.Equal(t, uint64(len(undecodable)+len(badKind)), q.Stats().Invalid)
		require.Equal(t, uint64(len(undecodable)+len(badKind)), w.Stats().Invalid)
		select {
		case m := <-got:
			t.Fatalf("unexpected delivery %d", m.ID)
		default:
		}
		require.NoError(t, sub.Close(ctx))
	})
}

// TestAckSecretRotation: rotating AckSecret in three steps (accept the new
// secret, issue with it, drop the old one) never refuses a token that a
// process of the current step may have issued, and a token signed with a
// secret the Queue does not know is refused and changes nothing.
func TestAckSecretRotation(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		old, next := []byte("old-secret-0123456789abcdef"), []byte("new-secret-0123456789abcdef")
		step := func(secret []byte, previous ...[]byte) *Queue {
			q, err := New(ctx, b.NewClient(t), Options{Prefix: b.Prefix, AckSecret: secret, PreviousAckSecrets: previous, Logger: discardBadLogger()})
			require.NoError(t, err)
			t.Cleanup(func() { _ = q.Close() })
			return q
		}
		before := step(old)       // before the rotation
		accept := step(old, next) // step 1: accepts the new secret
		issue := step(next, old)  // step 2: issues with the new secret
		after := step(next)       // step 3: the old secret is gone
		const room = "rotation"
		sOld, err := before.Join(ctx, room)
		require.NoError(t, err)
		sNew, err := issue.Join(ctx, room)
		require.NoError(t, err)
		_, err = before.Send(ctx, room, []byte("m"))
		require.NoError(t, err)
		mOld, err := sOld.Next(ctx)
		require.NoError(t, err)
		mNew, err := sNew.Next(ctx)
		require.NoError(t, err)

		snapshot := keyspace(ctx, t, b)
		require.ErrorIs(t, after.Ack(ctx, sOld.ClientID(), mOld.AckToken), ErrInvalidToken)
		require.ErrorIs(t, before.Ack(ctx, sNew.ClientID(), mNew.AckToken), ErrInvalidToken)
		require.Empty(t, keyspaceDiff(snapshot, keyspace(ctx, t, b)), "refused acks change nothing")

		require.NoError(t, issue.Ack(ctx, sOld.ClientID(), mOld.AckToken), "step 2 accepts tokens of the old secret")
		require.NoError(t, accept.Ack(ctx, sNew.ClientID(), mNew.AckToken), "step 1 accepts tokens of the new secret")
		st, err := before.RoomState(ctx, room)
		require.NoError(t, err)
		require.Nil(t, st.InFlight, "both acks counted")
		require.NoError(t, sOld.Close(ctx))
		require.NoError(t, sNew.Close(ctx))
	})
}
