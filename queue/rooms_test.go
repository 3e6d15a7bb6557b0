package queue_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestRoomsPaging: Rooms pages through every room exactly once, in the
// order of Metrics.TopRooms, at a cost of one pipeline per page whatever
// its depth, and refuses bad limits and cursors.
func TestRoomsPaging(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		// Rooms with backlogs 0..4 (several ties) and live ones without
		// backlog (a member and no message).
		const n = 23
		for i := range n {
			room := fmt.Sprintf("page-%02d", i)
			for range i % 5 {
				_, err := q.Send(ctx, room, []byte("x"))
				require.NoError(t, err)
			}
			if i%5 == 0 {
				id, err := q.CreateClientID(ctx)
				require.NoError(t, err)
				require.NoError(t, q.Subscribe(ctx, id, room))
			}
		}
		m, err := q.Metrics(ctx, queue.MaxTopRooms)
		require.NoError(t, err)
		require.Len(t, m.TopRooms, n)

		for _, limit := range []int{1, 4, 7, n - 1, n, n + 1, queue.MaxTopRooms} {
			var got []queue.RoomBacklog
			cursor, pages := "", 0
			for {
				page, err := q.Rooms(ctx, cursor, limit)
				require.NoError(t, err)
				require.LessOrEqual(t, len(page.Rooms), limit)
				// No empty page is ever promised by a cursor.
				require.NotEmpty(t, page.Rooms, "limit %d page %d", limit, pages)
				got = append(got, page.Rooms...)
				pages++
				if page.Next == "" {
					break
				}
				cursor = page.Next
			}
			require.Equal(t, m.TopRooms, got, "limit %d", limit)
			require.Equal(t, (n+limit-1)/limit, pages, "limit %d", limit)
		}

		// A deep page costs what the first one does: one ZREVRANGE per shard.
		cq, counter := dftCountedQueue(t, b)
		first, err := cq.Rooms(ctx, "", 5)
		require.NoError(t, err)
		second, err := cq.Rooms(ctx, first.Next, 5)
		require.NoError(t, err)
		counter.reset()
		_, err = cq.Rooms(ctx, second.Next, 5)
		require.NoError(t, err)
		total, byName := counter.snapshot()
		require.Equal(t, map[string]int{"zrevrange": defaultNumShards}, byName)
		require.Equal(t, defaultNumShards, total)

		for _, limit := range []int{0, -1, queue.MaxTopRooms + 1} {
			_, err := q.Rooms(ctx, "", limit)
			require.ErrorIs(t, err, queue.ErrInvalidOption, "limit %d", limit)
		}
		for _, cursor := range []string{"x", "1.2", first.Next + ".0", "-1" + first.Next[1:], " " + first.Next} {
			_, err := q.Rooms(ctx, cursor, 5)
			require.ErrorIs(t, err, queue.ErrInvalidOption, "cursor %q", cursor)
		}
	})
}
