package barrier

import (
	"context"
	"fmt"
	"time"

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
	r := b.Pipelined(ctx, acks, nil)
	return r.Acks, r.AckErrs, r.AckRetry
}

// SendArgs is one send of Pipelined, with the arguments of Enqueue (at
// least one payload).
type SendArgs struct {
	Room       string
	Priority   int
	Producer   string
	AckTimeout time.Duration
	Payloads   [][]byte
}

// PipeResult is what Pipelined returns: for each ack and each send, what
// Ack or Enqueue would have returned, or that the call must be run again
// alone (Retry).
type PipeResult struct {
	Acks      []Acked
	AckErrs   []error
	AckRetry  []bool
	Sends     []Enqueued
	SendErrs  []error
	SendRetry []bool
}

// Pipelined runs acks and sends in one round trip, each as its own script
// call, so each keeps every rule of Ack and Enqueue. An ack that did not
// run or whose outcome is unknown is marked for retry (a repeated ack
// changes nothing). A send is marked for retry only when Redis refused it
// without running it (the script not loaded, a slot moving); any other
// error is its outcome, as it would be for Enqueue, since sending again
// could send twice.
func (b *Barrier) Pipelined(ctx context.Context, acks []AckArgs, sends []SendArgs) PipeResult {
	r := PipeResult{
		Acks: make([]Acked, len(acks)), AckErrs: make([]error, len(acks)), AckRetry: make([]bool, len(acks)),
		Sends: make([]Enqueued, len(sends)), SendErrs: make([]error, len(sends)), SendRetry: make([]bool, len(sends)),
	}
	pipe := b.rdb.Pipeline()
	ackCmds := make([]*redis.Cmd, len(acks))
	for i, a := range acks {
		// A pipeline has no fallback: a NOSCRIPT or a function not loaded
		// comes back as an error and goes to retry.
		ackCmds[i] = b.cfg.Engine.Pipe(ctx, pipe, lua.Ack, b.layout.RoomKeys(a.Room), b.cfg.Args(a.Room, a.Client, a.Seq, a.Epoch, a.Incarnation)...)
	}
	sendCmds := make([]*redis.Cmd, len(sends))
	for i, s := range sends {
		sendCmds[i] = b.cfg.Engine.Pipe(ctx, pipe, lua.Send, b.layout.RoomKeys(s.Room), b.cfg.Args(s.Room, enqueueArgs(s.Priority, s.Producer, s.AckTimeout, s.Payloads)...)...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, a := range acks {
		v, err := ackCmds[i].Slice()
		switch {
		case err != nil:
			r.AckRetry[i] = true
		case len(v) == 0:
			r.AckErrs[i] = fmt.Errorf("syncfanout: room %q: empty script reply", a.Room)
		default:
			r.Acks[i], r.AckErrs[i] = ackReply(v, a.Room, a.Client, a.Seq)
		}
	}
	for i, s := range sends {
		v, err := sendCmds[i].Slice()
		switch {
		case lua.NotRun(err):
			r.SendRetry[i] = true
		case err != nil:
			r.SendErrs[i] = fmt.Errorf("syncfanout: room %q: %w", s.Room, err)
		case len(v) == 0:
			r.SendErrs[i] = fmt.Errorf("syncfanout: room %q: empty script reply", s.Room)
		default:
			r.Sends[i], r.SendErrs[i] = enqueueReply(v, s.Room)
		}
	}
	return r
}
