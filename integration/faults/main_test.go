// Package faults_test is the fault suite of syncfanout: subscribers killed
// mid-delivery, Redis restarted with and without persistence, connections
// cut, cluster failovers, many concurrent producers. Every scenario checks
// that members that stayed in the room lost and duplicated nothing, that
// lock-step held, that no room stayed blocked and that no goroutine leaked
// (goleak in TestMain).
package faults_test

import (
	"os"
	"testing"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

// TestMain runs the tests, or, when the test binary is re-executed as a
// child process by startChild, a subscriber that a test can kill -9.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	redistest.Main(m)
}
