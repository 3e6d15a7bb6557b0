// Package streams owns the per-room delivery streams: the event codec and
// the history, tail and replay reads.
//
// Every delivered message, out-of-band message, join, leave and eviction of
// a room is one stream entry, appended by the same Lua script that changed
// the room, so the stream is the room's history in the order Redis applied
// it. Entry IDs are Redis auto IDs: their millisecond part is the server
// time of the event, which makes time ranges plain ID ranges.
//
// It is a public package of the v0.1.0 API, with the same stability
// promise as queue: queue's replay calls (Queue.History, Queue.Tail,
// Queue.ReplayInto, MessageFromEvent) take and yield its Range, Event and
// ReplayOptions, and the event types are its Type constants. It stands
// alone too: it reads a room's stream with any Redis client, without a
// Queue (the command-line inspector does). The reader that follows the
// streams for subscriptions and workers is queue's machinery, in
// internal/streamreader.
package streams
