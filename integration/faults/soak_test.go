//go:build soak

package faults_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// The soak test (make soak, never in CI) runs a mixed workload for
// -duration while random faults hit it, then checks what every member that
// stayed in its room received. Run it with
//
//	cd integration && go test -tags soak -run '^TestSoak$' -timeout 0 -v ./faults -args -duration 10m
var (
	soakDuration  = flag.Duration("duration", time.Minute, "soak: how long the workload and the faults run")
	soakSeed      = flag.Uint64("seed", 0, "soak: random seed (0: from the clock)")
	soakRooms     = flag.Int("rooms", 4, "soak: rooms")
	soakProducers = flag.Int("producers", 8, "soak: producers, each sending to random rooms")
	soakMembers   = flag.Int("members", 3, "soak: members per room that stay for the whole run")
)

// soakSent is a message a producer sent, as its Send reported it.
type soakSent struct {
	id            uint64
	producer, seq int
	prio          int
	payload       string
}

// soakRoom is one room of the soak: its stable members, its flaky member
// (on the proxied connection, cut by the faults) and what was sent to it.
type soakRoom struct {
	name    string
	rec     *recorder
	members []*member
	names   []string

	mu        sync.Mutex
	sent      []soakSent
	uncertain map[string]bool // payloads of sends that failed: maybe enqueued

	flakyLives   atomic.Int64 // subscriptions of the flaky member (1 + rejoins)
	flakyDup     atomic.Int64
	flakyReasons sync.Map   // ending error -> count
	flakySeqs    [][]uint64 // queued messages of each life, in the order received; under mu
}

func TestSoak(t *testing.T) {
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	var rngMu sync.Mutex
	randn := func(n int) int { rngMu.Lock(); defer rngMu.Unlock(); return rng.IntN(n) }
	t.Logf("soak: duration %v, seed %d, %d rooms, %d producers, %d stable members per room", *soakDuration, seed, *soakRooms, *soakProducers, *soakMembers)

	srv := redistest.NewServer(t, redistest.ServerOptions{AOF: true})
	proxy := redistest.NewProxy(t, srv.Addr())
	newClient := func(addr string, retries int) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: retries})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	const clientTimeout = 3 * time.Second
	opts := queue.Options{Prefix: "soak", ClientTimeout: clientTimeout, HeartbeatInterval: 400 * time.Millisecond,
		HousekeepingInterval: 250 * time.Millisecond, Logger: discardLogger()}
	stable := newQueue(t, newClient(srv.Addr(), 0), opts)
	// Producers see every connection error instead of go-redis resending a
	// script whose reply was lost (which could enqueue a message twice).
	producers := newQueue(t, newClient(srv.Addr(), -1), opts)
	flaky := newQueue(t, newClient(proxy.Addr(), 0), opts)

	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration+5*time.Minute)
	defer cancel()
	rooms := make([]*soakRoom, *soakRooms)
	for i := range rooms {
		r := &soakRoom{name: fmt.Sprintf("soak-%d", i), rec: newRecorder(), uncertain: map[string]bool{}}
		for j := range *soakMembers {
			name := fmt.Sprintf("stable-%d", j)
			sub, err := stable.Join(ctx, r.name)
			require.NoError(t, err)
			r.members = append(r.members, startMember(t, name, sub, r.rec))
			r.names = append(r.names, name)
		}
		rooms[i] = r
	}

	runCtx, stopRun := context.WithTimeout(ctx, *soakDuration)
	defer stopRun()
	var wg sync.WaitGroup

	// The flaky member of each room joins again whenever it is evicted or
	// its room reset; each life is checked for duplicates and order.
	for _, r := range rooms {
		wg.Go(func() {
			for runCtx.Err() == nil {
				sub, err := flaky.Join(runCtx, r.name)
				if err != nil {
					select {
					case <-runCtx.Done():
					case <-time.After(200 * time.Millisecond): // Redis or the proxy is down
					}
					continue
				}
				r.flakyLives.Add(1)
				seen := map[uint64]bool{}
				var life []uint64
				for {
					m, err := sub.Next(runCtx)
					if err != nil {
						key := "stopped"
						switch {
						case errors.Is(err, queue.ErrEvicted):
							key = "evicted"
						case errors.Is(err, queue.ErrRoomReset):
							key = "reset"
						case errors.Is(err, queue.ErrNotMember):
							key = "removed"
						}
						v, _ := r.flakyReasons.LoadOrStore(key, new(atomic.Int64))
						v.(*atomic.Int64).Add(1)
						break
					}
					if seen[m.ID] {
						r.flakyDup.Add(1)
					}
					seen[m.ID] = true
					if !m.OutOfBand {
						life = append(life, m.ID)
						_ = retry(runCtx, func() error { return m.Ack(runCtx) })
					}
				}
				r.mu.Lock()
				r.flakySeqs = append(r.flakySeqs, life)
				r.mu.Unlock()
				_ = sub.Close(context.Background())
			}
		})
	}

	// Producers.
	var sendErrs atomic.Int64
	for p := range *soakProducers {
		wg.Go(func() {
			for i := 0; runCtx.Err() == nil; i++ {
				r := rooms[randn(len(rooms))]
				prio := randn(queue.MaxPriority + 1)
				body := payload(p, i, prio)
				var id uint64
				var err error
				if randn(20) == 0 {
					_, err = producers.SendOutOfBand(runCtx, r.name, body)
					if err != nil {
						sendErrs.Add(1)
					}
					continue
				}
				id, err = producers.Send(runCtx, r.name, body, queue.Priority(prio))
				r.mu.Lock()
				if err != nil {
					r.uncertain[string(body)] = true
					sendErrs.Add(1)
				} else {
					r.sent = append(r.sent, soakSent{id: id, producer: p, seq: i, prio: prio, payload: string(body)})
				}
				r.mu.Unlock()
				// About 20 messages a second per producer: the lock-step
				// of a room releases one message per round of acks, and the
				// drain at the end must not take longer than the run.
				pace := time.Duration(25+randn(50)) * time.Millisecond
				if err != nil {
					pace = 100 * time.Millisecond
				}
				select {
				case <-runCtx.Done():
				case <-time.After(pace):
				}
			}
		})
	}

	// Faults, one at a time, at random moments.
	faults := map[string]int{}
	wg.Go(func() {
		pause := func(d time.Duration) bool {
			select {
			case <-runCtx.Done():
				return false
			case <-time.After(d):
				return true
			}
		}
		for pause(time.Duration(1000+randn(3000)) * time.Millisecond) {
			switch randn(5) {
			case 0, 1:
				faults["cut < ClientTimeout"]++
				proxy.Cut()
				pause(time.Duration(200+randn(800)) * time.Millisecond)
				proxy.Heal()
			case 2:
				faults["cut 2x ClientTimeout"]++
				proxy.Cut()
				pause(2 * clientTimeout)
				proxy.Heal()
			case 3:
				faults["redis kill -9 + AOF restart"]++
				if err := srv.Kill(); err != nil {
					t.Errorf("kill: %v", err)
				}
				if err := srv.Restart(); err != nil {
					t.Errorf("restart: %v", err)
					return
				}
			case 4:
				faults["member churn"]++
				r := rooms[randn(len(rooms))]
				sub, err := stable.Join(runCtx, r.name)
				if err != nil {
					continue
				}
				for range 1 + randn(3) {
					m, err := sub.Next(runCtx)
					if err != nil {
						break
					}
					if !m.OutOfBand {
						_ = retry(runCtx, func() error { return m.Ack(runCtx) })
					}
				}
				_ = sub.Close(context.Background())
			}
		}
	})
	wg.Wait()

	// Drain: every message a Send reported must reach every stable member.
	var total report
	var problems []string
	sent, delivered := 0, 0
	for _, r := range rooms {
		r.mu.Lock()
		want := map[uint64]soakSent{}
		for _, s := range r.sent {
			want[s.id] = s
		}
		r.mu.Unlock()
		sent += len(want)
		for _, m := range r.members {
			got := map[uint64]bool{}
			dctx, dcancel := context.WithTimeout(ctx, 2*time.Minute)
			for missing(want, got) > 0 {
				msg, err := m.tryNext(dctx)
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s %s: draining: %v", r.name, m.name, err))
					break
				}
				got[msg.ID] = true
			}
			dcancel()
			delivered += len(got)
		}
		// The release order is the one the first stable member saw; the
		// check compares every stable member against it.
		order := r.rec.ids(r.names[0])
		var checked []uint64
		for _, id := range order {
			if _, ok := want[id]; ok {
				checked = append(checked, id)
			}
		}
		lost := len(want) - len(checked)
		rp, ps := r.rec.check(r.names, checked)
		rp.Lost += lost
		total.Messages += rp.Messages
		total.Lost += rp.Lost
		total.Duplicated += rp.Duplicated
		total.OutOfOrder += rp.OutOfOrder
		total.Violations += rp.Violations
		problems = append(problems, ps...)
		// FIFO per producer within a priority, in the release order.
		lastSeq := map[[2]int]int{}
		for _, id := range checked {
			s := want[id]
			k := [2]int{s.producer, s.prio}
			if l, ok := lastSeq[k]; ok && s.seq < l {
				total.OutOfOrder++
				problems = append(problems, fmt.Sprintf("%s: producer %d priority %d: %d after %d", r.name, s.producer, s.prio, s.seq, l))
			}
			lastSeq[k] = s.seq
		}
		// Each life of the flaky member saw messages in the release order.
		pos := make(map[uint64]int, len(order))
		for i, id := range order {
			pos[id] = i
		}
		for _, life := range r.flakySeqs {
			last := -1
			for _, id := range life {
				p, ok := pos[id]
				if !ok {
					continue
				}
				if p < last {
					total.OutOfOrder++
					problems = append(problems, fmt.Sprintf("%s flaky member: %d out of release order", r.name, id))
				}
				last = max(last, p)
			}
		}
		total.Duplicated += int(r.flakyDup.Load())
	}
	for _, r := range rooms {
		for _, m := range r.members {
			m.stop()
		}
	}

	var fl []string
	for k, v := range faults {
		fl = append(fl, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(fl)
	lives, reasons := int64(0), map[string]int64{}
	for _, r := range rooms {
		lives += r.flakyLives.Load()
		r.flakyReasons.Range(func(k, v any) bool { reasons[k.(string)] += v.(*atomic.Int64).Load(); return true })
	}
	fmt.Printf("soak: %v, seed %d: %d messages sent (%d sends failed), %d deliveries to stable members checked\n", *soakDuration, seed, sent, sendErrs.Load(), delivered)
	fmt.Printf("soak: faults: %s\n", strings.Join(fl, " "))
	fmt.Printf("soak: flaky members: %d subscriptions, ended by %v\n", lives, reasons)
	fmt.Printf("soak: lost=%d duplicated=%d out-of-order=%d barrier-violations=%d\n", total.Lost, total.Duplicated, total.OutOfOrder, total.Violations)
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
	}
	for _, p := range problems {
		t.Error(p)
	}
	if total.Lost+total.Duplicated+total.OutOfOrder+total.Violations != 0 {
		t.Fail()
	}
}

func missing(want map[uint64]soakSent, got map[uint64]bool) int {
	n := 0
	for id := range want {
		if !got[id] {
			n++
		}
	}
	return n
}
