package barrier

import (
	"context"
	"fmt"
	"strconv"

	"github.com/syncfanout/syncfanout/internal/lua"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// The operators' transitions (admin_*.lua). Each is one script call on the
// room's slot; a refused one (a status other than OK) changed nothing.
// actor and reason are recorded in the room's stream, already checked by
// the caller.

// AdminResult is what an operator's transition did.
type AdminResult struct {
	Released int      // messages released by the same step (resume, release, kick)
	Dropped  int      // purge: pending entries dropped; delete: pending messages
	Missing  []string // release: the members that had not acked
	Role     string   // kick: "m" member, "o" observer
	Members  int      // delete: members the room had
}

func (b *Barrier) admin(ctx context.Context, s *lua.Script, what, room string, extra ...any) ([]any, error) {
	v, err := b.run(ctx, s, room, extra...)
	if err != nil {
		return nil, fmt.Errorf("syncfanout: %s: %w", what, err)
	}
	if err := sferr.FromStatus(str(v, adminStatus)); err != nil {
		return nil, fmt.Errorf("%w: %s: room=%q", err, what, room)
	}
	return v, nil
}

// Pause stops the room's releases until Resume.
func (b *Barrier) Pause(ctx context.Context, room, actor, reason string) error {
	_, err := b.admin(ctx, lua.AdminPause, "pause", room, actor, reason)
	return err
}

// Resume ends a pause and releases what the barrier allows.
func (b *Barrier) Resume(ctx context.Context, room, actor, reason string) (AdminResult, error) {
	v, err := b.admin(ctx, lua.AdminResume, "resume", room, actor, reason)
	if err != nil {
		return AdminResult{}, err
	}
	return AdminResult{Released: int(u64(v, adminReleased))}, nil
}

// Purge drops pending entries: of priority level p (-1: every level), and
// with a message ID of at most upTo when upTo is not 0.
func (b *Barrier) Purge(ctx context.Context, room, actor, reason string, p int, upTo uint64) (AdminResult, error) {
	bound := ""
	if upTo > 0 {
		bound = strconv.FormatUint(upTo, 10)
	}
	v, err := b.admin(ctx, lua.AdminPurge, "purge", room, actor, reason, p, bound)
	if err != nil {
		return AdminResult{}, err
	}
	return AdminResult{Dropped: int(u64(v, adminDropped))}, nil
}

// ForceRelease completes the in-flight message without the missing acks.
func (b *Barrier) ForceRelease(ctx context.Context, room, actor, reason string) (AdminResult, error) {
	v, err := b.admin(ctx, lua.AdminRelease, "release", room, actor, reason)
	if err != nil {
		return AdminResult{}, err
	}
	r := AdminResult{Released: int(u64(v, adminReleased)), Missing: []string{}}
	if len(v) > adminMissing {
		list, _ := v[adminMissing].([]any)
		for i := range list {
			r.Missing = append(r.Missing, str(list, i))
		}
	}
	return r, nil
}

// Kick removes a member or observer, as an eviction would.
func (b *Barrier) Kick(ctx context.Context, room, actor, reason, client string) (AdminResult, error) {
	v, err := b.admin(ctx, lua.AdminKick, "kick", room, actor, reason, client)
	if err != nil {
		return AdminResult{}, fmt.Errorf("%w: client=%q", err, client)
	}
	return AdminResult{Released: int(u64(v, adminReleased)), Role: str(v, adminRole)}, nil
}

// Delete tells the room's members, then deletes every key of the room.
func (b *Barrier) Delete(ctx context.Context, room, actor, reason string) (AdminResult, error) {
	v, err := b.admin(ctx, lua.AdminDelete, "delete", room, actor, reason)
	if err != nil {
		return AdminResult{}, err
	}
	return AdminResult{Members: int(u64(v, adminMembers)), Dropped: int(u64(v, adminDeleted))}, nil
}
