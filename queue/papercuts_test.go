package queue_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestRoomStateOfUnusedRoom: rooms exist implicitly, so a room that holds
// nothing has an empty state and no error (the CLI shows it the same way).
// SendOutOfBand validates Priority and otherwise ignores it.
func TestRoomStateOfUnusedRoom(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{})
		st, err := q.RoomState(ctx, "never-used")
		require.NoError(t, err)
		require.Equal(t, "never-used", st.Room)
		require.Zero(t, st.LastSeq)
		require.Zero(t, st.Pending)
		require.Nil(t, st.InFlight)
		require.Empty(t, st.Members)
		require.Zero(t, st.StreamLen)

		_, err = q.SendOutOfBand(ctx, "oob", "x", queue.Priority(42))
		require.ErrorIs(t, err, queue.ErrInvalidPriority)
		_, err = q.SendOutOfBand(ctx, "oob", "x", queue.Priority(0))
		require.NoError(t, err)
	})
}
