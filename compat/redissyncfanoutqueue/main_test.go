package redissyncfanoutqueue_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	rsfq "github.com/syncfanout/syncfanout/compat/redissyncfanoutqueue"
	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestMain shares one standalone Redis and one 3-master cluster between the
// package's tests and checks for goroutine leaks.
func TestMain(m *testing.M) { redistest.Main(m) }

// The payload the scenario programs send: a struct, so the tests see the
// original's JSON shapes (a map keyed by json tags, float64 numbers).
type item struct {
	Seq  int    `json:"seq"`
	Text string `json:"text"`
}

// seqOf reads the seq field of a Data value as the original's programs
// would: a map[string]interface{} holding a float64.
func seqOf(t testing.TB, data *interface{}) int {
	t.Helper()
	require.NotNil(t, data)
	m, ok := (*data).(map[string]interface{})
	require.True(t, ok, "Data is %T, want map[string]interface{}", *data)
	f, ok := m["seq"].(float64)
	require.True(t, ok, "seq is %T, want float64", m["seq"])
	return int(f)
}

// numberOf reads a number decoded by a queue program, whatever its width.
func numberOf(t testing.TB, v any) int {
	t.Helper()
	rv := reflect.ValueOf(v)
	require.True(t, rv.CanConvert(reflect.TypeOf(float64(0))), "%T is not a number", v)
	return int(rv.Convert(reflect.TypeOf(float64(0))).Float())
}

// prefix is the original's style of key prefix (a hash tag and "::"),
// which the package maps onto the test's own prefix, so the harness still
// deletes every key the test wrote.
func prefix(b *redistest.Backend) string { return "{" + b.Prefix + "}::test" }

// apiOptions builds the options as the original README does: from
// *redis.Options on standalone Redis (the client is then the package's to
// close), and through the RedisClient addition on the cluster, where the
// original's *redis.Options cannot reach.
func apiOptions(t *testing.T, b *redistest.Backend, timeout time.Duration) *rsfq.ApiOptions {
	o := &rsfq.ApiOptions{ClientTimeout: timeout, RedisKeyPrefix: prefix(b)}
	if b.Name == redistest.NameStandalone {
		o.RedisOptions = &redis.Options{Addr: b.Addrs[0]}
	} else {
		o.RedisClient = b.NewClient(t)
	}
	return o
}

func workerOptions(t *testing.T, b *redistest.Backend) *rsfq.WorkerOptions {
	o := &rsfq.WorkerOptions{RedisKeyPrefix: prefix(b)}
	if b.Name == redistest.NameStandalone {
		o.RedisOptions = &redis.Options{Addr: b.Addrs[0]}
	} else {
		o.RedisClient = b.NewClient(t)
	}
	// Find new rooms quickly, so the tests do not wait a second for it.
	o.Worker.DiscoveryInterval = 20 * time.Millisecond
	return o
}

func newAPI(t *testing.T, ctx context.Context, o *rsfq.ApiOptions) rsfq.RedisQueueApiClient {
	t.Helper()
	c, err := rsfq.NewApiClient(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// pinger keeps clients alive the way the README's subscriber does, until
// the test ends or the returned stop is called.
func pinger(t *testing.T, c rsfq.RedisQueueApiClient, ids ...string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, id := range ids {
				_ = c.Ping(ctx, id)
			}
		}
	}()
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return stop
}
