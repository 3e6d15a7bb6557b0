// Package redistest is the real-Redis test harness of syncfanout.
//
// Every package's tests run against real redis-server processes: a
// standalone server and a 3-master Redis Cluster, started once per test
// binary on free loopback ports and shared by all its tests, or the servers
// named by REDIS_URL or REDIS_ADDR (standalone, a URL or host:port; the
// first wins) and REDIS_CLUSTER_ADDRS
// (comma-separated cluster seeds). Each test gets its own key prefix and its
// own clients; its keys are deleted at cleanup (SCAN + UNLINK, never
// FLUSHALL), so tests can run in parallel against shared servers.
//
// A package's tests use it like this:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
//			// b.Client, b.Prefix ...
//		})
//	}
//
// Fault tests get private servers instead ([NewServer], [NewCluster]), which
// they may stop, kill and restart, and a TCP [Proxy] that can cut
// connections.
//
// Every process the harness starts dies with the test binary, even when a
// test panics or the binary is killed: children are started from one
// goroutine locked to its OS thread with Pdeathsig set (Linux), in their own
// process group, and [Main] stops them explicitly before checking for
// goroutine leaks.
package redistest
