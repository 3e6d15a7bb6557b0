package queue

import (
	"context"
	"time"

	"github.com/syncfanout/syncfanout/barrier"
	"github.com/syncfanout/syncfanout/internal/keys"
)

// RoomState is a consistent snapshot of a room, read in one atomic step.
type RoomState struct {
	Room       string
	Epoch      string    // changes when Redis lost the room's state (see ErrRoomReset)
	Now        time.Time // server clock at the snapshot
	LastSeq    uint64    // highest message ID issued
	Pending    int
	ByPriority [MaxPriority + 1]int // pending messages by priority
	InFlight   *InFlight            // nil when no message is in flight
	Members    []Member             // voting members, by client ID
	Observers  []Member             // by client ID
	Missing    []string             // members the in-flight message waits on, sorted
	StreamLen  int64                // entries in the room's delivery stream
	Hold       bool                 // the last Send came from a Queue with Options.HoldWhenEmpty
	// Policy is the policy the room follows: its stored one, or this
	// Queue's Options.DefaultPolicy when PolicyStored is false.
	Policy       Policy
	PolicyStored bool
	// Window lists every message in flight, oldest first: InFlight is the
	// first, and there are more only under a Policy.Window above 1.
	Window []InFlight
	// Paused is set while an operator has paused the room (Admin.Pause):
	// sends are queued and nothing new is released. PausedAt (server
	// clock), PausedBy (the actor) and PauseReason say since when, by whom
	// and why.
	Paused      bool
	PausedAt    time.Time
	PausedBy    string
	PauseReason string
}

// Member is a member or observer of a room.
type Member struct {
	ClientID      string
	Observer      bool
	LastHeartbeat time.Time
	Deadline      time.Time // evicted when no heartbeat arrives before it
	Acked         bool      // acked the in-flight message (or joined after it)
	AckedAt       time.Time // zero when it joined after the release
	// Lag is how many messages released to the room's members this member
	// has not acked (observers: 0). In lock-step it is 0 or 1; under a
	// Policy.Window up to the window; under a Policy.Quorum it grows while
	// the member falls behind, and Policy.MaxLag bounds it.
	Lag int
}

// InFlight is the released message the barrier waits on.
type InFlight struct {
	Seq         uint64
	StreamID    string
	ReleasedAt  time.Time
	Age         time.Duration // by the server clock
	AckDeadline time.Time     // zero without an ack timeout
}

// roomState converts the barrier's snapshot at the API boundary, so that
// users name queue types and barrier stays free to change.
func roomState(s barrier.State) RoomState {
	r := RoomState{
		Room: s.Room, Epoch: s.Epoch, Now: s.Now, LastSeq: s.LastSeq,
		Pending: s.Pending, ByPriority: s.ByPriority,
		Members: members(s.Members), Observers: members(s.Observers),
		Missing: s.Missing, StreamLen: s.StreamLen, Hold: s.Hold,
		Paused: s.Paused, PausedAt: s.PausedAt, PausedBy: s.PausedBy, PauseReason: s.PauseReason,
	}
	if f := s.InFlight; f != nil {
		r.InFlight = &InFlight{Seq: f.Seq, StreamID: f.StreamID, ReleasedAt: f.ReleasedAt, Age: f.Age, AckDeadline: f.AckDeadline}
	}
	for _, f := range s.Window {
		r.Window = append(r.Window, InFlight(f))
	}
	return r
}

func members(ms []barrier.Member) []Member {
	if ms == nil {
		return nil
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member(m)
	}
	return out
}

// RoomState returns the room's pending count, in-flight message and its
// age, every member with its last heartbeat, and who acked or is missing.
// Rooms exist implicitly: one that holds nothing (never used, or expired)
// has an empty state (LastSeq 0, no members, StreamLen 0) and no error.
func (q *Queue) RoomState(ctx context.Context, room string) (RoomState, error) {
	if err := q.check(ctx); err != nil {
		return RoomState{}, err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return RoomState{}, err
	}
	s, err := q.barrier.State(ctx, room)
	if err != nil {
		return RoomState{}, err
	}
	r := roomState(s)
	if r.Policy, err = q.roomPolicy(room, s.Policy, s.PolicyStored); err != nil {
		return RoomState{}, err
	}
	r.PolicyStored = s.PolicyStored
	return r, nil
}
