package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// scrape returns the value of every unlabelled syncfanout_ sample.
func scrape(ctx context.Context, t *testing.T, addr string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^(syncfanout_[a-z_]+) ([0-9.e+-]+)$`).FindAllStringSubmatch(string(body), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		require.NoError(t, err)
		out[m[1]] = v
	}
	return out
}

// serve runs the example in the background and returns its address and a
// function that stops it and returns run's error.
func serve(t *testing.T, cfg config) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	cfg.addr = "127.0.0.1:0"
	cfg.ready = func(addr, _ string) { ready <- addr }
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()
	stop := func() error { cancel(); return <-done }
	select {
	case addr := <-ready:
		return addr, stop
	case err := <-done:
		cancel()
		t.Fatalf("the example ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		require.NoError(t, stop())
		t.Fatal("the example did not serve within 30s")
	}
	return "", nil
}

// requireMoving scrapes until the workload's counters went up.
func requireMoving(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := scrape(ctx, t, addr)
	require.Equal(t, 1.0, first["syncfanout_redis_up"])
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		now := scrape(ctx, t, addr)
		moved := true
		for _, name := range []string{"syncfanout_messages_sent_total", "syncfanout_messages_delivered_total", "syncfanout_acks_total"} {
			if now[name] <= first[name] || now[name] == 0 {
				moved = false
			}
		}
		if moved {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("counters did not move: first %v, last %v", first, now)
		case <-tick.C:
		}
	}
}

func TestExampleServesMovingMetrics(t *testing.T) {
	t.Parallel()
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		addr, stop := serve(t, config{redis: strings.Join(b.Addrs, ","), prefix: b.Prefix})
		requireMoving(t, addr)
		require.NoError(t, stop())
	})
}

// TestExampleStartsItsOwnRedis covers `go run ./examples/metrics` with no
// Redis given: it starts a redis-server and stops it at exit.
func TestExampleStartsItsOwnRedis(t *testing.T) {
	t.Parallel()
	redistest.SkipWithoutServer(t)
	addr, stop := serve(t, config{prefix: "syncfanout-example"})
	requireMoving(t, addr)
	require.NoError(t, stop())
}
