package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os/user"
	"time"

	"github.com/syncfanout/syncfanout/console"
)

// ---- console ----

func consoleCmd() *command {
	var listen, actor string
	var admin bool
	return &command{
		name:    "console",
		summary: "Serve the web console (rooms, barriers, live events, history) until interrupted; read-only unless --admin.",
		example: "syncfanout console --listen 127.0.0.1:8080\nsyncfanout console --admin --actor alice",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:8080", "`address` to serve on; the console has no authentication of its own, so keep it on loopback or behind a proxy that checks who comes in")
			fs.BoolVar(&admin, "admin", false, "allow admin actions (pause, resume, purge, release, kick, delete) from the pages, each recorded in the room's stream")
			fs.StringVar(&actor, "actor", "", "`name` recorded with every admin action (default: the OS user, \"@console\")")
		},
		run: func(ctx context.Context, e *env, _ []string) error {
			host, _, err := net.SplitHostPort(listen)
			if err != nil {
				return usageErr("bad --listen %q: %v", listen, err)
			}
			if actor == "" {
				actor = "console"
				if u, err := user.Current(); err == nil && u.Username != "" {
					actor = u.Username + "@console"
				}
			}
			q, err := e.queue(ctx, false)
			if err != nil {
				return err
			}
			who := actor
			h, err := console.New(q, console.Options{Admin: admin, Actor: func(*http.Request) string { return who }})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return &cliError{code: exitFailure, msg: "cannot listen on " + listen, err: err}
			}
			srv := &http.Server{
				Handler:           h,
				ReadHeaderTimeout: 10 * time.Second,
				// Requests end with the command: the live feeds (which
				// never end on their own) are cancelled at Ctrl-C.
				BaseContext: func(net.Listener) context.Context { return ctx },
			}
			mode := "read-only"
			if admin {
				mode = "admin actions on, as " + actor
			}
			fmt.Fprintf(e.stdout, "syncfanout console: http://%s/ (%s, prefix %q); Ctrl-C to stop\n", ln.Addr(), mode, e.g.prefix)
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				fmt.Fprintf(e.stderr, "syncfanout console: warning: listening beyond loopback (%s) without authentication\n", listen)
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				return err
			}
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
}
