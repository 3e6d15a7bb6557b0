package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestAdminCLI: the admin commands ask before acting (an answer other
// than y changes nothing, exit 6), act with --yes or y, record --actor
// and --reason (replay shows them), and give refused transitions their
// exit codes: 4 for no such room or member, 5 for a room in the wrong
// state, 2 for bad input.
func TestAdminCLI(t *testing.T) {
	t.Parallel()
	bin := buildCLI(t)
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
		require.NoError(t, err)
		t.Cleanup(func() { _ = q.Close() })
		member, err := q.Join(ctx, "lobby")
		require.NoError(t, err)
		for i := range 3 {
			_, err := q.Send(ctx, "lobby", i)
			require.NoError(t, err)
		}
		_, err = member.Next(ctx)
		require.NoError(t, err)

		c := newCLI(bin, b)
		runIn := func(stdin string, args ...string) result {
			t.Helper()
			cmd := c.command(ctx, args...)
			cmd.Stdin = strings.NewReader(stdin)
			return runCmd(t, cmd)
		}
		state := func() queue.RoomState {
			st, err := q.RoomState(ctx, "lobby")
			require.NoError(t, err)
			return st
		}

		// Not confirmed: nothing changes.
		before := dump(ctx, t, b)
		for _, stdin := range []string{"", "n\n", "whatever\n"} {
			r := runIn(stdin, "pause", "lobby")
			require.Equal(t, exitNotAsked, r.code, "stdin %q: %s", stdin, r.stderr)
			require.Contains(t, r.stderr, `Pause room "lobby": 1 member(s)`)
			require.Contains(t, r.stderr, "not confirmed: nothing changed")
		}
		for _, args := range [][]string{
			{"pause", "--yes", "--actor", "", "lobby"},
			{"pause", "--yes", "--reason", "a\tb", "lobby"},
			{"purge", "--yes", "--priority", "12", "lobby"},
			{"purge", "--yes", "--up-to", "1-0", "lobby"},
			{"kick", "--yes", "lobby", "a{b}"},
			{"delete", "--yes", "bad{room}"},
		} {
			r := runIn("", args...)
			require.Equal(t, exitUsage, r.code, "%v: %s", args, r.stderr)
		}
		for _, args := range [][]string{
			{"pause", "--yes", "nowhere"}, {"delete", "--yes", "nowhere"}, {"kick", "--yes", "lobby", "stranger"},
		} {
			r := runIn("", args...)
			require.Equal(t, exitNotFound, r.code, "%v: %s", args, r.stderr)
		}
		for _, args := range [][]string{{"resume", "--yes", "lobby"}} {
			r := runIn("", args...)
			require.Equal(t, exitRefused, r.code, "%v: %s", args, r.stderr)
		}
		require.Equal(t, before, dump(ctx, t, b), "refused or unconfirmed commands changed Redis")

		r := runIn("", "pause", "--yes", "--actor", "alice", "--reason", "deploy in progress", "lobby")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Equal(t, "paused room lobby\n", r.stdout)
		st := state()
		require.True(t, st.Paused)
		require.Equal(t, "alice", st.PausedBy)
		r = runIn("", "pause", "--yes", "lobby")
		require.Equal(t, exitRefused, r.code, r.stderr)
		r = runIn("", "state", "lobby")
		require.Contains(t, r.stdout, `by alice, reason "deploy in progress"`)
		r = runIn("", "rooms")
		require.Contains(t, r.stdout, "lobby (paused)")
		r = runIn("", "rooms", "--format", "json")
		require.Contains(t, r.stdout, `"paused":true`)

		r = runIn("y\n", "resume", "lobby")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stderr, `Resume room "lobby"`)
		require.False(t, state().Paused)

		r = runIn("", "purge", "--yes", "--actor", "bob", "lobby")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Equal(t, "purged 2 pending message(s) from room lobby\n", r.stdout)

		r = runIn("yes\n", "release", "lobby")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, "it had not been acked by: "+member.ClientID())
		r = runIn("", "release", "--yes", "lobby")
		require.Equal(t, exitRefused, r.code, r.stderr)

		r = runIn("", "kick", "--yes", "--reason", "stuck", "lobby", member.ClientID())
		require.Equal(t, exitOK, r.code, r.stderr)
		_, err = member.Next(ctx)
		require.ErrorIs(t, err, queue.ErrKicked)

		r = runIn("", "replay", "lobby")
		require.Equal(t, exitOK, r.code, r.stderr)
		for _, want := range []string{
			`pause    actor="alice" reason="deploy in progress"`,
			`resume   actor=`,
			`purge    dropped=2 actor="bob" reason=""`,
			`release  #1 missing=` + member.ClientID(),
			`kick     client=` + member.ClientID() + ` actor=`,
		} {
			require.Contains(t, r.stdout, want)
		}
		r = runIn("", "replay", "--format", "json", "lobby")
		require.Contains(t, r.stdout, `"type":"pause","reason":"deploy in progress","actor":"alice"`)

		r = runIn("", "delete", "--yes", "lobby")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Equal(t, "deleted room lobby\n", r.stdout)
		require.Empty(t, state().Epoch)
		r = runIn("", "delete", "--yes", "lobby")
		require.Equal(t, exitNotFound, r.code, r.stderr)
	})
}
