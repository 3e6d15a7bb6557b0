// Package streams owns the per-room delivery streams: the event codec,
// the reader that follows many rooms of one shard on a single pub/sub
// connection (notifications published by the scripts, gaps filled from the
// streams), and history reads for replay.
//
// Every delivered message, out-of-band message, join, leave and eviction of
// a room is one stream entry, appended by the same Lua script that changed
// the room, so the stream is the room's history in the order Redis applied
// it. Entry IDs are Redis auto IDs: their millisecond part is the server
// time of the event, which makes time ranges plain ID ranges.
package streams
