package barrier

// Reply positions (0-based, as go-redis returns them) of the room scripts,
// one block per script, in the order of the "Returns:" line of its header
// in internal/lua. A change to a script's reply changes its block here and
// nothing else in this package.

// send.lua
const (
	sendStatus       = 0
	sendSeq          = 1 // seq of the first message of the batch
	sendEpoch        = 2
	sendReleased     = 3
	sendLastReleased = 4 // unused: Appended carries the released entries
	sendNow          = 5
	sendAppended     = 6 // stream ID before, then the appended entries (7)
	sendDropped      = 8 // pending messages the overflow policy dropped
)

// send.lua's refusals by the room's policy (status ROOM_FULL or
// TOO_LARGE); oob.lua refuses with the same TOO_LARGE reply.
const (
	roomFullLimit   = 1 // MaxPending
	roomFullPending = 2
	tooLargeIndex   = 1 // the first payload too large, 0-based
	tooLargeSize    = 2
	tooLargeLimit   = 3 // the room's MaxPayloadBytes
)

// policy.lua
const (
	policyStatus   = 0
	policyReleased = 1
	policyAppended = 3 // stream ID before, then the appended entries (4)
)

// join.lua
const (
	joinStatus      = 0 // OK or ALREADY
	joinFrom        = 1
	joinEpoch       = 2
	joinNow         = 3
	joinOwed        = 4 // "" then the owed entries (5), read as an Appended
	joinIncarnation = 6
)

// leave.lua
const (
	leaveStatus   = 0
	leaveReleased = 1
)

// ack.lua, and the common head of ack_batch.lua's reply.
const (
	ackStatus      = 0
	ackReleased    = 1
	ackReleasedSeq = 2
	ackNow         = 3
	ackInFlightAt  = 4
	ackAppended    = 5 // stream ID before, then the appended entries (6)
	ackCompleted   = 7 // bit 1: completed the acked message; bit 2: a quorum room (ack.lua)
	// ackBatchRefused is where ack_batch.lua starts listing its refused
	// clients: (1-based position, status) pairs.
	ackBatchRefused = 8
)

// heartbeat.lua
const (
	heartbeatStatus   = 0
	heartbeatReleased = 1
	heartbeatAlive    = 2 // one 1|0 per client, from here
)

// reap.lua
const (
	reapStatus   = 0
	reapEvicted  = 1
	reapReleased = 2
	reapDeleted  = 3
)

// due.lua
const (
	dueNow   = 0
	dueRooms = 1 // room names, from here
)

// state.lua
const (
	stateNow       = 0
	stateMeta      = 1
	stateMembers   = 2
	stateSeen      = 3
	stateAcks      = 4
	stateObservers = 5
	statePending   = 6
	stateStreamLen = 7
	stateLen       = 8
)

// admin_*.lua: status and now, then each transition's own counts.
const (
	adminStatus    = 0
	adminNow       = 1
	adminReleased  = 2 // resume, release, kick
	adminDropped   = 2 // purge
	adminMissing   = 3 // release: the members that had not acked
	adminRole      = 3 // kick
	adminMembers   = 2 // delete
	adminObservers = 3 // delete
	adminDeleted   = 4 // delete: pending messages dropped
)
