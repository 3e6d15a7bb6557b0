// Package oob sends out-of-band messages: appended to a room's delivery
// stream at once, whatever the barrier is doing, and never acked.
package oob

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Broadcaster sends out-of-band messages.
type Broadcaster struct {
	rdb    redis.UniversalClient
	layout *keys.Layout
	cfg    lua.RoomConfig
}

// New returns a Broadcaster; cfg carries the stream retention.
func New(rdb redis.UniversalClient, layout *keys.Layout, cfg lua.RoomConfig) *Broadcaster {
	return &Broadcaster{rdb: rdb, layout: layout, cfg: cfg}
}

// Sent describes an out-of-band message once it is in the stream.
type Sent struct {
	Seq      uint64 // message ID, from the same counter as queued messages
	Epoch    string
	StreamID string
	At       time.Time
}

// Send appends payload (already encoded) to room's stream in one step.
func (b *Broadcaster) Send(ctx context.Context, room, producer string, payload []byte) (Sent, error) {
	v, err := b.cfg.Engine.Run(ctx, b.rdb, lua.OOB, b.layout.RoomKeys(room), b.cfg.Args(room, producer, payload)...).Slice()
	if err != nil {
		return Sent{}, fmt.Errorf("syncfanout: out-of-band to room %q: %w", room, err)
	}
	// Reply of oob.lua (see its header): status, seq, epoch, stream ID, now
	// ms; or TOO_LARGE, 0, the payload's size, the room's limit.
	const seqAt, epochAt, idAt, nowAt = 1, 2, 3, 4
	const sizeAt, limitAt = 2, 3
	if st, _ := v[0].(string); st == sferr.StatusTooLarge && len(v) > limitAt {
		size, _ := v[sizeAt].(int64)
		limit, _ := v[limitAt].(int64)
		return Sent{}, fmt.Errorf("%w: %d bytes, room %q limit %d (Policy.MaxPayloadBytes)", sferr.ErrPayloadTooLarge, size, room, limit)
	}
	if len(v) <= nowAt {
		return Sent{}, fmt.Errorf("syncfanout: out-of-band to room %q: short reply", room)
	}
	seq, _ := v[seqAt].(int64)
	epoch, _ := v[epochAt].(string)
	id, _ := v[idAt].(string)
	at, _ := v[nowAt].(int64)
	if seq <= 0 || id == "" {
		return Sent{}, fmt.Errorf("syncfanout: out-of-band to room %q: unexpected reply %v", room, v)
	}
	return Sent{Seq: uint64(seq), Epoch: epoch, StreamID: id, At: time.UnixMilli(at)}, nil
}
