package queue

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestWarnContextTimeout: New warns, once per process and through
// Options.Logger, when the client it is given ignores context deadlines on
// reads. Not parallel: it resets the process-wide once, and no parallel
// test runs while a sequential one does.
func TestWarnContextTimeout(t *testing.T) {
	redistest.BackendsSerial(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client := func(cte bool) redis.UniversalClient {
			var c redis.UniversalClient
			if b.Name == redistest.NameCluster {
				c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: b.Addrs, ContextTimeoutEnabled: cte})
			} else {
				c = redis.NewClient(&redis.Options{Addr: b.Addrs[0], ContextTimeoutEnabled: cte})
			}
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
		warnings := func(rdb redis.UniversalClient) int {
			var buf bytes.Buffer
			q, err := New(ctx, rdb, Options{Prefix: b.Prefix, DisableHousekeeping: true, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
			require.NoError(t, err)
			require.NoError(t, q.Close())
			return strings.Count(buf.String(), "ContextTimeoutEnabled=false")
		}

		ctxTimeoutWarned.Store(false)
		require.Equal(t, 0, warnings(client(true)))
		require.Equal(t, 1, warnings(client(false)))
		require.Equal(t, 0, warnings(client(false)), "once per process")
		ctxTimeoutWarned.Store(false)
		require.Equal(t, 0, warnings(client(true)))
		require.Equal(t, 1, warnings(client(false)))
	})
}
