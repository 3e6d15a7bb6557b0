package queue_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

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
		q := setup(t, b, fast(queue.Options{}))
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
		q := setup(t, b, fast(queue.Options{}))
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
		q := setup(t, b, queue.Options{DisableHousekeeping: true, ClientTimeout: 3600e9, HeartbeatInterval: 1800e9})
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
		q := setup(t, b, fast(queue.Options{}))
		adm := q.Admin(testActor)
		for i := range 20 {
			room := "race-" + string(rune('a'+i))
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
