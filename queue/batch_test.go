package queue_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// TestSendBatch: a batch is the same messages as Sends in a row (IDs
// consecutive and after earlier sends, release one at a time in lock-step,
// priority before order) in one call.
func TestSendBatch(t *testing.T) {
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := testContext(t)
		q := setup(t, b, queue.Options{}).q
		const room = "batch"
		a := join(t, ctx, q, room)
		c := join(t, ctx, q, room)

		before := send(t, ctx, q, room, "before") // released at once: in flight
		batch := make([]any, 5)
		for i := range batch {
			batch[i] = fmt.Sprintf("b%d", i)
		}
		ids, err := q.SendBatch(ctx, room, batch)
		require.NoError(t, err)
		require.Len(t, ids, len(batch))
		for i, id := range ids {
			require.Equal(t, before+1+uint64(i), id, "IDs are consecutive after the earlier send")
		}
		urgent, err := q.SendBatch(ctx, room, []any{"u0", []byte("u1")}, queue.Priority(1), queue.Producer("p"))
		require.NoError(t, err)
		require.Equal(t, []uint64{ids[4] + 1, ids[4] + 2}, urgent)

		st := roomState(t, ctx, q, room)
		require.Equal(t, 7, st.Pending, "the batches wait behind the in-flight message")
		require.NotNil(t, st.InFlight)
		require.Equal(t, before, st.InFlight.Seq)

		// Release order: the in-flight one, the urgent batch in its order,
		// then the first batch in its order; each only after both acked.
		want := []uint64{before, urgent[0], urgent[1]}
		want = append(want, ids...)
		for i, id := range want {
			ma, mc := next(t, ctx, a), next(t, ctx, c)
			require.Equal(t, id, ma.ID, "message %d for a", i)
			require.Equal(t, id, mc.ID, "message %d for c", i)
			switch {
			case id == urgent[1]:
				require.True(t, ma.Raw(), "a []byte element is stored untouched")
				require.Equal(t, "u1", string(ma.Data()))
				require.Equal(t, "p", ma.Producer)
				require.Equal(t, 1, ma.Priority)
			case id >= ids[0] && id <= ids[4]:
				require.Equal(t, fmt.Sprintf("b%d", id-ids[0]), text(t, ma))
			}
			require.NoError(t, ma.Ack(ctx))
			if i+1 < len(want) {
				v := view(t, ctx, q, room)
				require.Equal(t, id, v.InFlight, "one ack of two must not release the next message")
			}
			require.NoError(t, mc.Ack(ctx))
		}
		v := view(t, ctx, q, room)
		require.Zero(t, v.Pending)
		require.Zero(t, v.InFlight)
		require.EqualValues(t, 1+len(batch)+2, q.Stats().Sent)

		// A batch into a room nobody is in is released at once, in order,
		// into the stream, as Sends would be.
		empty, err := q.SendBatch(ctx, "batch-empty", []any{"x", "y", "z"})
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 2, 3}, empty)
		require.Equal(t, empty, messageIDs(history(t, ctx, q, "batch-empty")))
	})
}
