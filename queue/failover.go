package queue

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"weak"

	"github.com/redis/go-redis/v9"
)

// Failover support (docs/design.md, "Failover").
//
// A *redis.ClusterClient routes by a slot map it reloads on MOVED or ASK
// replies, and otherwise only when the map is older than
// ClusterStateReloadInterval (60s by default). A killed master answers
// neither: every command of its slots fails with "connection refused"
// until that timer fires, long after its replica took over, and meanwhile
// members cannot beat or ack and get evicted. So every ClusterClient the
// library uses gets a hook that asks it to reload its slot map after a
// connection error, at most once per reloadEvery: the calls after the
// promotion then find the new master within about reloadEvery.

// reloadEvery bounds how often a client is asked to reload its slot map.
const reloadEvery = 500 * time.Millisecond

// watched holds the ClusterClients that got the hook, so that a client
// shared by many Queues gets it once. Weak keys: a client nobody uses any
// more leaves the set when it is collected.
var watched struct {
	sync.Mutex
	m map[weak.Pointer[redis.ClusterClient]]struct{}
}

// watchTopology gives rdb's ClusterClient, if it is one, the reload hook
// (once per client). The hook only observes errors: commands, replies and
// errors pass through unchanged, for the caller's own commands too, which
// then also find a new master sooner. Its node clients, those that exist
// (found through ctx) and those to come (a promoted replica's), get a hook
// on their dials: go-redis returns a command's error only after its own
// retries (up to a second against a dead node), a refused dial says it at
// once.
func watchTopology(ctx context.Context, rdb redis.UniversalClient) {
	cc, h := hookClient(rdb)
	if h == nil {
		return
	}
	// Only hooks are added: a failure here leaves the nodes to come.
	_ = cc.ForEachShard(ctx, func(_ context.Context, n *redis.Client) error {
		h.watchNode(n)
		return nil
	})
}

// watchNewClient is watchTopology for a client the library just created,
// which has no node clients yet: it makes no call.
func watchNewClient(rdb redis.UniversalClient) { hookClient(rdb) }

// hookClient adds the hooks to rdb's ClusterClient and returns it and its
// hook, or a nil hook when it is no ClusterClient or was hooked before.
func hookClient(rdb redis.UniversalClient) (*redis.ClusterClient, *reloadHook) {
	cc, ok := unwrapClient(rdb).(*redis.ClusterClient)
	if !ok {
		return nil, nil
	}
	wp := weak.Make(cc)
	watched.Lock()
	defer watched.Unlock()
	if watched.m == nil {
		watched.m = map[weak.Pointer[redis.ClusterClient]]struct{}{}
	}
	if _, ok := watched.m[wp]; ok {
		return nil, nil
	}
	watched.m[wp] = struct{}{}
	runtime.AddCleanup(cc, func(wp weak.Pointer[redis.ClusterClient]) {
		watched.Lock()
		delete(watched.m, wp)
		watched.Unlock()
	}, wp)
	h := &reloadHook{cc: wp}
	cc.AddHook(h)
	cc.OnNewNode(h.watchNode)
	return cc, h
}

// reloadHook asks its client to reload the slot map after a connection
// error. The client holds it: it holds the client weakly.
type reloadHook struct {
	cc    weak.Pointer[redis.ClusterClient]
	last  atomic.Int64 // unix nanos of the last reload asked for
	nodes sync.Map     // *redis.Client -> struct{}: node clients hooked
}

// watchNode adds the dial hook to a node client, once.
func (h *reloadHook) watchNode(n *redis.Client) {
	if _, dup := h.nodes.LoadOrStore(n, struct{}{}); !dup {
		n.AddHook(dialHook{h})
	}
}

// dialHook tells its reloadHook about the failed dials of a node client.
type dialHook struct{ h *reloadHook }

func (d dialHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			d.h.observe(err)
		}
		return c, err
	}
}

func (d dialHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (d dialHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil {
			h.observe(err)
		}
		return err
	}
}

func (h *reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil {
			h.observe(err)
		}
		for _, c := range cmds {
			if topologyError(c.Err()) {
				h.observe(c.Err())
				break
			}
		}
		return err
	}
}

func (h *reloadHook) observe(err error) {
	if !topologyError(err) {
		return
	}
	now := time.Now().UnixNano()
	last := h.last.Load()
	if now-last < int64(reloadEvery) || !h.last.CompareAndSwap(last, now) {
		return
	}
	if cc := h.cc.Value(); cc != nil {
		// Asynchronous in go-redis (which ignores the context and reloads
		// in the background): the command that failed is not held up.
		cc.ReloadState(context.Background())
	}
}

// topologyError reports the errors that can mean the node a command went
// to is gone or no longer serves it: failed dials, broken connections,
// read/write timeouts and CLUSTERDOWN. The caller's own deadlines and
// Redis's verdicts on a command do not count.
func topologyError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if redis.IsClusterDownError(err) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
