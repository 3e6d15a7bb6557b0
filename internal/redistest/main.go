package redistest

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/syncfanout/syncfanout/internal/lua"
)

// Main is for TestMain: it runs the tests, stops every process the harness
// started (shared servers included) and, when the tests passed, fails the
// binary if goroutines leaked (go.uber.org/goleak). It exits with the
// result.
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
//
// SYNCFANOUT_SCRIPTS=eval (or functions) runs every Queue whose
// Options.ScriptMode is the default on that path only, so that the rules,
// model, fault and defect suites can be run on both.
func Main(m *testing.M) {
	switch os.Getenv("SYNCFANOUT_SCRIPTS") {
	case "eval":
		lua.AutoIs = lua.ModeEval
	case "functions":
		lua.AutoIs = lua.ModeFunctions
	}
	startContainerEarly()
	code := m.Run()
	if err := stopAll(); err != nil {
		fmt.Fprintf(os.Stderr, "redistest: stopping servers: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines leaked after the tests passed: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// stopAll stops the shared servers, then every other process the harness
// started, and ends the harness's own goroutines.
func stopAll() error {
	return errors.Join(
		sharedCluster.shutdown(),
		sharedStandalone.shutdown(),
		stopProcesses(),
	)
}
