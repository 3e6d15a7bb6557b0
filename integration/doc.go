// Package integration holds the end-to-end tests of syncfanout against
// real Redis, standalone and cluster, in a module of its own so that the
// library's users never download what only these tests need.
//
// The tests use the harness of internal/redistest (the internal rule is
// based on import paths, so this nested module may import it): set
// REDIS_ADDR / REDIS_CLUSTER_ADDRS to use existing servers, otherwise
// redis-server processes are started on free loopback ports.
package integration
