package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestHelpAndUsageErrors: help, however asked for, goes to stdout once
// with exit 0; a usage error goes to stderr with exit 2. Neither needs
// Redis.
func TestHelpAndUsageErrors(t *testing.T) {
	t.Parallel()
	call := func(args ...string) (stdout, stderr string, code int) {
		var o, e bytes.Buffer
		code = run(context.Background(), args, &o, &e)
		return o.String(), e.String(), code
	}
	for _, c := range commands() {
		for _, args := range [][]string{
			{c.name, "-h"}, {c.name, "--help"}, {"help", c.name}, {"--prefix", "x", c.name, "-help"},
		} {
			out, errOut, code := call(args...)
			require.Equal(t, exitOK, code, "%v", args)
			require.Empty(t, errOut, "%v: help must not go to stderr", args)
			require.Equal(t, 1, strings.Count(out, "Usage:\n  syncfanout "+c.name), "%v: %s", args, out)
		}
		out, errOut, code := call(c.name, "--bogus")
		require.Equal(t, exitUsage, code, "%s --bogus", c.name)
		require.Empty(t, out, "%s --bogus", c.name)
		require.Contains(t, errOut, "flag provided but not defined: -bogus")
		require.Equal(t, 1, strings.Count(errOut, "Usage:\n  syncfanout "+c.name), errOut)

		// The wrong number of arguments (one too many for every command).
		out, errOut, code = call(append([]string{c.name}, make([]string, c.nargs+1)...)...)
		require.Equal(t, exitUsage, code, "%s with too many arguments", c.name)
		require.Empty(t, out)
		require.Contains(t, errOut, "syncfanout "+c.name+": want ")
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		out, errOut, code := call(args...)
		require.Equal(t, exitOK, code, "%v", args)
		require.Empty(t, errOut, "%v", args)
		require.Equal(t, 1, strings.Count(out, "Commands:"), "%v: %s", args, out)
	}
	for _, args := range [][]string{{}, {"--bogus"}, {"frobnicate"}, {"help", "frobnicate"}} {
		out, errOut, code := call(args...)
		require.Equal(t, exitUsage, code, "%v", args)
		require.Empty(t, out, "%v", args)
		require.Equal(t, 1, strings.Count(errOut, "Commands:"), "%v: %s", args, errOut)
	}
}

// TestRedisFromEnv: without --redis, the CLI takes $REDIS_URL, else
// $REDIS_ADDR, as URL or host:port. (t.Setenv: not parallel.)
func TestRedisFromEnv(t *testing.T) {
	b := redistest.Standalone(t)
	port, err := redistest.FreePort()
	require.NoError(t, err)
	down := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	call := func(args ...string) (stderr string, code int) {
		var o, e bytes.Buffer
		code = run(ctx, append([]string{"--prefix", b.Prefix, "--timeout", "2s"}, args...), &o, &e)
		return e.String(), code
	}
	for _, tc := range []struct{ url, addr, reached string }{
		{"", b.Addrs[0], b.Addrs[0]},
		{"", "redis://" + b.Addrs[0], b.Addrs[0]},
		{"redis://" + b.Addrs[0], down, b.Addrs[0]}, // REDIS_URL wins
		{b.Addrs[0], "", b.Addrs[0]},
		{"", down, down},
	} {
		t.Setenv("REDIS_URL", tc.url)
		t.Setenv("REDIS_ADDR", tc.addr)
		stderr, code := call("rooms")
		if tc.reached == down {
			require.Equal(t, exitUnreachable, code, "%+v: %s", tc, stderr)
			require.Contains(t, stderr, "cannot reach Redis at "+down, "%+v", tc)
			continue
		}
		// Reached: nothing was ever stored under the test's prefix.
		require.Equal(t, exitNotFound, code, "%+v: %s", tc, stderr)
		require.Contains(t, stderr, "no syncfanout deployment under prefix", "%+v", tc)
	}
}
