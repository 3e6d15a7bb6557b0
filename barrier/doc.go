// Package barrier runs the room state machine in Redis: membership,
// heartbeats, acks, eviction and the release decision. Every method is one
// atomic Lua script (see internal/lua), so no interleaving of clients can
// break the lock-step rules.
//
// It is package queue's implementation: applications use queue, whose API
// never requires importing barrier (queue.RoomState, Member and InFlight
// are queue's own types). Barrier's exported names carry no stability
// promise and may change in any release.
package barrier
