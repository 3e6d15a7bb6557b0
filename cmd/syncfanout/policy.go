package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/syncfanout/syncfanout/queue"
)

// policyJSON is a room's policy in JSON (policy, state).
type policyJSON struct {
	Stored          bool    `json:"stored"` // false: each Queue's Options.DefaultPolicy applies
	Window          int     `json:"window"`
	Quorum          int     `json:"quorum"`
	QuorumFraction  float64 `json:"quorum_fraction"`
	MaxLag          int     `json:"max_lag"`
	MaxPending      int     `json:"max_pending"`
	Overflow        string  `json:"overflow"`
	MaxPayloadBytes int     `json:"max_payload_bytes"`
	Straggler       string  `json:"straggler"`
}

func policyView(p queue.Policy, stored bool) *policyJSON {
	return &policyJSON{
		Stored: stored, Window: p.Window, Quorum: p.Quorum, QuorumFraction: p.QuorumFraction,
		MaxLag: p.MaxLag, MaxPending: p.MaxPending, Overflow: p.Overflow.String(),
		MaxPayloadBytes: p.MaxPayloadBytes, Straggler: p.Straggler.String(),
	}
}

// policySummary is the one line of the state command.
func policySummary(p queue.Policy, stored bool) string {
	if !stored {
		return "none stored (each Queue's Options.DefaultPolicy applies)"
	}
	if p == (queue.Policy{}) {
		return "lock-step (stored)"
	}
	return p.String()
}

func printPolicy(w io.Writer, room string, p queue.Policy, stored bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	or := func(n int, zero string) string {
		if n == 0 {
			return zero
		}
		return fmt.Sprint(n)
	}
	fmt.Fprintf(tw, "room:\t%s\n", room)
	if stored {
		fmt.Fprintf(tw, "stored:\tyes\n")
	} else {
		fmt.Fprintf(tw, "stored:\tno: each Queue's Options.DefaultPolicy applies; shown: the zero policy\n")
	}
	fmt.Fprintf(tw, "window:\t%s\n", or(p.Window, "1 (default)"))
	quorum := or(p.Quorum, "every member")
	if p.QuorumFraction > 0 {
		quorum = fmt.Sprintf("%g of the members", p.QuorumFraction)
	}
	fmt.Fprintf(tw, "quorum:\t%s\n", quorum)
	fmt.Fprintf(tw, "max lag:\t%s\n", or(p.MaxLag, fmt.Sprintf("%d (default: max(window, %d))", max(p.Window, queue.DefaultMaxLag), queue.DefaultMaxLag)))
	fmt.Fprintf(tw, "max pending:\t%s\n", or(p.MaxPending, "unlimited"))
	fmt.Fprintf(tw, "overflow:\t%s\n", p.Overflow)
	fmt.Fprintf(tw, "max payload:\t%s\n", or(p.MaxPayloadBytes, "the Queue's MaxPayloadBytes"))
	fmt.Fprintf(tw, "straggler:\t%s\n", p.Straggler)
	return tw.Flush()
}

func policyCmd() *command {
	var f format
	var window, quorum, maxLag, maxPending, maxPayload int
	var fraction float64
	var overflow, straggler string
	return &command{
		name:    "policy",
		args:    "ROOM | set ROOM",
		nargs:   1,
		maxArgs: 2,
		summary: "Show a room's barrier policy; 'policy set ROOM --flag ...' changes the fields given (it writes, like send and the admin commands).",
		example: "syncfanout policy lobby\n" +
			"syncfanout policy set lobby --max-pending 1000 --overflow drop-oldest\n" +
			"syncfanout policy set lobby --straggler skip",
		flags: func(fs *flag.FlagSet) {
			formatFlag(fs, &f, "one object")
			fs.IntVar(&window, "window", 0, "set: messages in flight at once (`N`; 0: default 1)")
			fs.IntVar(&quorum, "quorum", 0, "set: acks that complete a message (`N`; 0: every member)")
			fs.Float64Var(&fraction, "quorum-fraction", 0, "set: share of the members whose acks complete a message (`F`, 0 < F <= 1; 0: unset)")
			fs.IntVar(&maxLag, "max-lag", 0, "set: evict a member more than `N` messages behind (0: max(window, 1000))")
			fs.IntVar(&maxPending, "max-pending", 0, "set: backlog limit (`N`; 0: unlimited)")
			fs.StringVar(&overflow, "overflow", "", "set: what a send beyond --max-pending does: `reject`, drop-oldest or drop-lowest-priority")
			fs.IntVar(&maxPayload, "max-payload", 0, "set: payload limit in bytes (`N`; 0: the Queue's)")
			fs.StringVar(&straggler, "straggler", "", "set: members that miss an ack deadline are `evict`ed or skip-ped")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			set := len(args) == 2
			if set && args[0] != "set" {
				return usageErr("want ROOM or set ROOM, got %q %q", args[0], args[1])
			}
			room := args[len(args)-1]
			if err := roomArg(room); err != nil {
				return err
			}
			if !set && len(e.given) > 0 {
				return usageErr("--%s changes the policy: use 'policy set %s'", e.given[0], room)
			}
			q, err := e.queue(ctx, set)
			if err != nil {
				return err
			}
			ctx, cancel := e.withTimeout(ctx)
			defer cancel()
			st, err := q.RoomState(ctx, room)
			if err != nil {
				return err
			}
			p, stored := st.Policy, st.PolicyStored
			if set {
				if len(e.given) == 0 {
					return usageErr("policy set: no field given (see --help)")
				}
				// Fields not given keep the room's stored value: the new
				// policy replaces the stored one whole.
				for _, name := range e.given {
					switch name {
					case "window":
						p.Window = window
					case "quorum":
						p.Quorum = quorum
					case "quorum-fraction":
						p.QuorumFraction = fraction
					case "max-lag":
						p.MaxLag = maxLag
					case "max-pending":
						p.MaxPending = maxPending
					case "max-payload":
						p.MaxPayloadBytes = maxPayload
					case "overflow":
						if p.Overflow, err = queue.ParseOverflowPolicy(overflow); err != nil {
							return usageErr("--overflow: want reject, drop-oldest or drop-lowest-priority, got %q", overflow)
						}
					case "straggler":
						if p.Straggler, err = queue.ParseStragglerPolicy(straggler); err != nil {
							return usageErr("--straggler: want evict or skip, got %q", straggler)
						}
					}
				}
				if err := q.SetPolicy(ctx, room, p); err != nil {
					if errors.Is(err, queue.ErrInvalidPolicy) {
						return usageErr("%v", err)
					}
					return err
				}
				if p, err = q.Policy(ctx, room); err != nil {
					return err
				}
				stored = true
			}
			if f == "json" {
				return writeJSON(e.stdout, struct {
					Room string `json:"room"`
					*policyJSON
				}{room, policyView(p, stored)})
			}
			return printPolicy(e.stdout, room, p, stored)
		},
	}
}
