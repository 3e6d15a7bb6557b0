package queue

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/streams"
)

// taker is a cursor's owner in miniature: it takes what the cursor lets
// through, as Subscription.take and workerRoom.take do.
type taker struct {
	pos   cursor
	taken []string
}

func (k *taker) push(id string) {
	if !k.pos.hold(streams.Event{ID: id}, nil) {
		k.take(id)
	}
}

func (k *taker) take(id string) {
	if k.pos.advance(id) {
		k.taken = append(k.taken, id)
	}
}

func (k *taker) direct(prev string, ids ...string) bool {
	if !k.pos.at(prev) {
		return false
	}
	for _, id := range ids {
		k.take(id)
	}
	return true
}

func (k *taker) start(from string) {
	for _, e := range k.pos.start(from) {
		k.take(e.ev.ID)
	}
}

// TestCursorEarlyEntries: entries the reader hands over before the join
// returned are held, and those after the join point are taken when it
// starts, in order; the rest precede the member and are dropped.
func TestCursorEarlyEntries(t *testing.T) {
	t.Parallel()
	var k taker
	require.False(t, k.pos.started())
	k.push("5-0")
	k.push("7-0")
	k.push("9-0")
	require.Empty(t, k.taken, "nothing is taken before the position is known")
	k.start("7-0")
	require.Equal(t, []string{"9-0"}, k.taken)
	require.Equal(t, "9-0", k.pos.position())
	require.Empty(t, k.pos.start("9-0"), "start hands the held entries back once")
}

// TestCursorHoldsErrors: an entry that failed to decode is held with its
// error, so that the owner counts it (and acks it) when it starts.
func TestCursorHoldsErrors(t *testing.T) {
	t.Parallel()
	var c cursor
	bad := errors.New("bad entry")
	require.True(t, c.hold(streams.Event{ID: "3-0"}, bad))
	early := c.start("1-0")
	require.Len(t, early, 1)
	require.Equal(t, bad, early[0].err)
	require.False(t, c.hold(streams.Event{ID: "4-0"}, nil), "started: nothing more is held")
}

// TestCursorOnce: an entry brought by both the reader and a script reply
// is taken once, whichever comes first, and never out of order.
func TestCursorOnce(t *testing.T) {
	t.Parallel()
	k := taker{pos: cursorAt("1-0")}
	require.True(t, k.direct("1-0", "2-0", "3-0"), "a reply that follows the position")
	k.push("2-0") // the reader, later
	k.push("3-0")
	k.push("4-0")
	require.False(t, k.direct("3-0", "4-0"), "the position moved on: the reply is late")
	k.push("3-5") // out of order: behind the position
	require.Equal(t, []string{"2-0", "3-0", "4-0"}, k.taken)
}

// TestCursorTakeAtPrev: a script reply is taken only at exactly the entry
// before it; from elsewhere something in between would be skipped, and
// the reader brings it in turn.
func TestCursorTakeAtPrev(t *testing.T) {
	t.Parallel()
	var k taker
	require.False(t, k.direct("", "1-0"), "not started")
	k.start("5-0")
	require.False(t, k.direct("6-0", "7-0"), "6-0 not taken yet: it would be skipped")
	require.False(t, k.direct("4-0", "5-1"), "behind the position")
	require.Empty(t, k.taken)
	require.True(t, k.direct("5-0", "6-0"))
	require.Equal(t, []string{"6-0"}, k.taken)
}

// TestCursorNext: the router hands a message to the cursors that will take
// it as their next step, from prev or (prev "") from anywhere before it.
func TestCursorNext(t *testing.T) {
	t.Parallel()
	var c cursor
	require.False(t, c.next("", "2-0"), "not started")
	c = cursorAt("5-0")
	require.True(t, c.next("", "6-0"))
	require.False(t, c.next("", "5-0"), "taken already")
	require.True(t, c.next("5-0", "6-0"))
	require.False(t, c.next("4-0", "6-0"), "not at prev")
}

// TestCursorStop: a stopped cursor holds entries again until it starts
// once more (a worker's client joining again), and says where it was.
func TestCursorStop(t *testing.T) {
	t.Parallel()
	k := taker{pos: cursorAt("5-0")}
	require.Equal(t, "5-0", k.pos.stop())
	require.False(t, k.pos.started())
	k.push("6-0")
	require.Empty(t, k.taken)
	k.start("5-0")
	require.Equal(t, []string{"6-0"}, k.taken)
}
