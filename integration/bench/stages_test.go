package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsAckCall(t *testing.T) {
	require.True(t, isAckCall([]any{"fcall", "syncfanout_0123456789ab_ack", 19}))
	require.True(t, isAckCall([]any{"FCALL", "syncfanout_0123456789ab_ack"}))
	require.False(t, isAckCall([]any{"fcall", "syncfanout_0123456789ab_ack_batch", 19}))
	require.False(t, isAckCall([]any{"fcall", "syncfanout_0123456789ab_send", 19}))
	require.False(t, isAckCall([]any{"evalsha", "abc_ack"}))
	require.False(t, isAckCall([]any{"ping"}))
}

// TestStagesBetween: the parts come from the cycle's own stamps, and a
// cycle with a stamp missing is left out.
func TestStagesBetween(t *testing.T) {
	k := newSink(lockstepSpec{S: 1, N: 4, Window: 1})
	k.stagesC = true
	k.ackRet = make([]int64, k.spec.N+2)
	k.ackRT = make([]int64, k.spec.N+2)
	for id := 1; id <= 3; id++ {
		base := int64(id) * 1000
		k.ack[0][id] = base
		k.ackRet[id] = base + 100
		k.ackRT[id] = 90
		k.deliv[0][id+1] = base + 103
	}
	k.ackRT[2] = 0 // no round trip seen: left out
	s := k.stagesBetween(1, 4)
	require.Equal(t, Latencies{100, 100}, s.Ack)
	require.Equal(t, Latencies{90, 90}, s.RoundTrip)
	require.Equal(t, Latencies{3, 3}, s.AfterAck)
	require.Contains(t, s.String(), "Ack call")
	require.Empty(t, stages{}.String())
}
