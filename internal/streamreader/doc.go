// Package streamreader is the reader behind queue's subscriptions and
// workers: it follows many rooms of one shard on a single sharded pub/sub
// connection (notifications published by the room scripts) and fills gaps
// from the streams with XRANGE, handing each room's entries over in stream
// order. It is queue's machinery, with no stability promise; the entries'
// format and the history reads are package streams.
package streamreader
