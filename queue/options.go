package queue

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// Priority range: lower numbers are released first.
const (
	MinPriority     = 0
	MaxPriority     = 9
	DefaultPriority = 5
)

// The scripts keep one queue per priority: a build fails here (constant
// overflow) if MaxPriority and keys.Levels disagree.
const _ = uint(keys.Levels-1-MaxPriority) + uint(MaxPriority-(keys.Levels-1))

// Options configure a Queue. The zero value of every field selects the
// documented default.
type Options struct {
	// Prefix starts every Redis key (default "syncfanout"); at most 64
	// bytes, no braces or control characters.
	Prefix string
	// ClientTimeout: a member that sends no heartbeat for this long is
	// evicted (default 15s, at least 1s).
	ClientTimeout time.Duration
	// AckTimeout, when set, evicts members that have not acked the in-flight
	// message this long after its release (reason "ack-timeout"), so a live
	// but stuck subscriber cannot hold a room forever. Default 0: off.
	AckTimeout time.Duration
	// NumShards is the number of virtual shards rooms are spread over
	// (default 16, 1..1024). It is stored in Redis on first use, and
	// stored again by housekeeping if Redis loses it; every client of the
	// deployment must use the same value (ErrShardMismatch).
	NumShards int
	// MaxPayloadBytes caps an encoded payload (default 1 MiB).
	MaxPayloadBytes int
	// StreamMaxLen keeps about this many events per room stream (default
	// 10000; -1 keeps everything).
	StreamMaxLen int64
	// StreamMaxAge drops stream events older than this (default 0: no age
	// limit). Both limits apply when both are set. Streams are trimmed when
	// something is appended and, for idle rooms, by housekeeping.
	StreamMaxAge time.Duration
	// IdleRoomTTL: a room left idle (no members, no observers, no backlog,
	// nothing in flight) for this long is deleted, history included
	// (default DefaultIdleRoomTTL, 24h; at least 1s; KeepIdleRooms, or any
	// negative value, keeps idle rooms forever). Housekeeping does it
	// through the due index, O(due rooms); an idle room stays listed
	// (Metrics.IdleRooms, TopRooms) until then. It is measured from the
	// room's newest event: a send into the idle room starts it again, a
	// join ends idleness. The room sets of clients that neither Subscribe
	// nor Ping for IdleRoomTTL + ClientTimeout are dropped as well. A
	// deleted room used again starts over: new epoch, message IDs from 1.
	// Every Queue of a deployment should use the same value: housekeeping
	// applies its own Queue's value to any room it finds due.
	IdleRoomTTL time.Duration
	// HoldWhenEmpty keeps messages sent to a room without members pending
	// until the first member joins, instead of releasing them at once.
	HoldWhenEmpty bool
	// HousekeepingInterval: how often this Queue evicts silent members of
	// any room (default ClientTimeout/4, at most 1s). Every Queue does it,
	// so no separate process is needed.
	HousekeepingInterval time.Duration
	// DisableHousekeeping turns housekeeping off for this Queue (other
	// Queues of the deployment still do it).
	DisableHousekeeping bool
	// HeartbeatInterval: how often members joined through Join beat
	// (default ClientTimeout/3).
	HeartbeatInterval time.Duration
	// AckSecret, when set, signs ack tokens (HMAC-SHA256) so they can cross
	// untrusted hands; every Queue that acks must share it.
	AckSecret []byte
	// PreviousAckSecrets are older secrets whose tokens are still accepted
	// (never issued), for rotating AckSecret without refusing the acks of
	// messages in flight; see docs/security.md. Each at least 16 bytes;
	// they need AckSecret.
	PreviousAckSecrets [][]byte
	// WaitReplicas, when positive, makes every state change wait until
	// this many replicas of the master that ran it acknowledged it (Redis
	// WAIT, on the same connection), or WaitTimeout passed; the call then
	// returns ErrNotReplicated. Replication is asynchronous otherwise: a
	// failover can lose the last writes (see docs/security.md). It needs a
	// *redis.Client or *redis.ClusterClient. Default 0: no waiting.
	WaitReplicas int
	// WaitTimeout bounds each WAIT (default 1s); it must be below the
	// client's ReadTimeout.
	WaitTimeout time.Duration
	// Logger receives background errors (default slog.Default()).
	Logger *slog.Logger
	// DefaultPolicy is the policy of every room that SetPolicy never
	// changed (default: the zero Policy, lock-step). Every Queue of a
	// deployment should use the same one: each applies its own to such
	// rooms. Validated as SetPolicy does (ErrInvalidPolicy).
	DefaultPolicy Policy
	// Tracer, when set, follows every message this Queue sends or
	// delivers (see Tracer; contrib/otelsyncfanout for OpenTelemetry).
	// Default nil: no tracing, and no cost.
	Tracer Tracer
	// ScriptMode says how the room scripts run (default ScriptsAuto: as
	// a Redis Function library, or EVALSHA where Redis refuses functions).
	ScriptMode ScriptMode
}

// ScriptMode is Options.ScriptMode.
type ScriptMode int

const (
	// ScriptsAuto runs the scripts as functions of one Redis Function
	// library (FCALL), loaded on each master at first use and again after
	// a master lost it; when Redis has no functions (before 7.0) or the
	// ACL user may not run FCALL or FUNCTION LOAD, it logs once and runs
	// them with EVALSHA from then on.
	ScriptsAuto ScriptMode = iota
	// ScriptsFunctions runs the functions and never falls back: a refusal
	// is the call's error.
	ScriptsFunctions
	// ScriptsEval runs every script with EVALSHA (EVAL when not cached),
	// as before functions; it needs no FUNCTION permission.
	ScriptsEval
)

const defaultMaxLen = 10000

// DefaultIdleRoomTTL is the default Options.IdleRoomTTL.
const DefaultIdleRoomTTL = 24 * time.Hour

// KeepIdleRooms, as Options.IdleRoomTTL, keeps idle rooms and their
// history forever.
const KeepIdleRooms time.Duration = -1

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "syncfanout"
	}
	if o.ClientTimeout == 0 {
		o.ClientTimeout = 15 * time.Second
	}
	if o.NumShards == 0 {
		o.NumShards = 16
	}
	if o.MaxPayloadBytes == 0 {
		o.MaxPayloadBytes = 1 << 20
	}
	if o.StreamMaxLen == 0 {
		o.StreamMaxLen = defaultMaxLen
	}
	if o.IdleRoomTTL == 0 {
		o.IdleRoomTTL = DefaultIdleRoomTTL
	}
	if o.HousekeepingInterval == 0 {
		o.HousekeepingInterval = min(o.ClientTimeout/4, time.Second)
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = o.ClientTimeout / 3
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.WaitReplicas > 0 && o.WaitTimeout == 0 {
		o.WaitTimeout = time.Second
	}
	return o
}

func (o Options) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{sferr.ErrInvalidOption}, args...)...)
	}
	if err := keys.ValidatePrefix(o.Prefix); err != nil {
		return err
	}
	switch {
	case o.ClientTimeout < time.Second:
		return bad("ClientTimeout=%v, want at least 1s", o.ClientTimeout)
	case o.AckTimeout < 0:
		return bad("AckTimeout=%v, want 0 (off) or positive", o.AckTimeout)
	case o.AckTimeout > 0 && o.AckTimeout < 10*time.Millisecond:
		return bad("AckTimeout=%v, want at least 10ms", o.AckTimeout)
	case o.NumShards < 1 || o.NumShards > keys.MaxShards:
		return bad("NumShards=%d, want 1..%d", o.NumShards, keys.MaxShards)
	case o.MaxPayloadBytes < 1 || o.MaxPayloadBytes > 512<<20:
		return bad("MaxPayloadBytes=%d, want 1..%d", o.MaxPayloadBytes, 512<<20)
	case o.StreamMaxLen < -1:
		return bad("StreamMaxLen=%d, want -1 (unlimited) or positive", o.StreamMaxLen)
	case o.StreamMaxAge < 0:
		return bad("StreamMaxAge=%v, want 0 (none) or positive", o.StreamMaxAge)
	case o.StreamMaxAge > 0 && o.StreamMaxAge < time.Second:
		return bad("StreamMaxAge=%v, want at least 1s", o.StreamMaxAge)
	case o.IdleRoomTTL > 0 && o.IdleRoomTTL < time.Second:
		return bad("IdleRoomTTL=%v, want at least 1s, or negative (KeepIdleRooms)", o.IdleRoomTTL)
	case o.HousekeepingInterval < 10*time.Millisecond || o.HousekeepingInterval > o.ClientTimeout:
		return bad("HousekeepingInterval=%v, want 10ms..ClientTimeout", o.HousekeepingInterval)
	case o.HeartbeatInterval < 10*time.Millisecond || o.HeartbeatInterval >= o.ClientTimeout:
		return bad("HeartbeatInterval=%v, want 10ms..ClientTimeout (exclusive)", o.HeartbeatInterval)
	case o.AckSecret != nil && len(o.AckSecret) < 16:
		return bad("AckSecret is %d bytes, want at least 16", len(o.AckSecret))
	case len(o.PreviousAckSecrets) > 0 && o.AckSecret == nil:
		return bad("PreviousAckSecrets without AckSecret")
	case o.WaitReplicas < 0:
		return bad("WaitReplicas=%d, want 0 (off) or positive", o.WaitReplicas)
	case o.WaitTimeout < 0 || (o.WaitReplicas > 0 && o.WaitTimeout < time.Millisecond):
		return bad("WaitTimeout=%v, want at least 1ms", o.WaitTimeout)
	case o.ScriptMode < ScriptsAuto || o.ScriptMode > ScriptsEval:
		return bad("ScriptMode=%d, want ScriptsAuto, ScriptsFunctions or ScriptsEval", o.ScriptMode)
	}
	if err := o.DefaultPolicy.validate(o.MaxPayloadBytes); err != nil {
		return fmt.Errorf("DefaultPolicy: %w", err)
	}
	for i, p := range o.PreviousAckSecrets {
		if len(p) < 16 {
			return bad("PreviousAckSecrets[%d] is %d bytes, want at least 16", i, len(p))
		}
	}
	return nil
}

// SendOption configures one Send or SendOutOfBand.
type SendOption func(*sendOptions) error

type sendOptions struct {
	priority    int
	producer    string
	headers     map[string]string
	ackDeadline time.Duration
}

// AckDeadline gives the message its own ack timeout: d after its release,
// the members that did not ack it are handled by the room's
// Policy.Straggler (evicted, or skipped), instead of Options.AckTimeout
// later (or never, without one). At least 10ms, in whole milliseconds.
// SendOutOfBand checks it and otherwise ignores it: nobody acks those.
func AckDeadline(d time.Duration) SendOption {
	return func(o *sendOptions) error {
		if d < 10*time.Millisecond || d > 365*24*time.Hour {
			return fmt.Errorf("%w: AckDeadline(%v), want 10ms..8760h", sferr.ErrInvalidOption, d)
		}
		o.ackDeadline = d
		return nil
	}
}

// Priority sets the priority of a message: MinPriority (0, released first)
// to MaxPriority (9). Default DefaultPriority (5). SendOutOfBand checks it
// too (ErrInvalidPriority) and otherwise ignores it: out-of-band messages
// skip the queue.
func Priority(p int) SendOption {
	return func(o *sendOptions) error {
		if p < MinPriority || p > MaxPriority {
			return fmt.Errorf("%w: %d, want %d..%d", sferr.ErrInvalidPriority, p, MinPriority, MaxPriority)
		}
		o.priority = p
		return nil
	}
}

// Producer names the sender, kept with the message and in the stream.
func Producer(id string) SendOption {
	return func(o *sendOptions) error {
		if err := keys.ValidateProducer(id); err != nil {
			return err
		}
		o.producer = id
		return nil
	}
}

// JoinOption configures Join.
type JoinOption func(*joinOptions) error

type joinOptions struct {
	observer bool
	clientID string
}

// AsObserver joins without a vote: the subscription receives every
// delivery but never holds the barrier and never acks.
func AsObserver() JoinOption {
	return func(o *joinOptions) error { o.observer = true; return nil }
}

// WithClientID joins under an existing client ID (from CreateClientID)
// instead of a new one.
func WithClientID(id string) JoinOption {
	return func(o *joinOptions) error {
		if err := keys.ValidateClientID(id); err != nil {
			return err
		}
		o.clientID = id
		return nil
	}
}
