package streams_test

import (
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/streams"
)

// TestDecodeAdminEvents: the operators' events decode with their actor,
// reason and details, as admin_*.lua writes them.
func TestDecodeAdminEvents(t *testing.T) {
	entry := func(fields ...string) redis.XMessage {
		m := redis.XMessage{ID: "1700000000000-0", Values: map[string]any{}}
		for i := 0; i+1 < len(fields); i += 2 {
			m.Values[fields[i]] = fields[i+1]
		}
		return m
	}
	for _, c := range []struct {
		m    redis.XMessage
		want streams.Event
	}{
		{entry("t", "P", "a", "ops", "r", "deploy"), streams.Event{Type: streams.Pause, Actor: "ops", Reason: "deploy"}},
		{entry("t", "R", "a", "ops", "r", ""), streams.Event{Type: streams.Resume, Actor: "ops"}},
		{entry("t", "U", "a", "ops", "r", "x", "n", "3"), streams.Event{Type: streams.Purge, Actor: "ops", Reason: "x", Count: 3, Priority: -1}},
		{entry("t", "U", "a", "ops", "r", "x", "n", "0", "pr", "4", "id", "18446744073709551615"), streams.Event{Type: streams.Purge, Actor: "ops", Reason: "x", Priority: 4, MessageID: 18446744073709551615}},
		{entry("t", "F", "a", "ops", "r", "", "id", "9", "ms", "a\nb c"), streams.Event{Type: streams.ForceRelease, Actor: "ops", MessageID: 9, Missing: []string{"a", "b c"}}},
		{entry("t", "F", "a", "ops", "r", "", "id", "9", "ms", ""), streams.Event{Type: streams.ForceRelease, Actor: "ops", MessageID: 9}},
		{entry("t", "K", "c", "1-x", "r", "bye", "o", "o", "a", "ops"), streams.Event{Type: streams.Kick, ClientID: "1-x", Observer: true, Reason: "bye", Actor: "ops"}},
		{entry("t", "D", "a", "ops", "r", "gone"), streams.Event{Type: streams.RoomDeleted, Actor: "ops", Reason: "gone"}},
	} {
		ev, err := streams.Decode("room", c.m)
		require.NoError(t, err, "%v", c.m.Values)
		c.want.ID, c.want.Room, c.want.At = c.m.ID, "room", ev.At
		require.Equal(t, c.want, ev)
	}
	for _, bad := range []redis.XMessage{
		entry("t", "U", "a", "ops", "n", "-1"),
		entry("t", "U", "a", "ops", "n", "1", "pr", "x"),
		entry("t", "F", "a", "ops", "id", "0"),
		entry("t", "K", "a", "ops"),
	} {
		_, err := streams.Decode("room", bad)
		require.Error(t, err, "%v", bad.Values)
	}
}
