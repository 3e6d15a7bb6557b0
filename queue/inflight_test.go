package queue_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestInFlightSince: only rooms with a message in flight are listed, with
// its release time; bad input is a typed error.
func TestInFlightSince(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		s, err := q.Join(ctx, "busy")
		require.NoError(t, err)
		send(t, ctx, q, "busy", "x")
		m, err := s.Next(ctx)
		require.NoError(t, err)
		st, err := q.RoomState(ctx, "busy")
		require.NoError(t, err)
		require.NotNil(t, st.InFlight)

		got, err := q.InFlightSince(ctx, []string{"busy", "empty"})
		require.NoError(t, err)
		require.Equal(t, map[string]int64{"busy": st.InFlight.ReleasedAt.UnixMilli()}, unixMilli(got))

		require.NoError(t, m.Ack(ctx))
		got, err = q.InFlightSince(ctx, []string{"busy"})
		require.NoError(t, err)
		require.Empty(t, got)

		_, err = q.InFlightSince(ctx, []string{"busy", ""})
		require.ErrorIs(t, err, queue.ErrInvalidRoom)
		_, err = q.InFlightSince(ctx, strings.Split(strings.Repeat("r,", queue.MaxTopRooms+1), ",")[:queue.MaxTopRooms+1])
		require.ErrorIs(t, err, queue.ErrInvalidOption)
	})
}

func unixMilli[T interface{ UnixMilli() int64 }](m map[string]T) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v.UnixMilli()
	}
	return out
}
