package redissyncfanoutqueue_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The only lines a migrating program changes.
var importChanges = []struct{ from, to string }{
	{`"github.com/go-redis/redis/v8"`, `"github.com/redis/go-redis/v9"`},
	{`redisSyncFanoutQueue "github.com/zavitax/redis-sync-fanout-queue-go"`, `redisSyncFanoutQueue "github.com/syncfanout/syncfanout/compat/redissyncfanoutqueue"`},
}

// TestReadmeProgramsCompile compiles the original README's four programs
// (testdata/readme, verbatim) with only their import lines changed, in a
// module of their own that requires this repository through a replace
// directive. It needs the go command and the module cache
// this repository builds with; it reaches no network.
func TestReadmeProgramsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles four programs in a module of their own")
	}
	t.Parallel()
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		goCmd = "go"
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	goSum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	require.NoError(t, err)

	mod := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.mod"), []byte(`module example.com/migrated

go 1.26.0

require (
	github.com/redis/go-redis/v9 v9.23.0
	github.com/syncfanout/syncfanout v0.0.0
)

replace github.com/syncfanout/syncfanout => `+repo+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.sum"), goSum, 0o644))

	origs, err := filepath.Glob(filepath.Join("testdata", "readme", "*", "*.go.orig"))
	require.NoError(t, err)
	require.Len(t, origs, 5, "four programs and the worker's missing helper")
	for _, orig := range origs {
		src, err := os.ReadFile(orig)
		require.NoError(t, err)
		text := string(src)
		for _, c := range importChanges {
			text = strings.Replace(text, c.from, c.to, 1)
		}
		require.NotContains(t, text, "zavitax", orig)
		require.NotContains(t, text, "go-redis/redis/v8", orig)
		dir := filepath.Join(mod, filepath.Base(filepath.Dir(orig)))
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, strings.TrimSuffix(filepath.Base(orig), ".orig")), []byte(text), 0o644))
	}

	// go vet type-checks the programs as the compiler does (and runs its
	// checks) without linking four binaries, which would take most of
	// this test's time.
	cmd := exec.Command(goCmd, "vet", "./...")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go vet:\n%s", out)
	require.Empty(t, strings.TrimSpace(string(out)))
}
