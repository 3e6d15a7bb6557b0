package deploy_test

import (
	"testing"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestMain stops the Redis servers the tests started and checks for
// goroutine leaks.
func TestMain(m *testing.M) { redistest.Main(m) }
