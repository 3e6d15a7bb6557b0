package streamreader_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/internal/streamreader"
	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// TestReaderFollowFromAnEarlierPoint: when a room is followed again from
// an earlier point than its current position (two joins of one room whose
// Follow calls arrive in the other order), the reader reads the room again
// from that point at once, so the earlier joiner misses nothing.
func TestReaderFollowFromAnEarlierPoint(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute, StreamMaxLen: -1})
		require.NoError(t, err)
		defer func() { _ = q.Close() }()
		const room = "rewind"
		for _, s := range []string{"one", "two", "three"} {
			_, err := q.SendOutOfBand(ctx, room, s)
			require.NoError(t, err)
		}
		var ids []string
		for ev, err := range q.History(ctx, room, streams.Range{}) {
			require.NoError(t, err)
			ids = append(ids, ev.ID)
		}
		require.Len(t, ids, 3)

		got := make(chan string, 16)
		rd := streamreader.NewReader(b.NewClient(t), func(_ string, ev streams.Event, err error) {
			require.NoError(t, err)
			got <- ev.ID
		}, streamreader.ReaderOptions{Block: time.Minute}) // a rewind must not wait for the block to end
		defer rd.Close()
		key, err := q.StreamKey(room)
		require.NoError(t, err)

		expect := func(want ...string) {
			t.Helper()
			for _, id := range want {
				select {
				case g := <-got:
					require.Equal(t, id, g)
				case <-time.After(10 * time.Second):
					t.Fatalf("entry %s not delivered", id)
				}
			}
		}
		require.NoError(t, rd.Follow(ctx, room, key, ids[1]))
		expect(ids[2])
		require.NoError(t, rd.Follow(ctx, room, key, ids[0]))
		expect(ids[1], ids[2])
		pos, ok := rd.Position(key)
		require.True(t, ok)
		require.Equal(t, ids[2], pos)
	})
}
