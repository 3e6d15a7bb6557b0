package streamreader_test

import (
	"testing"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestMain shares one standalone Redis and one 3-master cluster between all
// tests of the package, stops them at exit and checks for goroutine leaks.
func TestMain(m *testing.M) { redistest.Main(m) }
