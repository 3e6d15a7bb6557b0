// Package pidrecord lets a CI run tell the redis-server processes its own
// tests started from any other on the machine: every program of this
// repository that starts one (the test harness, the examples' throwaway
// server, the benchmark) appends its pid to the file named by
// SYNCFANOUT_REDIS_PIDFILE, when set. .ci/run sets it and, once the tests
// are over, checks that none of those pids is still alive.
package pidrecord

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Env names the file the pids are appended to, one a line.
const Env = "SYNCFANOUT_REDIS_PIDFILE"

// Record appends pid to the file named by $SYNCFANOUT_REDIS_PIDFILE; it
// does nothing when the variable is unset. An O_APPEND write of one short
// line is atomic, so concurrent test binaries can share the file.
func Record(pid int) error {
	path := strings.TrimSpace(os.Getenv(Env))
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("recording redis-server pid %d in %s: %w", pid, path, err)
	}
	_, err = fmt.Fprintf(f, "%d\n", pid)
	return errors.Join(err, f.Close())
}
