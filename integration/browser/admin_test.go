package browser_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// testAdminPauseResume pauses and resumes the room whose admin page is
// open, through its buttons, and checks the room, the page and the live
// feed (which shows each action with its actor and reason).
func testAdminPauseResume(t *testing.T, bctx context.Context, w *world) {
	ctx := context.Background()
	step(t, bctx, "reason", chromedp.SendKeys(chromedp.CSS("#reason"), "browser test"))
	step(t, bctx, "click pause", chromedp.Click(chromedp.CSS(`button[data-action="pause"]`)))
	until(t, bctx, "paused badge", `document.querySelector('#paused-badge') !== null && document.querySelector('button[data-action="resume"]') !== null`)
	until(t, bctx, "pause event in the feed", `[...document.querySelectorAll('#feed tr.ev-pause')].some(r => r.innerText.includes('browser-test') && r.innerText.includes('browser test'))`)
	st, err := w.q.RoomState(ctx, "lobby")
	require.NoError(t, err)
	require.True(t, st.Paused)
	require.Equal(t, "browser-test", st.PausedBy)
	require.Equal(t, "browser test", st.PauseReason)

	step(t, bctx, "click resume", chromedp.Click(chromedp.CSS(`button[data-action="resume"]`)))
	until(t, bctx, "badge gone", `document.querySelector('#paused-badge') === null && document.querySelector('button[data-action="pause"]') !== null`)
	until(t, bctx, "resume event in the feed", `document.querySelector('#feed tr.ev-resume') !== null`)
	st, err = w.q.RoomState(ctx, "lobby")
	require.NoError(t, err)
	require.False(t, st.Paused)
}
