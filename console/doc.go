// Package console is a web console for a syncfanout deployment: an
// http.Handler to mount under any path prefix of your own server, behind
// your own authentication.
//
// It lists the rooms (backlog, members, the age of the message in flight,
// who the barrier waits on, paused), paged through the room indexes the
// scripts keep, never by scanning keys; draws a room's barrier (members
// acked or missing with their heartbeats, the message in flight, the
// pending head); follows its events live over server-sent events that
// resume from the last stream ID after a reconnection; browses its history
// with payloads decoded; and shows the process counters of the Queue it
// runs on. The pages are html/template and a little plain JavaScript,
// embedded in the binary: no build step, nothing fetched from elsewhere.
//
// It is read-only unless Options.Admin is set; then a room page can pause,
// resume, purge, force-release, kick and delete, each a POST that must
// carry the page's CSRF token, recorded in the room's stream under the
// name Options.Actor gives.
//
// The JSON behind the pages is served too: api/rooms, api/room?r=,
// api/history?r=, api/stats, and events?r= (text/event-stream).
//
// Each open room page holds one connection of the Queue's Redis client
// for its live feed (a blocking XREAD of up to a second at a time), until
// the page is closed; size the client's pool for the operators you
// expect. The live feed ends when the request's context does: give your
// http.Server a BaseContext that ends at shutdown, since Shutdown itself
// does not end streaming responses.
package console
