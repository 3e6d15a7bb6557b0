package barrier

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/lua"
)

// AckArgs is one ack of AckPipelined, with the arguments of Ack.
type AckArgs struct {
	Room, Client       string
	Seq                uint64
	Epoch, Incarnation string
}

// AckPipelined runs the acks in one round trip, each as its own ack.lua
// call, so each keeps every rule of Ack. res[i] and errs[i] are what
// Ack(acks[i]) would have returned, except that a call that did not run
// for a reason Ack recovers from by itself (the script not loaded, a slot
// moving) or whose outcome is unknown has retry[i] set: the caller runs
// it again with Ack, which is safe because a repeated ack changes nothing.
func (b *Barrier) AckPipelined(ctx context.Context, acks []AckArgs) (res []Acked, errs []error, retry []bool) {
	res, errs, retry = make([]Acked, len(acks)), make([]error, len(acks)), make([]bool, len(acks))
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(acks))
	for i, a := range acks {
		// A pipeline has no fallback: a NOSCRIPT or a function not loaded
		// comes back as an error and goes to retry.
		cmds[i] = b.cfg.Engine.Pipe(ctx, pipe, lua.Ack, b.layout.RoomKeys(a.Room), b.cfg.Args(a.Room, a.Client, a.Seq, a.Epoch, a.Incarnation)...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, a := range acks {
		v, err := cmds[i].Slice()
		switch {
		case err != nil:
			retry[i] = true
		case len(v) == 0:
			errs[i] = fmt.Errorf("syncfanout: room %q: empty script reply", a.Room)
		default:
			res[i], errs[i] = ackReply(v, a.Room, a.Client, a.Seq)
		}
	}
	return res, errs, retry
}
