package console

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// act runs one admin action on room as the request's actor. The form
// carries reason, and member (kick), priority and up_to (purge).
func (h *Handler) act(ctx context.Context, r *http.Request, action, room string) (ActionResult, error) {
	a := h.q.Admin(h.opts.Actor(r))
	reason := r.PostFormValue("reason")
	res := ActionResult{Action: action, Room: room}
	var err error
	switch action {
	case "pause":
		err = a.Pause(ctx, room, reason)
	case "resume":
		err = a.Resume(ctx, room, reason)
	case "purge":
		var f queue.PurgeFilter
		if p := r.PostFormValue("priority"); p != "" {
			n, perr := strconv.Atoi(p)
			if perr != nil {
				return res, badRequest("priority %q is not a number", p)
			}
			f.Priority = &n
		}
		f.UpTo = r.PostFormValue("up_to")
		var n int
		n, err = a.Purge(ctx, room, f, reason)
		res.Purged = &n
	case "release":
		res.Released, err = a.Release(ctx, room, reason)
		if res.Released == nil {
			res.Released = []string{}
		}
	case "kick":
		err = a.Kick(ctx, room, r.PostFormValue("member"), reason)
	case "delete":
		err = a.DeleteRoom(ctx, room, reason)
	default:
		return res, errUnknownAction
	}
	return res, err
}

var errUnknownAction = errors.New("syncfanout console: unknown admin action (pause, resume, purge, release, kick, delete)")

func paused(st queue.RoomState) bool { return st.Paused }

func pauseView(v *RoomView, st queue.RoomState) {
	if !st.Paused {
		return
	}
	v.Paused, v.PausedBy, v.PauseNote = true, st.PausedBy, st.PauseReason
	if !st.PausedAt.IsZero() {
		t := st.PausedAt.UTC()
		v.PausedAt = &t
	}
}

// extraEventView fills in what the admin events carry.
func extraEventView(v *EventView, ev streams.Event) {
	v.Actor = ev.Actor
	switch ev.Type {
	case streams.Purge:
		n := ev.Count
		v.Count = &n
		if ev.Priority >= 0 {
			p := ev.Priority
			v.Priority = &p
		}
		v.MessageID = ev.MessageID
	case streams.ForceRelease:
		v.MessageID, v.Missing = ev.MessageID, ev.Missing
	}
}
