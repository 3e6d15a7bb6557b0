package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// PendingMessage is a message waiting for the barrier.
type PendingMessage struct {
	ID         uint64
	Room       string
	Producer   string
	Priority   int
	EnqueuedAt time.Time
	Headers    map[string]string // see Message.Headers
	// Err is non-nil (matching ErrDecode) for an entry that something other
	// than Send wrote into the room's queue and that no reader could decode:
	// the release step will set it aside as a "malformed" stream event
	// instead of releasing it. Its other fields hold what could be read.
	Err     error
	payload []byte
}

// Raw reports whether the payload was sent as []byte (false when Err is set).
func (p *PendingMessage) Raw() bool { return p.Err == nil && p.payload[0] == kindRaw }

// Data returns the payload body (see Message.Data); nil when Err is set.
func (p *PendingMessage) Data() []byte {
	if p.Err != nil {
		return nil
	}
	return p.payload[1:]
}

// Decode unmarshals the payload (see Message.Decode); it returns Err when
// that is set.
func (p *PendingMessage) Decode(v any) error {
	if p.Err != nil {
		return p.Err
	}
	return (&Message{payload: p.payload}).Decode(v)
}

// Peek lists up to limit pending entries of room starting at offset, in
// exactly the order they will be released. It changes nothing. Entries
// that will be set aside as malformed are listed where they are, with Err
// set, so offsets stay positions in the queue.
func (q *Queue) Peek(ctx context.Context, room string, offset, limit int) ([]*PendingMessage, error) {
	if err := q.check(ctx); err != nil {
		return nil, err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return nil, err
	}
	if offset < 0 || limit < 0 || limit > 10000 {
		return nil, fmt.Errorf("%w: Peek offset=%d limit=%d, want offset >= 0 and limit 0..10000", sferr.ErrInvalidOption, offset, limit)
	}
	if limit == 0 {
		return nil, nil
	}
	ps, err := q.barrier.Peek(ctx, room, offset, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*PendingMessage, 0, len(ps))
	for _, p := range ps {
		m := &PendingMessage{ID: p.Seq, Room: room, Producer: p.Producer, Priority: p.Priority, EnqueuedAt: p.Enqueued, Headers: p.Headers, payload: p.Payload}
		if p.Err != nil {
			m.Err = fmt.Errorf("room %q: pending entry %d of priority %d: %w", room, offset+len(out)+1, p.Priority, p.Err)
		}
		out = append(out, m)
	}
	return out, nil
}
