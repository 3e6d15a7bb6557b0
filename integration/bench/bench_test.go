package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/syncfanout/syncfanout/queue"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBenchShort runs every workload at tiny sizes (what make bench-short
// runs) and checks that each produced a figure and that the report and its
// plots were written. It asserts nothing about speed.
func TestBenchShort(t *testing.T) {
	cfg := ShortConfig()
	cfg.OutDir = t.TempDir()
	var log bytes.Buffer
	rep, err := Run(t.Context(), cfg, &log)
	require.NoError(t, err, "log:\n%s", log.String())

	require.True(t, rep.Refs.PingRate.OK(), "PING reference")
	for _, s := range cfg.FanoutS {
		require.Contains(t, rep.Refs.Fanout, s)
		require.True(t, rep.Refs.Fanout[s].OK(), "Streams fanout S=%d", s)
	}
	require.NotEmpty(t, rep.W1)
	for _, row := range rep.W1 {
		if row.NotMeasured != "" {
			require.Equal(t, ModeGateway, row.Mode, "only the gateway may be missing: %s", row.NotMeasured)
			continue
		}
		require.True(t, row.Rate.OK(), "W1 %s S=%d rate", row.Mode, row.S)
		require.True(t, row.P50.OK(), "W1 %s S=%d release latency", row.Mode, row.S)
		require.True(t, row.Cost.CPU.OK(), "W1 %s S=%d cost", row.Mode, row.S)
		require.Greater(t, row.Cost.Cmds.Median(), 0.0, "W1 %s S=%d commands", row.Mode, row.S)
	}
	require.Len(t, rep.W2, len(cfg.W2Rooms))
	for _, row := range rep.W2 {
		require.True(t, row.Rate.OK(), "W2 %d rooms", row.Rooms)
		require.True(t, row.Deliveries.OK(), "W2 %d rooms deliveries", row.Rooms)
	}
	require.NotEmpty(t, rep.W3)
	for _, row := range rep.W3 {
		require.True(t, row.Rate.OK(), "W3 %s", row.Mode)
	}
	require.NotNil(t, rep.W4)
	require.True(t, rep.W4.QueuedDelta.OK() && rep.W4.QueuedUsage.OK(), "W4 queued")
	require.True(t, rep.W4.StreamDelta.OK() && rep.W4.StreamUsage.OK(), "W4 stream")
	require.Len(t, rep.W6Ping, len(cfg.W6Clients))
	for _, row := range rep.W6Ping {
		require.True(t, row.CPU.OK(), "W6 Ping with %d clients", row.Clients)
	}
	require.Len(t, rep.W6Rooms, len(cfg.W6Rooms))
	for _, row := range rep.W6Rooms {
		require.True(t, row.CPU.OK(), "W6 %d rooms", row.Rooms)
	}
	require.Len(t, rep.W6Backlog, len(cfg.W6Backlog))
	for _, row := range rep.W6Backlog {
		require.True(t, row.P50.OK(), "W6 backlog %d", row.Backlog)
	}
	require.Len(t, rep.W7, len(w7Rows(cfg)), "W7 rows reach the report")
	for _, row := range rep.W7 {
		require.True(t, row.Rate.OK(), "W7 %s rate", row.Label())
		require.True(t, row.Cost.CPU.OK(), "W7 %s cost", row.Label())
	}
	require.Len(t, rep.Targets, 9)

	md, err := os.ReadFile(filepath.Join(cfg.OutDir, "BENCHMARKS.md"))
	require.NoError(t, err)
	for _, t2 := range rep.Targets {
		require.Contains(t, string(md), t2.Name)
	}
	require.Contains(t, string(md), "## W7 barrier policies")
	require.Contains(t, string(md), "docs/bench/w7_policies.svg")
	require.NotEmpty(t, rep.Plots)
	for _, p := range rep.Plots {
		b, err := os.ReadFile(filepath.Join(cfg.OutDir, p.File))
		require.NoError(t, err)
		require.True(t, strings.Contains(string(b), "<svg"), "%s is not an SVG", p.File)
	}
}

// TestMergeRounds: a run of several rounds reports each figure over the
// values of every round, with one row per configuration, not one per round.
func TestMergeRounds(t *testing.T) {
	round := func(v float64) *Report {
		r := &Report{}
		r.Refs.PingRate.Add(v)
		r.Refs.Fanout = map[int]*Figure{1: {Values: []float64{v}}}
		row := &W1Row{Mode: ModeProcess, S: 10, Samples: Latencies{1}}
		row.Rate.Add(v)
		row.Cost.CPU.Add(v)
		r.W1 = append(r.W1, row)
		r.W4 = &W4Result{N: 5}
		w7 := &W7Row{Mode: ModeSeparate, S: 10, Policy: queue.Policy{Window: 4}}
		w7.Rate.Add(v)
		r.W7 = append(r.W7, w7)
		r.W4.QueuedDelta.Add(v)
		return r
	}
	rep := &Report{}
	for _, v := range []float64{1, 2, 3} {
		rep.mergeRound(round(v))
	}
	require.Equal(t, []float64{1, 2, 3}, rep.Refs.PingRate.Values)
	require.Equal(t, []float64{1, 2, 3}, rep.Refs.Fanout[1].Values)
	require.Len(t, rep.W1, 1)
	require.Equal(t, []float64{1, 2, 3}, rep.W1[0].Rate.Values)
	require.Equal(t, []float64{1, 2, 3}, rep.W1[0].Cost.CPU.Values)
	require.Len(t, rep.W1[0].Samples, 3)
	require.Equal(t, ModeProcess, rep.W1[0].Mode)
	require.Equal(t, []float64{1, 2, 3}, rep.W4.QueuedDelta.Values)
	require.Equal(t, 2.0, rep.W1[0].Rate.Median())
	require.Len(t, rep.W7, 1)
	require.Equal(t, []float64{1, 2, 3}, rep.W7[0].Rate.Values)
	require.Equal(t, 4, rep.W7[0].Policy.Window)
}
