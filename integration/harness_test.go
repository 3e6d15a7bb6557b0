package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestMain shares one standalone Redis and one 3-master cluster between the
// module's tests, stops them at exit and checks for goroutine leaks.
// A starter for machines without redis-server (a container, say) would be
// registered here with redistest.RegisterStandaloneStarter before Main.
func TestMain(m *testing.M) { redistest.Main(m) }

// TestHarnessTwoProcesses checks the harness from outside the main module:
// two clients, as two processes would be, hand a value over through a
// blocking list pop on a hash-tagged key, on both backends.
func TestHarnessTwoProcesses(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx := t.Context()
		consumer := b.NewClient(t)
		key := b.Prefix + ":{room}:inbox"

		got := make(chan []string, 1)
		errc := make(chan error, 1)
		go func() {
			v, err := consumer.BLPop(ctx, 10*time.Second, key).Result()
			if err != nil {
				errc <- err
				return
			}
			got <- v
		}()
		require.NoError(t, b.Client.RPush(ctx, key, "hello").Err())
		select {
		case v := <-got:
			require.Equal(t, []string{key, "hello"}, v)
		case err := <-errc:
			t.Fatalf("BLPOP: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("BLPOP got nothing")
		}

		masters := 0
		require.NoError(t, b.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			masters++
			return c.Ping(ctx).Err()
		}))
		if b.Name == redistest.NameCluster {
			require.Equal(t, 3, masters)
		} else {
			require.Equal(t, 1, masters)
		}
	})
}
