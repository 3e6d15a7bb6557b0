package queue

import (
	"log/slog"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// ctxTimeoutWarned makes the ContextTimeoutEnabled warning once per
// process: a service that builds many Queues on one client hears it once.
var ctxTimeoutWarned atomic.Bool

// ctxTimeoutWarning is what New logs when the caller's client ignores
// context deadlines on reads.
const ctxTimeoutWarning = "syncfanout: the Redis client has ContextTimeoutEnabled=false, so go-redis ignores context deadlines while it waits for a reply " +
	"and a call can outlast its context by up to the client's ReadTimeout; set ContextTimeoutEnabled: true in its options"

// warnContextTimeout logs ctxTimeoutWarning, once per process, when rdb's
// options are readable and say ContextTimeoutEnabled=false. Clients whose
// options cannot be read (wrappers, other implementations) are left
// alone.
func warnContextTimeout(rdb redis.UniversalClient, log *slog.Logger) {
	var enabled bool
	switch c := rdb.(type) {
	case *redis.Client: // Sentinel's failover client is one too
		enabled = c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		enabled = c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		enabled = c.Options().ContextTimeoutEnabled
	default:
		return
	}
	if enabled || ctxTimeoutWarned.Swap(true) {
		return
	}
	log.Warn(ctxTimeoutWarning)
}
