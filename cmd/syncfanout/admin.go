package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/queue"
)

// Exit codes of the admin commands, beside the common ones (main.go).
const (
	exitRefused   = 5 // the room's state does not allow it (already paused, not paused, nothing in flight)
	exitNotAsked  = 6 // not confirmed: answered no, or no answer and no --yes
	promptAnswers = "y/N"
)

// adminFlags are the flags every admin command takes.
type adminFlags struct {
	yes    bool
	actor  string
	reason string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&a.yes, "yes", false, "do it without asking for confirmation")
	fs.StringVar(&a.actor, "actor", defaultActor(), "`who` does it, recorded in the room's stream")
	fs.StringVar(&a.reason, "reason", "", "`why`, recorded in the room's stream")
}

// defaultActor is user@host, as well as this process can tell.
func defaultActor() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return name
	}
	return name + "@" + host
}

// adminAction is what one admin command does once confirmed; it returns
// the line printed on success.
type adminAction func(ctx context.Context, adm *queue.Admin, reason string) (string, error)

// adminCommand builds an admin command: it validates its input, reads
// the room's state (a room that holds nothing is not found, and the
// prompt says what the room holds), asks for confirmation unless --yes,
// then makes the transition.
func adminCommand(name, args, summary, example string, nargs int, extra func(fs *flag.FlagSet), prepare func(args []string) (describe func(queue.RoomState) string, act adminAction, err error)) *command {
	var af adminFlags
	return &command{
		name: name, args: args, nargs: nargs, summary: summary, example: example,
		flags: func(fs *flag.FlagSet) {
			af.register(fs)
			if extra != nil {
				extra(fs)
			}
		},
		run: func(ctx context.Context, e *env, pos []string) error {
			room := pos[0]
			if err := roomArg(room); err != nil {
				return err
			}
			// The library checks them too, but only after the question.
			if err := checkText("--actor", af.actor, 1, queue.MaxActorLen); err != nil {
				return err
			}
			if err := checkText("--reason", af.reason, 0, queue.MaxReasonLen); err != nil {
				return err
			}
			describe, act, err := prepare(pos)
			if err != nil {
				return err
			}
			q, err := e.queue(ctx, false)
			if err != nil {
				return err
			}
			adm := q.Admin(af.actor)
			st, err := e.roomState(ctx, q, room)
			if err != nil {
				return err
			}
			if st.Epoch == "" {
				return &cliError{code: exitNotFound, msg: fmt.Sprintf("room %q holds nothing under prefix %q (never used, expired or deleted)", room, e.g.prefix)}
			}
			if !af.yes {
				ok, err := confirm(e.stdin, e.stderr, fmt.Sprintf("%s (as %q, reason %q)?", describe(st), af.actor, af.reason))
				if err != nil {
					return err
				}
				if !ok {
					return &cliError{code: exitNotAsked, msg: "not confirmed: nothing changed (use --yes to skip the question)"}
				}
			}
			ctx, cancel := e.withTimeout(ctx)
			defer cancel()
			line, err := act(ctx, adm, af.reason)
			if err != nil {
				return adminErr(err)
			}
			fmt.Fprintln(e.stdout, line)
			return nil
		},
	}
}

// checkText applies the library's rules for actors and reasons.
func checkText(flagName, v string, minLen, maxLen int) error {
	if len(v) < minLen || len(v) > maxLen {
		return usageErr("%s must be %d..%d bytes, got %d", flagName, minLen, maxLen, len(v))
	}
	if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return usageErr("%s %q must be UTF-8 without control characters", flagName, v)
	}
	return nil
}

// parseMessageID reads a message ID as Send returns it.
func parseMessageID(v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 || v[0] == '0' || v[0] == '+' {
		return 0, fmt.Errorf("%q is not a message ID (a positive decimal number)", v)
	}
	return n, nil
}

// adminErr gives a refused transition its exit code.
func adminErr(err error) error {
	switch {
	case errors.Is(err, queue.ErrUnknownRoom), errors.Is(err, queue.ErrNotMember):
		return &cliError{code: exitNotFound, msg: "nothing changed", err: err}
	case errors.Is(err, queue.ErrAlreadyPaused), errors.Is(err, queue.ErrNotPaused), errors.Is(err, queue.ErrNoInFlight):
		return &cliError{code: exitRefused, msg: "refused, nothing changed", err: err}
	}
	return err
}

// confirm asks on w and reads one line from r: y or yes confirms.
func confirm(r io.Reader, w io.Writer, question string) (bool, error) {
	fmt.Fprintf(w, "%s [%s] ", question, promptAnswers)
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	if errors.Is(err, io.EOF) && line == "" {
		fmt.Fprintln(w)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

func roomSummary(st queue.RoomState) string {
	s := fmt.Sprintf("room %q: %d member(s), %d observer(s), %d pending", st.Room, len(st.Members), len(st.Observers), st.Pending)
	if st.InFlight != nil {
		s += fmt.Sprintf(", message %d in flight for %s waiting on %d", st.InFlight.Seq, human(st.InFlight.Age), len(st.Missing))
	}
	if st.Paused {
		s += fmt.Sprintf(", paused by %q", st.PausedBy)
	}
	return s
}

func pauseCmd() *command {
	return adminCommand("pause", "ROOM",
		"Pause a room: sends are still queued, the message in flight can still be acked and out-of-band messages still go out, but nothing new is released until resume.",
		"syncfanout pause --reason 'deploy in progress' lobby\nsyncfanout pause --yes --actor ci lobby", 1, nil,
		func(args []string) (func(queue.RoomState) string, adminAction, error) {
			room := args[0]
			return func(st queue.RoomState) string { return "Pause " + roomSummary(st) },
				func(ctx context.Context, adm *queue.Admin, reason string) (string, error) {
					return "paused room " + room, adm.Pause(ctx, room, reason)
				}, nil
		})
}

func resumeCmd() *command {
	return adminCommand("resume", "ROOM",
		"Resume a paused room: what the barrier allows is released at once.",
		"syncfanout resume --reason 'deploy done' lobby", 1, nil,
		func(args []string) (func(queue.RoomState) string, adminAction, error) {
			room := args[0]
			return func(st queue.RoomState) string { return "Resume " + roomSummary(st) },
				func(ctx context.Context, adm *queue.Admin, reason string) (string, error) {
					return "resumed room " + room, adm.Resume(ctx, room, reason)
				}, nil
		})
}

func purgeCmd() *command {
	var priority int
	var upTo string
	return adminCommand("purge", "ROOM",
		"Drop pending messages of a room (all, one priority level, or up to a message ID); the message in flight stays.",
		"syncfanout purge lobby\nsyncfanout purge --priority 5 --up-to 1200 --reason 'bad batch' lobby", 1,
		func(fs *flag.FlagSet) {
			fs.IntVar(&priority, "priority", -1, fmt.Sprintf("only this priority level `N` (%d..%d; -1: every level)", queue.MinPriority, queue.MaxPriority))
			fs.StringVar(&upTo, "up-to", "", "only messages whose `ID` is at most this one")
		},
		func(args []string) (func(queue.RoomState) string, adminAction, error) {
			room := args[0]
			var f queue.PurgeFilter
			what := "every pending message"
			if priority != -1 {
				if priority < queue.MinPriority || priority > queue.MaxPriority {
					return nil, nil, usageErr("--priority must be %d..%d (or -1 for every level), got %d", queue.MinPriority, queue.MaxPriority, priority)
				}
				p := priority
				f.Priority = &p
				what = fmt.Sprintf("the pending messages of priority %d", p)
			}
			if upTo != "" {
				if _, err := parseMessageID(upTo); err != nil {
					return nil, nil, usageErr("--up-to: %v", err)
				}
				f.UpTo = upTo
				what += " with an ID up to " + upTo
			}
			return func(st queue.RoomState) string { return fmt.Sprintf("Drop %s of %s", what, roomSummary(st)) },
				func(ctx context.Context, adm *queue.Admin, reason string) (string, error) {
					n, err := adm.Purge(ctx, room, f, reason)
					return fmt.Sprintf("purged %d pending message(s) from room %s", n, room), err
				}, nil
		})
}

func releaseCmd() *command {
	return adminCommand("release", "ROOM",
		"Force-release the message in flight: complete it without waiting for the members that have not acked it (they stay members).",
		"syncfanout release --reason 'client hung' lobby", 1, nil,
		func(args []string) (func(queue.RoomState) string, adminAction, error) {
			room := args[0]
			return func(st queue.RoomState) string {
					if st.InFlight == nil {
						return "Force-release the message in flight (there is none now) of " + roomSummary(st)
					}
					return fmt.Sprintf("Force-release message %d without the acks of %s; %s", st.InFlight.Seq, strings.Join(st.Missing, ", "), roomSummary(st))
				},
				func(ctx context.Context, adm *queue.Admin, reason string) (string, error) {
					missing, err := adm.Release(ctx, room, reason)
					who := "nobody"
					if len(missing) > 0 {
						who = strings.Join(missing, ", ")
					}
					return fmt.Sprintf("released the message in flight of room %s; it had not been acked by: %s", room, who), err
				}, nil
		})
}

func kickCmd() *command {
	return adminCommand("kick", "ROOM CLIENT",
		"Remove a member or observer from a room, as an eviction would; its process is told it was kicked.",
		"syncfanout kick --reason 'stuck client' lobby 12-8f3a9c0d1e2f3a4b", 2, nil,
		func(args []string) (func(queue.RoomState) string, adminAction, error) {
			room, client := args[0], args[1]
			if err := keys.ValidateClientID(client); err != nil {
				return nil, nil, usageErr("%v", err)
			}
			return func(st queue.RoomState) string { return fmt.Sprintf("Kick %q from %s", client, roomSummary(st)) },
				func(ctx context.Context, adm *queue.Admin, reason string) (string, error) {
					return fmt.Sprintf("kicked %s from room %s", client, room), adm.Kick(ctx, room, client, reason)
				}, nil
		})
}

func deleteCmd() *command {
	return adminCommand("delete", "ROOM",
		"Delete a room: its members are told, then every key of the room goes, pending messages and history included.",
		"syncfanout delete --reason 'decommissioned' lobby", 1, nil,
		func(args []string) (func(queue.RoomState) string, adminAction, error) {
			room := args[0]
			return func(st queue.RoomState) string {
					return fmt.Sprintf("Delete %s, and its %d stream entries, for good", roomSummary(st), st.StreamLen)
				},
				func(ctx context.Context, adm *queue.Admin, reason string) (string, error) {
					return "deleted room " + room, adm.DeleteRoom(ctx, room, reason)
				}, nil
		})
}
