package queue

import (
	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/streams"
)

// owedEvents decodes the in-flight message that a member subscribing again
// has not acked (barrier.Joined.Owed). The process that delivered it
// before may be gone (a gateway restarted with the same client IDs), and
// the barrier waits for that member's ack, so the new subscription
// delivers it again, ahead of everything after its join point. This is the
// one redelivery the library makes: it happens only when the same client
// subscribes again while it owes the ack.
func owedEvents(q *Queue, room string, owed []redis.XMessage) []streams.Event {
	var evs []streams.Event
	for _, m := range owed {
		ev, err := streams.Decode(room, m)
		if err != nil {
			q.stats.Invalid.Add(1)
			// The room waits for this member's ack of it all the same.
			if ev = refusedEvent(room, m.ID, err); ev.Type == undecodable {
				evs = append(evs, ev)
			}
			continue
		}
		if ev.Type != streams.Message {
			q.stats.Invalid.Add(1)
			continue
		}
		evs = append(evs, ev)
	}
	return evs
}
