package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// stages splits W1 S=1's release latency, measured from outside the
// library: the Ack call, of which the round trip of its script call (a
// go-redis hook on the subscriber's client; the reader has a client of its
// own), and what follows until Next returns the next message. With one
// subscriber on the client, the last ack call seen is that Ack's.
type stages struct {
	Ack, RoundTrip, AfterAck Latencies
}

func (s stages) String() string {
	if len(s.Ack) == 0 {
		return ""
	}
	return fmt.Sprintf("release p50 parts: Ack call %s (its script call's round trip %s), Ack returned -> Next returned %s",
		fMicros(micros(s.Ack.Quantile(0.5))), fMicros(micros(s.RoundTrip.Quantile(0.5))), fMicros(micros(s.AfterAck.Quantile(0.5))))
}

// hookAcks times the ack calls made through c, when the sink measures
// stages (S=1).
func (k *sink) hookAcks(c *redis.Client) {
	if k.spec.S != 1 || k.spec.Quorum > 0 {
		return
	}
	k.stagesC = true
	k.ackRet = make([]int64, k.spec.N+2)
	k.ackRT = make([]int64, k.spec.N+2)
	c.AddHook(ackHook{k})
}

// ackReturned records that the subscriber's Ack(id) returned, with the
// round trip of its script call.
func (k *sink) ackReturned(id uint64) {
	if !k.stagesC || id > uint64(k.spec.N+1) {
		return
	}
	k.ackRet[id] = k.now()
	k.ackRT[id] = k.lastRT.Swap(0)
}

func (k *sink) stagesBetween(lo, hi int) stages {
	var s stages
	if !k.stagesC {
		return s
	}
	for id := lo; id < hi; id++ {
		a, r, rt, d := k.ack[0][id], k.ackRet[id], k.ackRT[id], k.deliv[0][id+1]
		if a == 0 || r == 0 || rt == 0 || d == 0 {
			continue
		}
		s.Ack = append(s.Ack, time.Duration(r-a))
		s.RoundTrip = append(s.RoundTrip, time.Duration(rt))
		s.AfterAck = append(s.AfterAck, time.Duration(d-r))
	}
	return s
}

type ackHook struct{ k *sink }

func (ackHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h ackHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		t := time.Now()
		err := next(ctx, cmd)
		if isAckCall(cmd.Args()) {
			h.k.lastRT.Store(int64(time.Since(t)))
		}
		return err
	}
}

func (ackHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// isAckCall: an FCALL of the library's ack function (syncfanout_<version>_ack).
func isAckCall(args []any) bool {
	if len(args) < 2 {
		return false
	}
	c, _ := args[0].(string)
	fn, _ := args[1].(string)
	return strings.EqualFold(c, "fcall") && strings.HasSuffix(fn, "_ack")
}
