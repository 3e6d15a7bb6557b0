package barrier_test

import (
	"testing"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestMain shares the package's Redis servers between its tests, stops them
// at exit and checks for goroutine leaks.
func TestMain(m *testing.M) { redistest.Main(m) }
