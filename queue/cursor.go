package queue

import "github.com/syncfanout/syncfanout/streams"

// cursor is one consumer's position in a room's stream: a Subscription, a
// worker's room, and each client hosted in that room. Entries reach a
// consumer from two sources that race: the shard's reader, in stream
// order, and the replies of this process's scripts (an ack or a send that
// released entries), which arrive before the reader sees them. The cursor
// makes each entry count once and in stream order, whichever source
// brings it first.
//
// A consumer is registered with the router before it knows where it
// starts (the join, or the read of the stream's tail, is still out), so
// that nothing released meanwhile is missed: the entries offered until
// start are held, and start hands them back to be taken in turn.
//
// A cursor has no lock: its owner guards it with its own mutex, the one
// that also guards what the entries are taken into.
type cursor struct {
	last  string  // newest entry taken into account; "" until start
	early []entry // offered before start, in the order offered
}

// entry is a stream entry with its decoding error, kept until start.
type entry struct {
	ev  streams.Event
	err error
}

// cursorAt returns a cursor started at from.
func cursorAt(from string) cursor { return cursor{last: from} }

// position returns the newest entry taken into account, "" before start.
func (c *cursor) position() string { return c.last }

// started reports whether the cursor knows its position.
func (c *cursor) started() bool { return c.last != "" }

// hold keeps an entry offered before start, and reports whether it did:
// the owner takes it only once start hands it back.
func (c *cursor) hold(ev streams.Event, err error) bool {
	if c.last != "" {
		return false
	}
	c.early = append(c.early, entry{ev, err})
	return true
}

// start sets the position to from and returns the entries held until
// then, in the order offered; the owner takes them as they come, so
// advance drops those at or before from.
func (c *cursor) start(from string) []entry {
	c.last = from
	early := c.early
	c.early = nil
	return early
}

// stop forgets the position, so that entries are held again until the
// next start; it returns the position it had.
func (c *cursor) stop() string {
	last := c.last
	c.last = ""
	return last
}

// advance moves the position over id if id lies after it, and reports
// whether it did: an entry is taken only when it does, so each is taken
// once and in stream order.
func (c *cursor) advance(id string) bool {
	if streams.CompareIDs(id, c.last) <= 0 {
		return false
	}
	c.last = id
	return true
}

// at reports whether entries returned by a script of this process, which
// follow the entry prev in the stream, may be taken now: only when the
// position is exactly prev, so that nothing between the position and them
// is skipped; otherwise the reader brings them in turn.
func (c *cursor) at(prev string) bool {
	return c.last != "" && c.last == prev
}

// next reports whether the entry id would be taken as the next step from
// prev (from any position before id when prev is ""): the router asks it
// before handing an entry over.
func (c *cursor) next(prev, id string) bool {
	return c.last != "" && streams.CompareIDs(id, c.last) > 0 && (prev == "" || c.last == prev)
}
