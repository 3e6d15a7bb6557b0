// Package browser_test drives the web console (package console) in a real
// headless Chromium, from Debian's chromium package, with chromedp. It
// lives in the integration module so that the library's users do not
// inherit chromedp.
//
// Set SYNCFANOUT_CONSOLE_SCREENSHOTS to a directory to have the test write
// the screenshots of the main pages there (make screenshots writes those
// of docs/console).
package browser_test

import (
	"testing"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }
