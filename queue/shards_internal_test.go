package queue

import (
	"errors"
	"strings"
	"testing"

	"github.com/syncfanout/syncfanout/internal/sferr"
)

// TestShardConfigMismatch: which stored values and live stamps refuse a
// Queue of 16 shards, and which errors call the deployment split.
func TestShardConfigMismatch(t *testing.T) {
	t.Parallel()
	const now = 1000
	for _, c := range []struct {
		name  string
		pairs []string
		want  string // "" for no error, else a word of the message
	}{
		{"nothing stored", nil, ""},
		{"same count", []string{"numShards", "16"}, ""},
		{"own stamp", []string{"numShards", "16", "live:16", "2000"}, ""},
		{"expired foreign stamp", []string{"numShards", "16", "live:8", "1000"}, ""},
		{"malformed stamp", []string{"numShards", "16", "live:x", "2000", "live:8", "soon"}, ""},
		{"other count stored", []string{"numShards", "8"}, "stored 8"},
		{"other count stored and live", []string{"numShards", "8", "live:8", "2000"}, "stored 8 under"},
		{"split, this count stored", []string{"numShards", "16", "live:8", "2000"}, "split"},
		{"split, other count stored", []string{"numShards", "8", "live:16", "2000", "live:8", "2000"}, "split"},
		{"live stamp without a stored count", []string{"live:8", "2000"}, "split"},
	} {
		err := parseShardConfig(now, c.pairs).mismatch(16, "p")
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, sferr.ErrShardMismatch) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrShardMismatch containing %q", c.name, err, c.want)
		}
		if c.want != "split" && strings.Contains(err.Error(), "split") {
			t.Errorf("%s: %v calls the deployment split", c.name, err)
		}
	}
}
