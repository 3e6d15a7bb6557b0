// Package barrier runs the room state machine in Redis: membership,
// heartbeats, acks, eviction and the release decision. Every method is one
// atomic Lua script (see internal/lua), so no interleaving of clients can
// break the lock-step rules.
package barrier
