package queue_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

const testActor = "ops@host"

// adminEvents keeps the admin events of a room's history, in order.
func adminEvents(evs []streams.Event) []streams.Event {
	return ofType(evs, streams.Pause, streams.Resume, streams.Purge, streams.ForceRelease, streams.Kick)
}

// TestAdminPauseResume: while a room is paused, sends are queued and
// nothing new is released, the in-flight message can still be acked (and
// completes), out-of-band messages still go out; RoomState says since
// when, by whom and why; Resume releases the next message in the same
// step. Both transitions are in the history with actor and reason, and
// counted.
func TestAdminPauseResume(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "paused"
		s := join(t, ctx, q, room)
		m1 := send(t, ctx, q, room, "m1")
		got := next(t, ctx, s)
		require.Equal(t, m1, got.ID)

		adm := q.Admin(testActor)
		lo := serverTime(t, ctx, b.Client)
		require.NoError(t, adm.Pause(ctx, room, "deploy in progress"))
		hi := serverTime(t, ctx, b.Client)
		st := roomState(t, ctx, q, room)
		require.True(t, st.Paused)
		require.Equal(t, testActor, st.PausedBy)
		require.Equal(t, "deploy in progress", st.PauseReason)
		between(t, st.PausedAt, lo, hi, "PausedAt")

		m2 := send(t, ctx, q, room, "m2")
		oob := sendOOB(t, ctx, q, room, "oob")
		// The out-of-band message goes out during the pause.
		o := next(t, ctx, s)
		require.Equal(t, oob, o.ID)
		require.Empty(t, o.AckToken)
		// The in-flight message can still be acked; it completes, and m2
		// stays pending.
		require.NoError(t, got.Ack(ctx))
		st = roomState(t, ctx, q, room)
		require.Nil(t, st.InFlight, "the acked message must complete while paused")
		require.Equal(t, 1, st.Pending, "m2 must stay pending while paused")
		require.True(t, st.Paused)

		require.NoError(t, adm.Resume(ctx, room, "deploy done"))
		st = roomState(t, ctx, q, room)
		require.False(t, st.Paused)
		require.Empty(t, st.PausedBy)
		require.True(t, st.PausedAt.IsZero())
		require.NotNil(t, st.InFlight, "Resume releases in the same step")
		require.Equal(t, m2, st.InFlight.Seq)
		require.Equal(t, m2, next(t, ctx, s).ID)

		evs := history(t, ctx, q, room)
		adminEvs := adminEvents(evs)
		require.Len(t, adminEvs, 2)
		require.Equal(t, streams.Pause, adminEvs[0].Type)
		require.Equal(t, testActor, adminEvs[0].Actor)
		require.Equal(t, "deploy in progress", adminEvs[0].Reason)
		require.Equal(t, streams.Resume, adminEvs[1].Type)
		require.Equal(t, "deploy done", adminEvs[1].Reason)
		// m2 is released after the resume, never between the two.
		require.Greater(t, findEvent(evs, isMessage(m2)), findEvent(evs, func(ev streams.Event) bool { return ev.Type == streams.Resume }))
		stats := q.Stats()
		require.Equal(t, uint64(1), stats.AdminPause)
		require.Equal(t, uint64(1), stats.AdminResume)
	})
}

// TestAdminPauseEmptyRoom: a paused room without members does not drain
// its backlog (sends into it stay pending) and is not idle, so it keeps
// its pause; Resume drains it.
func TestAdminPauseEmptyRoom(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "empty-paused"
		send(t, ctx, q, room, "first") // drained at once: nobody is there
		require.Equal(t, 0, roomState(t, ctx, q, room).Pending)
		adm := q.Admin(testActor)
		require.NoError(t, adm.Pause(ctx, room, ""))
		send(t, ctx, q, room, "held")
		send(t, ctx, q, room, "held too")
		st := roomState(t, ctx, q, room)
		require.Equal(t, 2, st.Pending, "a paused room must not drain")
		require.True(t, st.Paused)
		m, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, int64(2), m.Backlog)
		require.NoError(t, adm.Resume(ctx, room, ""))
		require.Equal(t, 0, roomState(t, ctx, q, room).Pending, "Resume drains an empty room")
	})
}

// TestAdminRefusals: every transition refuses bad input and rooms in the
// wrong state with a typed error, and changes nothing in Redis.
func TestAdminRefusals(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{DisableHousekeeping: true, ClientTimeout: 3600e9, HeartbeatInterval: 1800e9}).q
		const room, idle = "refusals", "idle-room"
		member := subscribe(t, ctx, q, room)
		send(t, ctx, q, idle, "x") // a room with no message in flight
		adm := q.Admin(testActor)
		two := 2
		bad := 12
		cases := []struct {
			name string
			call func() error
			want error
		}{
			{"pause unknown room", func() error { return adm.Pause(ctx, "nobody-here", "") }, queue.ErrUnknownRoom},
			{"resume not paused", func() error { return adm.Resume(ctx, room, "") }, queue.ErrNotPaused},
			{"resume unknown room", func() error { return adm.Resume(ctx, "nobody-here", "") }, queue.ErrUnknownRoom},
			{"purge unknown room", func() error { _, err := adm.Purge(ctx, "nobody-here", queue.PurgeFilter{}, ""); return err }, queue.ErrUnknownRoom},
			{"purge bad priority", func() error { _, err := adm.Purge(ctx, room, queue.PurgeFilter{Priority: &bad}, ""); return err }, queue.ErrInvalidPriority},
			{"purge bad up-to", func() error {
				_, err := adm.Purge(ctx, room, queue.PurgeFilter{Priority: &two, UpTo: "1-0"}, "")
				return err
			}, queue.ErrInvalidOption},
			{"purge up-to zero", func() error { _, err := adm.Purge(ctx, room, queue.PurgeFilter{UpTo: "0"}, ""); return err }, queue.ErrInvalidOption},
			{"release nothing in flight", func() error { _, err := adm.Release(ctx, idle, ""); return err }, queue.ErrNoInFlight},
			{"release unknown room", func() error { _, err := adm.Release(ctx, "nobody-here", ""); return err }, queue.ErrUnknownRoom},
			{"kick unknown member", func() error { return adm.Kick(ctx, room, "stranger", "") }, queue.ErrNotMember},
			{"kick in unknown room", func() error { return adm.Kick(ctx, "nobody-here", member, "") }, queue.ErrUnknownRoom},
			{"kick bad client", func() error { return adm.Kick(ctx, room, "", "") }, queue.ErrInvalidClientID},
			{"delete unknown room", func() error { return adm.DeleteRoom(ctx, "nobody-here", "") }, queue.ErrUnknownRoom},
			{"bad room", func() error { return adm.Pause(ctx, "a{b}", "") }, queue.ErrInvalidRoom},
			{"reason too long", func() error { return adm.Pause(ctx, room, strings.Repeat("x", queue.MaxReasonLen+1)) }, queue.ErrInvalidReason},
			{"reason with control character", func() error { return adm.DeleteRoom(ctx, room, "a\nb") }, queue.ErrInvalidReason},
			{"reason not UTF-8", func() error { return adm.Resume(ctx, room, "\xff") }, queue.ErrInvalidReason},
			{"empty actor", func() error { return q.Admin("").Pause(ctx, room, "") }, queue.ErrInvalidActor},
			{"actor too long", func() error { return q.Admin(strings.Repeat("a", queue.MaxActorLen+1)).DeleteRoom(ctx, room, "") }, queue.ErrInvalidActor},
			{"actor with control character", func() error { return q.Admin("a\tb").Kick(ctx, room, member, "") }, queue.ErrInvalidActor},
		}
		snap := snapshotter(t, ctx, b)
		for _, c := range cases {
			before := snap()
			err := c.call()
			require.ErrorIs(t, err, c.want, c.name)
			require.Equal(t, before, snap(), "%s changed Redis", c.name)
		}
		// Pausing twice: the second is refused and changes nothing.
		require.NoError(t, adm.Pause(ctx, room, "first"))
		before := snap()
		require.ErrorIs(t, adm.Pause(ctx, room, "second"), queue.ErrAlreadyPaused)
		require.Equal(t, before, snap())
		require.Equal(t, "first", roomState(t, ctx, q, room).PauseReason)
		require.Equal(t, uint64(1), q.Stats().AdminPause, "refused transitions are not counted")
	})
}

// TestAdminPauseRacesAck: a pause and the ack that completes the
// in-flight message, at once, many times. Whichever runs first, nothing is
// released after the pause, and the room is in one of the two states the
// two orders give.
func TestAdminPauseRacesAck(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		adm := q.Admin(testActor)
		for i := range 20 {
			room := "race-" + strconv.Itoa(i)
			s := join(t, ctx, q, room)
			send(t, ctx, q, room, "m1")
			m2 := send(t, ctx, q, room, "m2")
			m := next(t, ctx, s)
			var wg sync.WaitGroup
			var ackErr, pauseErr error
			wg.Add(2)
			go func() { defer wg.Done(); ackErr = m.Ack(ctx) }()
			go func() { defer wg.Done(); pauseErr = adm.Pause(ctx, room, "race") }()
			wg.Wait()
			require.NoError(t, ackErr)
			require.NoError(t, pauseErr)
			evs := history(t, ctx, q, room)
			pause := findEvent(evs, func(ev streams.Event) bool { return ev.Type == streams.Pause })
			released := findEvent(evs, isMessage(m2))
			st := roomState(t, ctx, q, room)
			require.True(t, st.Paused)
			if released >= 0 {
				require.Less(t, released, pause, "m2 released after the pause")
				require.NotNil(t, st.InFlight)
				require.Equal(t, m2, st.InFlight.Seq)
				require.Equal(t, 0, st.Pending)
			} else {
				require.Nil(t, st.InFlight, "the ack must have completed m1")
				require.Equal(t, 1, st.Pending)
			}
			require.NoError(t, s.Close(ctx))
		}
	})
}

// TestAdminPurge: a purge drops the pending messages its filter selects
// (one level, up to a message ID, or all), never the one in flight, keeps
// the release order of the rest and the backlog totals exact, and is
// recorded with its count.
func TestAdminPurge(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "purged"
		s := join(t, ctx, q, room)
		m1 := send(t, ctx, q, room, "m1")
		require.Equal(t, m1, next(t, ctx, s).ID)
		m2 := send(t, ctx, q, room, "m2", queue.Priority(5))
		m3 := send(t, ctx, q, room, "m3", queue.Priority(2))
		m4 := send(t, ctx, q, room, "m4", queue.Priority(5))
		m5 := send(t, ctx, q, room, "m5", queue.Priority(5))
		adm := q.Admin(testActor)
		five := 5
		n, err := adm.Purge(ctx, room, queue.PurgeFilter{Priority: &five, UpTo: strconv.FormatUint(m4, 10)}, "bad batch")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		ps, err := q.Peek(ctx, room, 0, 10)
		require.NoError(t, err)
		require.Len(t, ps, 2)
		require.Equal(t, []uint64{m3, m5}, []uint64{ps[0].ID, ps[1].ID})
		st := roomState(t, ctx, q, room)
		require.Equal(t, m1, st.InFlight.Seq, "the in-flight message is not pending")
		require.Equal(t, 2, st.Pending)

		n, err = adm.Purge(ctx, room, queue.PurgeFilter{}, "")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, 0, roomState(t, ctx, q, room).Pending)
		m, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, int64(0), m.Backlog, "the shard totals follow the purge")

		evs := ofType(history(t, ctx, q, room), streams.Purge)
		require.Len(t, evs, 2)
		require.Equal(t, 2, evs[0].Count)
		require.Equal(t, 5, evs[0].Priority)
		require.Equal(t, m4, evs[0].MessageID)
		require.Equal(t, "bad batch", evs[0].Reason)
		require.Equal(t, testActor, evs[0].Actor)
		require.Equal(t, -1, evs[1].Priority)
		require.Zero(t, evs[1].MessageID)
		require.Equal(t, uint64(2), q.Stats().AdminPurge)
		_ = m2
	})
}

// TestAdminPurgeRacesSends: purges while a producer sends lose nothing
// and count nothing twice: what was sent is what was purged plus what is
// pending, and the shard's backlog total agrees.
func TestAdminPurgeRacesSends(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room, total = "purge-race", 300
		s := join(t, ctx, q, room)
		send(t, ctx, q, room, "held") // in flight, never acked
		next(t, ctx, s)
		adm := q.Admin(testActor)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range total {
				if _, err := q.Send(ctx, room, i, queue.Priority(i%3)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		purged := 0
		for range 20 {
			n, err := adm.Purge(ctx, room, queue.PurgeFilter{}, "race")
			require.NoError(t, err)
			purged += n
		}
		wg.Wait()
		st := roomState(t, ctx, q, room)
		require.Equal(t, total, purged+st.Pending)
		m, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, int64(st.Pending), m.Backlog)
		counted := 0
		for _, ev := range ofType(history(t, ctx, q, room), streams.Purge) {
			counted += ev.Count
		}
		require.Equal(t, purged, counted)
	})
}

// TestAdminRelease: a forced release completes the in-flight message
// without the missing acks, names the members that had not acked (they
// stay members, their tokens for it are stale), and releases the next
// message in the same step, but not while the room is paused.
func TestAdminRelease(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "forced"
		a := join(t, ctx, q, room)
		bb := join(t, ctx, q, room)
		c := join(t, ctx, q, room)
		m1 := send(t, ctx, q, room, "m1")
		m2 := send(t, ctx, q, room, "m2")
		m3 := send(t, ctx, q, room, "m3")
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		stale := next(t, ctx, bb)
		adm := q.Admin(testActor)
		missing, err := adm.Release(ctx, room, "stuck")
		require.NoError(t, err)
		want := []string{bb.ClientID(), c.ClientID()}
		slices.Sort(want)
		require.Equal(t, want, missing)
		st := roomState(t, ctx, q, room)
		require.Len(t, st.Members, 3, "the missing members stay")
		require.Equal(t, m2, st.InFlight.Seq, "the next message is released in the same step")
		require.ErrorIs(t, stale.Ack(ctx), queue.ErrStaleAck)

		// Paused: the release completes m2, m3 stays pending.
		require.NoError(t, adm.Pause(ctx, room, ""))
		missing, err = adm.Release(ctx, room, "")
		require.NoError(t, err)
		require.Len(t, missing, 3)
		st = roomState(t, ctx, q, room)
		require.Nil(t, st.InFlight)
		require.Equal(t, 1, st.Pending)
		_, err = adm.Release(ctx, room, "")
		require.ErrorIs(t, err, queue.ErrNoInFlight)

		evs := ofType(history(t, ctx, q, room), streams.ForceRelease)
		require.Len(t, evs, 2)
		require.Equal(t, m1, evs[0].MessageID)
		require.Equal(t, want, evs[0].Missing)
		require.Equal(t, "stuck", evs[0].Reason)
		require.Equal(t, m2, evs[1].MessageID)
		require.Equal(t, uint64(2), q.Stats().AdminRelease)
		_ = m3
	})
}

// TestAdminKick: a kicked member leaves as if evicted (kicking the last
// missing member releases the next message in the same step), its
// subscription ends with a *KickedError that is not an eviction, and its
// old tokens are dead, also after it joins again.
func TestAdminKick(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "kicked"
		a := join(t, ctx, q, room)
		bb := join(t, ctx, q, room)
		obs := join(t, ctx, q, room, queue.AsObserver())
		m1 := send(t, ctx, q, room, "m1")
		m2 := send(t, ctx, q, room, "m2")
		require.NoError(t, next(t, ctx, a).Ack(ctx))
		old := next(t, ctx, bb)
		require.Equal(t, m1, old.ID)
		next(t, ctx, obs)
		adm := q.Admin(testActor)
		require.NoError(t, adm.Kick(ctx, room, bb.ClientID(), "misbehaving"))
		st := roomState(t, ctx, q, room)
		require.Len(t, st.Members, 1)
		require.Equal(t, m2, st.InFlight.Seq, "kicking the last missing member releases")

		err := nextErr(t, ctx, bb)
		var k *queue.KickedError
		require.ErrorAs(t, err, &k)
		require.ErrorIs(t, err, queue.ErrKicked)
		require.NotErrorIs(t, err, queue.ErrEvicted, "a kick is not a timeout")
		require.NotErrorIs(t, err, queue.ErrRoomDeleted)
		require.Equal(t, queue.KickedError{ClientID: bb.ClientID(), Room: room, Actor: testActor, Reason: "misbehaving"}, *k)

		// Its old token is dead: refused while it is out, stale once it
		// joined again.
		require.ErrorIs(t, q.Ack(ctx, bb.ClientID(), old.AckToken), queue.ErrNotMember)
		require.NoError(t, q.Subscribe(ctx, bb.ClientID(), room))
		require.ErrorIs(t, q.Ack(ctx, bb.ClientID(), old.AckToken), queue.ErrStaleAck)

		// Observers can be kicked too.
		require.NoError(t, adm.Kick(ctx, room, obs.ClientID(), ""))
		require.ErrorIs(t, nextErr(t, ctx, obs), queue.ErrKicked)
		evs := ofType(history(t, ctx, q, room), streams.Kick)
		require.Len(t, evs, 2)
		require.Equal(t, bb.ClientID(), evs[0].ClientID)
		require.False(t, evs[0].Observer)
		require.Equal(t, testActor, evs[0].Actor)
		require.True(t, evs[1].Observer)
		stats := q.Stats()
		require.Equal(t, uint64(2), stats.AdminKick)
		require.Equal(t, uint64(2), stats.Kicked)
		require.Zero(t, stats.EvictedTimeout)
	})
}

// TestAdminKickRacesAck: the two missing members of the in-flight
// message: one acks while the other is kicked, many times. In either
// order the room must release the next message.
func TestAdminKickRacesAck(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		adm := q.Admin(testActor)
		for i := range 20 {
			room := "kick-race-" + strconv.Itoa(i)
			a := join(t, ctx, q, room)
			victim := subscribe(t, ctx, q, room)
			send(t, ctx, q, room, "m1")
			m2 := send(t, ctx, q, room, "m2")
			m := next(t, ctx, a)
			var wg sync.WaitGroup
			var ackErr, kickErr error
			wg.Add(2)
			go func() { defer wg.Done(); ackErr = m.Ack(ctx) }()
			go func() { defer wg.Done(); kickErr = adm.Kick(ctx, room, victim, "race") }()
			wg.Wait()
			require.NoError(t, ackErr)
			require.NoError(t, kickErr)
			st := roomState(t, ctx, q, room)
			require.NotNil(t, st.InFlight, "round %d: the room must release", i)
			require.Equal(t, m2, st.InFlight.Seq)
			require.Equal(t, m2, next(t, ctx, a).ID)
			require.NoError(t, a.Close(ctx))
		}
	})
}

// TestAdminDeleteRoom: the room's members and observers are told (a
// KickedError matching ErrRoomDeleted; a worker's HandleClientKicked),
// then every key of the room is gone and it left the shard's indexes and
// totals; the name starts a new room afterwards.
func TestAdminDeleteRoom(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "doomed"
		a := join(t, ctx, q, room)
		obs := join(t, ctx, q, room, queue.AsObserver())
		kicked := make(chan *queue.KickedError, 4)
		w, err := q.NewWorker(queue.WorkerOptions{
			HandleMessage: func(context.Context, string, *queue.Message) error { return nil },
			HandleClientKicked: func(_ context.Context, _ string, k *queue.KickedError) error {
				kicked <- k
				return nil
			},
			HandleClientTimeout: func(_ context.Context, c, _ string) error {
				t.Errorf("HandleClientTimeout(%s) for a deletion", c)
				return nil
			},
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = w.Close() })
		require.NoError(t, w.Subscribe(ctx, "gw-client", room))
		for i := range 5 {
			send(t, ctx, q, room, i)
		}
		next(t, ctx, a)

		require.NoError(t, q.Admin(testActor).DeleteRoom(ctx, room, "decommissioned"))
		for _, s := range []*queue.Subscription{a, obs} {
			err := nextErr(t, ctx, s)
			require.ErrorIs(t, err, queue.ErrRoomDeleted)
			require.ErrorIs(t, err, queue.ErrKicked)
			var k *queue.KickedError
			require.ErrorAs(t, err, &k)
			require.Equal(t, "decommissioned", k.Reason)
			require.Equal(t, testActor, k.Actor)
		}
		select {
		case k := <-kicked:
			require.True(t, k.RoomDeleted)
			require.Equal(t, "gw-client", k.ClientID)
		case <-ctx.Done():
			t.Fatal("HandleClientKicked was not called")
		}

		layout, err := keys.New(b.Prefix, 16)
		require.NoError(t, err)
		ks := layout.RoomKeys(room)
		for i, k := range ks {
			switch i + 1 {
			case keys.KRooms, keys.KDue:
				require.ErrorIs(t, b.Client.ZScore(ctx, k, room).Err(), redis.Nil, "%s still lists the room", k)
			case keys.KStats:
			default:
				n, err := b.Client.Exists(ctx, k).Result()
				require.NoError(t, err)
				require.Zero(t, n, "key %s survived the deletion", k)
			}
		}
		m, err := q.Metrics(ctx, 10)
		require.NoError(t, err)
		require.Zero(t, m.Members)
		require.Zero(t, m.Observers)
		require.Zero(t, m.Backlog)
		require.Equal(t, uint64(1), q.Stats().AdminDelete)
		require.ErrorIs(t, q.Admin(testActor).DeleteRoom(ctx, room, ""), queue.ErrUnknownRoom)

		// The name starts afresh.
		again := join(t, ctx, q, room)
		id := send(t, ctx, q, room, "new")
		require.Equal(t, uint64(1), id)
		require.Equal(t, id, next(t, ctx, again).ID)
	})
}

// TestAdminKickWorker: a worker's client that is kicked goes to
// HandleClientKicked, not HandleClientTimeout; without HandleClientKicked
// it goes to HandleClientTimeout.
func TestAdminKickWorker(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		kicked := make(chan *queue.KickedError, 4)
		timeouts := make(chan string, 4)
		newWorker := func(withKick bool) *queue.Worker {
			o := queue.WorkerOptions{
				HandleMessage: func(context.Context, string, *queue.Message) error { return nil },
				HandleClientTimeout: func(_ context.Context, c, _ string) error {
					timeouts <- c
					return nil
				},
			}
			if withKick {
				o.HandleClientKicked = func(_ context.Context, _ string, k *queue.KickedError) error {
					kicked <- k
					return nil
				}
			}
			w, err := q.NewWorker(o)
			require.NoError(t, err)
			t.Cleanup(func() { _ = w.Close() })
			return w
		}
		w1, w2 := newWorker(true), newWorker(false)
		require.NoError(t, w1.Subscribe(ctx, "c1", "wroom"))
		require.NoError(t, w2.Subscribe(ctx, "c2", "wroom"))
		adm := q.Admin(testActor)
		require.NoError(t, adm.Kick(ctx, "wroom", "c1", "bye"))
		select {
		case k := <-kicked:
			require.Equal(t, queue.KickedError{ClientID: "c1", Room: "wroom", Actor: testActor, Reason: "bye"}, *k)
		case <-ctx.Done():
			t.Fatal("HandleClientKicked was not called")
		}
		require.NoError(t, adm.Kick(ctx, "wroom", "c2", "bye"))
		select {
		case c := <-timeouts:
			require.Equal(t, "c2", c)
		case <-ctx.Done():
			t.Fatal("HandleClientTimeout was not called for a worker without HandleClientKicked")
		}
		require.Equal(t, uint64(1), w1.Stats().ClientsKicked)
		require.Empty(t, timeouts)
	})
}
