package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/queue"
)

// env is what a command runs with: the flags, the outputs, and on demand
// a Redis client and a Queue that does no background work.
type env struct {
	g      globals
	stdin  io.Reader // answers to the admin commands' questions
	stdout io.Writer
	stderr io.Writer
	given  []string // the command's own flags given on the command line

	rdb redis.UniversalClient
	q   *queue.Queue
}

func (e *env) close() {
	if e.q != nil {
		_ = e.q.Close()
	}
	if e.rdb != nil {
		_ = e.rdb.Close()
	}
}

// withTimeout bounds one command's Redis reads by --timeout.
func (e *env) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.g.timeout)
}

// client parses --redis and checks that Redis answers within --timeout.
func (e *env) client(ctx context.Context) (redis.UniversalClient, error) {
	if e.rdb != nil {
		return e.rdb, nil
	}
	if e.g.timeout <= 0 {
		return nil, usageErr("--timeout must be positive, got %v", e.g.timeout)
	}
	rdb, where, err := newClient(e.g)
	if err != nil {
		return nil, err
	}
	e.rdb = rdb
	pctx, cancel := e.withTimeout(ctx)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &cliError{code: exitUnreachable, msg: fmt.Sprintf("cannot reach Redis at %s within %v", where, e.g.timeout), err: err}
	}
	return rdb, nil
}

// newClient builds a client from --redis: one URL is a standalone server
// (or a cluster seed with --cluster), several comma-separated URLs are
// cluster seeds sharing the first one's credentials and TLS settings.
func newClient(g globals) (redis.UniversalClient, string, error) {
	var seeds []*redis.Options
	var addrs []string
	for _, raw := range strings.Split(g.redisURL, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if !strings.Contains(raw, "://") {
			raw = "redis://" + raw
		}
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, "", usageErr("bad --redis URL %q: %v", redact(raw), err)
		}
		seeds = append(seeds, o)
		addrs = append(addrs, o.Addr)
	}
	if len(seeds) == 0 {
		return nil, "", usageErr("--redis is empty")
	}
	where := strings.Join(addrs, ",")
	first := seeds[0]
	// A server that accepts connections but does not answer must fail
	// within --timeout too: reads honour the commands' deadlines.
	if len(seeds) == 1 && !g.cluster {
		first.DialTimeout = g.timeout
		first.ReadTimeout = g.timeout
		first.WriteTimeout = g.timeout
		first.ContextTimeoutEnabled = true
		first.MaxRetries = 1
		return redis.NewClient(first), where, nil
	}
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 addrs,
		Username:              first.Username,
		Password:              first.Password,
		TLSConfig:             first.TLSConfig,
		DialTimeout:           g.timeout,
		ReadTimeout:           g.timeout,
		WriteTimeout:          g.timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
	}), "cluster " + where, nil
}

// redact hides a URL's password in messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// queue returns a Queue that runs no housekeeping. It refuses to start a
// deployment: unless create is set (send), the prefix must already hold
// one. Without --shards it uses the deployment's stored shard count.
func (e *env) queue(ctx context.Context, create bool) (*queue.Queue, error) {
	if e.q != nil {
		return e.q, nil
	}
	rdb, err := e.client(ctx)
	if err != nil {
		return nil, err
	}
	layout, err := keys.New(e.g.prefix, e.g.shards)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	cctx, cancel := e.withTimeout(ctx)
	defer cancel()
	stored, err := rdb.HGet(cctx, layout.Config(), "numShards").Result()
	switch {
	case errors.Is(err, redis.Nil):
		if !create {
			return nil, &cliError{code: exitNotFound, msg: fmt.Sprintf("no syncfanout deployment under prefix %q (check --prefix)", e.g.prefix)}
		}
	case err != nil:
		return nil, fmt.Errorf("reading the deployment's settings: %w", err)
	case stored != strconv.Itoa(e.g.shards):
		n, err := strconv.Atoi(stored)
		if e.g.shardsSet || err != nil {
			return nil, usageErr("the deployment under prefix %q has %s shards, not %d: use --shards %s", e.g.prefix, stored, e.g.shards, stored)
		}
		e.g.shards = n
	}
	q, err := queue.New(cctx, rdb, queue.Options{
		Prefix:    e.g.prefix,
		NumShards: e.g.shards,
		// The CLI must not evict anybody or beat for anybody: it only looks.
		DisableHousekeeping: true,
	})
	if err != nil {
		if errors.Is(err, queue.ErrShardMismatch) {
			return nil, usageErr("%v (use the deployment's --shards)", err)
		}
		if errors.Is(err, queue.ErrInvalidOption) {
			return nil, usageErr("%v", err)
		}
		return nil, err
	}
	e.q = q
	return q, nil
}

// roomArg validates a room name given on the command line.
func roomArg(room string) error {
	if err := keys.ValidateRoom(room); err != nil {
		return usageErr("%v", err)
	}
	return nil
}

// roomState reads a room's state within --timeout. A room with nothing
// stored (never used, or gone after retention) is not an error: its state
// is empty, as the library's RoomState says; commands that show it add a
// note on stderr (emptyNote), in case the name or --prefix is wrong.
func (e *env) roomState(ctx context.Context, q *queue.Queue, room string) (queue.RoomState, error) {
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	return q.RoomState(ctx, room)
}

// emptyRoom reports whether Redis holds nothing of the room.
func emptyRoom(st queue.RoomState) bool {
	return st.LastSeq == 0 && st.Pending == 0 && st.InFlight == nil && len(st.Members) == 0 &&
		len(st.Observers) == 0 && st.StreamLen == 0
}

// emptyNote tells on stderr that the room holds nothing.
func (e *env) emptyNote(cmd string, st queue.RoomState) {
	if emptyRoom(st) {
		fmt.Fprintf(e.stderr, "syncfanout %s: room %q holds nothing under prefix %q (never used, or expired)\n", cmd, st.Room, e.g.prefix)
	}
}
