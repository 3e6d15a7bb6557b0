package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestExample runs the example on a throwaway server: it prints five
// spans (the caller's, the send and three receives), all of one trace.
func TestExample(t *testing.T) {
	b := redistest.Standalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, b.Addrs[0], b.Prefix, &out))
	dec := json.NewDecoder(&out)
	names := map[string]int{}
	traces := map[string]bool{}
	for dec.More() {
		var s struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		require.NoError(t, dec.Decode(&s))
		names[strings.Fields(s.Name)[0]]++
		traces[s.SpanContext.TraceID] = true
	}
	require.Equal(t, map[string]int{"handle": 1, "send": 1, "receive": 3}, names)
	require.Len(t, traces, 1)
}
