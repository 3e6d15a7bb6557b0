package queue

import (
	"context"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Errors of the operators' transitions (Admin). A transition refused with
// one of them changed nothing in Redis.
var (
	// ErrInvalidActor: an Admin actor that is empty, longer than
	// MaxActorLen, not UTF-8 or holds control characters.
	ErrInvalidActor = sferr.ErrInvalidActor
	// ErrInvalidReason: a reason longer than MaxReasonLen, not UTF-8 or
	// holding control characters.
	ErrInvalidReason = sferr.ErrInvalidReason
	// ErrUnknownRoom: the room holds nothing (never used, expired or
	// deleted), so there is nothing to act on.
	ErrUnknownRoom = sferr.ErrUnknownRoom
	// ErrAlreadyPaused: Pause of a paused room.
	ErrAlreadyPaused = sferr.ErrAlreadyPaused
	// ErrNotPaused: Resume of a room that is not paused.
	ErrNotPaused = sferr.ErrNotPaused
	// ErrNoInFlight: Release of a room with no message in flight.
	ErrNoInFlight = sferr.ErrNoInFlight
	// ErrKicked: an operator removed the client from its room (Admin.Kick
	// or Admin.DeleteRoom); see KickedError.
	ErrKicked = sferr.ErrKicked
	// ErrRoomDeleted: an operator deleted the room (Admin.DeleteRoom); a
	// KickedError with RoomDeleted set matches it, and ErrKicked too.
	ErrRoomDeleted = sferr.ErrRoomDeleted
)

// Bounds of the texts recorded with every admin event.
const (
	MaxActorLen  = 256
	MaxReasonLen = 1024
)

// KickedError ends a subscription (Subscription.Next) whose client an
// operator removed from its room: kicked (Admin.Kick), or with the whole
// room (Admin.DeleteRoom, RoomDeleted set). It matches ErrKicked, and
// ErrRoomDeleted when RoomDeleted is set, with errors.Is; never
// ErrEvicted, so callers can tell it from a timeout. The client may
// subscribe again.
type KickedError struct {
	ClientID    string
	Room        string
	Actor       string // who did it
	Reason      string // why, as the operator gave it
	RoomDeleted bool
}

func (e *KickedError) Error() string {
	what := "kicked from"
	if e.RoomDeleted {
		what = "removed with the deletion of"
	}
	return fmt.Sprintf("syncfanout: client %q was %s room %q by %q (reason %q)", e.ClientID, what, e.Room, e.Actor, e.Reason)
}

// Is reports whether target is ErrKicked, or ErrRoomDeleted for a deletion.
func (e *KickedError) Is(target error) bool {
	return target == ErrKicked || (e.RoomDeleted && target == ErrRoomDeleted)
}

// Admin runs the operators' transitions on rooms, each recorded in the
// room's stream with the actor it was built with and the reason given,
// counted in Stats (Admin* fields), and made in one atomic script call:
// a transition refused for bad input or a room in the wrong state returns
// a typed error and changes nothing.
type Admin struct {
	q     *Queue
	actor string
	err   error // the actor's validation, returned by every call
}

// Admin returns the operators' handle acting as actor (a user name, say:
// 1..MaxActorLen bytes of UTF-8 without control characters). A bad actor
// makes every call return ErrInvalidActor.
func (q *Queue) Admin(actor string) *Admin {
	a := &Admin{q: q, actor: actor}
	switch {
	case actor == "":
		a.err = fmt.Errorf("%w: empty", ErrInvalidActor)
	case len(actor) > MaxActorLen:
		a.err = fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidActor, len(actor), MaxActorLen)
	case !printable(actor):
		a.err = fmt.Errorf("%w: %q is not UTF-8 without control characters", ErrInvalidActor, actor)
	}
	return a
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// check validates what every transition takes, before any Redis call.
func (a *Admin) check(ctx context.Context, room, reason string) error {
	if err := a.q.check(ctx); err != nil {
		return err
	}
	if a.err != nil {
		return a.err
	}
	if err := keys.ValidateRoom(room); err != nil {
		return err
	}
	if len(reason) > MaxReasonLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidReason, len(reason), MaxReasonLen)
	}
	if !printable(reason) {
		return fmt.Errorf("%w: %q is not UTF-8 without control characters", ErrInvalidReason, reason)
	}
	return nil
}

// Pause stops room from releasing: sends are still accepted and queued,
// the in-flight message can still be acked (and completes), out-of-band
// messages still go out, members still join, leave and time out; nothing
// new is released until Resume. RoomState reports the pause. A paused
// room never expires as idle. ErrAlreadyPaused when it is paused already,
// ErrUnknownRoom when it holds nothing.
func (a *Admin) Pause(ctx context.Context, room, reason string) error {
	if err := a.check(ctx, room, reason); err != nil {
		return err
	}
	if err := a.q.barrier.Pause(ctx, room, a.actor, reason); err != nil {
		return err
	}
	a.q.stats.AdminPause.Add(1)
	return nil
}

// Resume ends room's pause and, in the same step, releases what the
// barrier allows. ErrNotPaused when it is not paused.
func (a *Admin) Resume(ctx context.Context, room, reason string) error {
	if err := a.check(ctx, room, reason); err != nil {
		return err
	}
	r, err := a.q.barrier.Resume(ctx, room, a.actor, reason)
	if err != nil {
		return err
	}
	a.q.stats.AdminResume.Add(1)
	a.q.stats.Released.Add(uint64(r.Released))
	return nil
}

// PurgeFilter selects the pending messages Purge drops; its zero value
// selects them all. The message in flight is never pending.
type PurgeFilter struct {
	// Priority, when set, limits the purge to that level.
	Priority *int
	// UpTo, when set, limits it to messages whose ID (as Send returned it,
	// in decimal) is at most this one.
	UpTo string
}

// Purge drops room's pending messages selected by f and returns how many
// it dropped (0 is not an error, and is recorded too). A bad priority is
// an ErrInvalidPriority, a bad UpTo an ErrInvalidOption.
func (a *Admin) Purge(ctx context.Context, room string, f PurgeFilter, reason string) (int, error) {
	if err := a.check(ctx, room, reason); err != nil {
		return 0, err
	}
	p := -1
	if f.Priority != nil {
		p = *f.Priority
		if p < MinPriority || p > MaxPriority {
			return 0, fmt.Errorf("%w: %d, want %d..%d", ErrInvalidPriority, p, MinPriority, MaxPriority)
		}
	}
	var upTo uint64
	if f.UpTo != "" {
		n, err := strconv.ParseUint(f.UpTo, 10, 64)
		if err != nil || n == 0 || f.UpTo[0] == '0' || f.UpTo[0] == '+' {
			return 0, fmt.Errorf("%w: PurgeFilter.UpTo %q is not a message ID (a positive decimal)", ErrInvalidOption, f.UpTo)
		}
		upTo = n
	}
	r, err := a.q.barrier.Purge(ctx, room, a.actor, reason, p, upTo)
	if err != nil {
		return 0, err
	}
	a.q.stats.AdminPurge.Add(1)
	return r.Dropped, nil
}

// Release completes room's in-flight message without waiting for the
// members that have not acked it, and returns them (sorted; empty when
// nobody was missing). They stay members, excused from it as the
// straggler policy Skip excuses: their ack tokens for it become stale
// (ErrStaleAck; in a windowed room, accepted and changing nothing while a
// quorum left another member behind it), and the next message is
// released in the same step unless the room is paused. In a windowed room
// the in-flight message is the oldest of the window. ErrNoInFlight when no
// message is in flight.
func (a *Admin) Release(ctx context.Context, room, reason string) ([]string, error) {
	if err := a.check(ctx, room, reason); err != nil {
		return nil, err
	}
	r, err := a.q.barrier.ForceRelease(ctx, room, a.actor, reason)
	if err != nil {
		return nil, err
	}
	a.q.stats.AdminRelease.Add(1)
	a.q.stats.Released.Add(uint64(r.Released))
	return r.Missing, nil
}

// Kick removes member (a voting member or an observer) from room as an
// eviction would: the room stops waiting for it (releasing in the same
// step if it was the last ack missing) and its ack tokens die. Its
// process is told: Subscription.Next returns a *KickedError (ErrKicked),
// a Worker calls HandleClientKicked. A client kept alive with Ping alone
// (Subscribe) learns it from Ping, which cannot tell a kick from an
// eviction and returns an *EvictedError. ErrNotMember when it is neither.
func (a *Admin) Kick(ctx context.Context, room, member, reason string) error {
	if err := a.check(ctx, room, reason); err != nil {
		return err
	}
	if err := keys.ValidateClientID(member); err != nil {
		return err
	}
	r, err := a.q.barrier.Kick(ctx, room, a.actor, reason, member)
	if err != nil {
		return err
	}
	a.q.stats.AdminKick.Add(1)
	a.q.stats.Released.Add(uint64(r.Released))
	return nil
}

// DeleteRoom tells room's members and observers (their subscriptions end
// with a *KickedError matching ErrRoomDeleted; workers call
// HandleClientKicked), then deletes every key of the room, history and
// pending messages included, and removes it from the shard's indexes, in
// the same step. The name can be used again: it starts a new room.
func (a *Admin) DeleteRoom(ctx context.Context, room, reason string) error {
	if err := a.check(ctx, room, reason); err != nil {
		return err
	}
	if _, err := a.q.barrier.Delete(ctx, room, a.actor, reason); err != nil {
		return err
	}
	a.q.stats.AdminDelete.Add(1)
	return nil
}
