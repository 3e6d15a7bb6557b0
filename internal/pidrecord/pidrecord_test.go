package pidrecord

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecord(t *testing.T) {
	t.Setenv(Env, "")
	require.NoError(t, Record(1))
	path := filepath.Join(t.TempDir(), "pids")
	t.Setenv(Env, path)
	require.NoError(t, Record(12))
	require.NoError(t, Record(34))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "12\n34\n", string(got))
}
