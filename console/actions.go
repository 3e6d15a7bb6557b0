package console

import (
	"context"
	"net/http"

	"github.com/syncfanout/syncfanout/queue"
	"github.com/syncfanout/syncfanout/streams"
)

// act runs one admin action. Until the admin transitions land, none is
// known.
func (h *Handler) act(_ context.Context, _ *http.Request, action, _ string) (ActionResult, error) {
	return ActionResult{}, badRequest("unknown admin action %q", action)
}

func paused(queue.RoomState) bool { return false }

func pauseView(*RoomView, queue.RoomState) {}

func extraEventView(*EventView, streams.Event) {}
