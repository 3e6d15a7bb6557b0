package redissyncfanoutqueue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/queue"
)

// HandleMessageFunc receives one message for one client (the original's
// callback shape). An error or a panic is counted and logged by the
// underlying queue.Worker; it changes nothing else.
type HandleMessageFunc func(ctx context.Context, clientId *string, msg *Message) error

// HandleRoomClientTimeoutFunc is told that a client was evicted from a room.
type HandleRoomClientTimeoutFunc func(ctx context.Context, clientId, room *string) error

// ApiOptions configure NewApiClient. The first three fields are the
// original's; the rest are additions whose zero values keep its behaviour.
type ApiOptions struct {
	// RedisOptions: NewApiClient opens a client with them and Close
	// closes it. Ignored when RedisClient is set.
	RedisOptions *redis.Options
	// ClientTimeout: a subscriber that sends no Ping for this long is
	// evicted (at least 1s, as in the original).
	ClientTimeout time.Duration
	// RedisKeyPrefix starts every key. Braces are dropped (syncfanout
	// places its own hash tags), so the original's "{app}::test" becomes
	// "app::test"; the result must be 1..64 bytes.
	RedisKeyPrefix string

	// RedisClient, when set, is used instead of RedisOptions (for example a
	// *redis.ClusterClient). The caller keeps it: Close does not close it.
	RedisClient redis.UniversalClient
	// Queue tunes the underlying queue.Queue (AckSecret, NumShards,
	// MaxPayloadBytes, HoldWhenEmpty...). Its Prefix and ClientTimeout are
	// replaced by RedisKeyPrefix and ClientTimeout.
	Queue queue.Options
}

// WorkerOptions configure NewWorkerClient. The first four fields are the
// original's; the rest are additions whose zero values keep its behaviour.
type WorkerOptions struct {
	// RedisOptions and RedisKeyPrefix: as in ApiOptions.
	RedisOptions   *redis.Options
	RedisKeyPrefix string
	// HandleMessage is called for every message released in any room, once
	// per member of the room (required).
	HandleMessage HandleMessageFunc
	// HandleRoomClientTimeout, when set, is called once when a member of a
	// room is evicted: no Ping for ClientTimeout, or no ack within
	// Queue.AckTimeout when that is set. Not when it unsubscribes.
	HandleRoomClientTimeout HandleRoomClientTimeoutFunc

	// ClientTimeout of the worker's own queue.Queue (default: Queue's, else
	// 15s). Each Ping sets its client's deadline from the pinging
	// process's ClientTimeout; this one only paces the worker's
	// housekeeping.
	ClientTimeout time.Duration
	// RedisClient and Queue: as in ApiOptions.
	RedisClient redis.UniversalClient
	Queue       queue.Options
	// Serves, when set, limits the worker to the members it accepts:
	// HandleMessage and HandleRoomClientTimeout are called only for them.
	// Like the original's, the worker otherwise delivers for every member
	// of every room, including members that a program on package queue
	// joined and serves itself; in a room shared with such programs, give
	// it a Serves that accepts only this side's clients, or the handler
	// acks on their behalf.
	Serves func(clientId, room string) bool
	// Worker tunes the underlying follow-all queue.Worker (Logger,
	// DiscoveryInterval, LatencyWindow, FollowAllIndex/FollowAllCount to
	// split the rooms between several worker processes...). Its
	// HandleMessage, HandleClientTimeout and FollowAll are set by
	// NewWorkerClient.
	Worker queue.WorkerOptions
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{queue.ErrInvalidOption}, args...)...)
}

// Validate reports, as an error wrapping queue.ErrInvalidOption, the first
// field that NewApiClient would refuse.
func (o *ApiOptions) Validate() error {
	switch {
	case o == nil:
		return invalid("nil ApiOptions")
	case o.RedisOptions == nil && o.RedisClient == nil:
		return invalid("ApiOptions need RedisOptions or RedisClient")
	case o.ClientTimeout < time.Second:
		return invalid("ApiOptions.ClientTimeout=%v, want at least 1s", o.ClientTimeout)
	}
	_, err := o.queueOptions()
	return err
}

// Validate reports, as an error wrapping queue.ErrInvalidOption, the first
// field that NewWorkerClient would refuse. Unlike the original, a nil
// HandleRoomClientTimeout is allowed.
func (o *WorkerOptions) Validate() error {
	switch {
	case o == nil:
		return invalid("nil WorkerOptions")
	case o.RedisOptions == nil && o.RedisClient == nil:
		return invalid("WorkerOptions need RedisOptions or RedisClient")
	case o.HandleMessage == nil:
		return invalid("WorkerOptions.HandleMessage is required")
	case o.ClientTimeout != 0 && o.ClientTimeout < time.Second:
		return invalid("WorkerOptions.ClientTimeout=%v, want at least 1s", o.ClientTimeout)
	}
	_, err := o.queueOptions()
	return err
}

func (o *ApiOptions) queueOptions() (queue.Options, error) {
	qo := o.Queue
	qo.ClientTimeout = o.ClientTimeout
	var err error
	qo.Prefix, err = mapPrefix(o.RedisKeyPrefix)
	return qo, err
}

func (o *WorkerOptions) queueOptions() (queue.Options, error) {
	qo := o.Queue
	if o.ClientTimeout != 0 {
		qo.ClientTimeout = o.ClientTimeout
	}
	var err error
	qo.Prefix, err = mapPrefix(o.RedisKeyPrefix)
	return qo, err
}

// mapPrefix turns the original's prefix into a syncfanout one. The
// original wrapped its prefix in a hash tag so that every key landed in one
// cluster slot (one slot for the whole deployment); syncfanout tags keys per
// shard itself and refuses braces, so they are dropped rather than making
// every migrated program change its prefix.
func mapPrefix(p string) (string, error) {
	if p == "" {
		return "", invalid("RedisKeyPrefix is required")
	}
	return strings.NewReplacer("{", "", "}", "").Replace(p), nil
}

// redisClient returns the client to use and whether Close must close it.
func redisClient(client redis.UniversalClient, opts *redis.Options) (redis.UniversalClient, bool) {
	if client != nil {
		return client, false
	}
	return redis.NewClient(opts), true
}

// openQueue opens the queue.Queue behind an API or worker client, on the
// caller's client or on one it makes from opts (closed again if New fails),
// and says whether Close must close that client.
func openQueue(ctx context.Context, client redis.UniversalClient, opts *redis.Options, qo queue.Options) (*queue.Queue, redis.UniversalClient, bool, error) {
	rdb, owns := redisClient(client, opts)
	q, err := queue.New(ctx, rdb, qo)
	if err != nil {
		if owns {
			_ = rdb.Close()
		}
		return nil, nil, false, err
	}
	return q, rdb, owns, nil
}
