package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/queue"
)

// envInt reads a size override (for a bigger run by hand), or def.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, name)
	return n
}

// TestConcurrentProducers is F6: 50 producers send messages with random
// priorities, at once, to rooms with 10 subscribers each (spread over two
// Queues, as two processes would be). Every subscriber receives every
// message exactly once, all in the same order, in lock-step, and within
// each priority the messages of one producer keep their send order.
//
// Every message costs one round trip per subscriber (its ack), so the
// default size, 100 messages per producer over 5 rooms (5,000 messages,
// 50,000 deliveries checked), is what fits the suite's time budget with
// -race on two shared cores. F6_MESSAGES=1000 runs the full 50 x 1,000
// (F6_PRODUCERS and F6_ROOMS change the other sizes).
func TestConcurrentProducers(t *testing.T) {
	t.Parallel()
	producers := envInt(t, "F6_PRODUCERS", 50)
	perProducer := envInt(t, "F6_MESSAGES", 100)
	nrooms := envInt(t, "F6_ROOMS", 5)
	const subscribers = 10
	redistest.Backends(t, func(t *testing.T, b *redistest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		opts := queue.Options{Prefix: b.Prefix, ClientTimeout: 10 * time.Second}
		pq := newQueue(t, b.Client, opts)
		subQueues := []*queue.Queue{newQueue(t, b.NewClient(t), opts), newQueue(t, b.NewClient(t), opts)}

		rooms := make([]string, nrooms)
		recs := make([]*recorder, nrooms)
		members := make([][]*member, nrooms)
		var names []string
		for s := range subscribers {
			names = append(names, fmt.Sprintf("sub%d", s))
		}
		for r := range rooms {
			rooms[r] = fmt.Sprintf("load-%d", r)
			recs[r] = newRecorder()
			for s, name := range names {
				sub, err := subQueues[s%2].Join(ctx, rooms[r])
				require.NoError(t, err)
				members[r] = append(members[r], startMember(t, name, sub, recs[r]))
			}
		}

		// Each producer sends to every room in turn; what it sent to one
		// room, in order, is kept for the FIFO check.
		type sentMsg struct {
			id       uint64
			producer int
			seq      int
			prio     int
		}
		sent := make([][]sentMsg, nrooms)
		var mu sync.Mutex
		began := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, producers)
		for p := range producers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(p), 42))
				for i := range perProducer {
					r := (p + i) % nrooms
					prio := rng.IntN(queue.MaxPriority + 1)
					id, err := pq.Send(ctx, rooms[r], payload(p, i, prio), queue.Priority(prio), queue.Producer(strconv.Itoa(p)))
					if err != nil {
						errs <- fmt.Errorf("producer %d message %d: %w", p, i, err)
						return
					}
					mu.Lock()
					sent[r] = append(sent[r], sentMsg{id: id, producer: p, seq: i, prio: prio})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		sendTime := time.Since(began)

		total := 0
		var sum report
		for r := range rooms {
			want := len(sent[r])
			total += want
			for _, m := range members[r] {
				for range want {
					m.next(ctx, t)
				}
			}
			rp, problems := recs[r].check(names, nil)
			require.Empty(t, problems, "room %s", rooms[r])
			require.Equal(t, report{Messages: want}, rp, "room %s", rooms[r])
			sum.Messages += rp.Messages

			// The release order holds every sent message once, and within a
			// priority each producer's messages in the order it sent them.
			order := recs[r].ids(names[0])
			byID := map[uint64]sentMsg{}
			for _, s := range sent[r] {
				byID[s.id] = s
			}
			require.Len(t, order, len(byID))
			lastSeq := map[[2]int]int{}
			for _, id := range order {
				s, ok := byID[id]
				require.True(t, ok, "message %d was never sent to %s", id, rooms[r])
				key := [2]int{s.producer, s.prio}
				if last, ok := lastSeq[key]; ok {
					require.Greater(t, s.seq, last, "producer %d, priority %d: FIFO broken in %s", s.producer, s.prio, rooms[r])
				}
				lastSeq[key] = s.seq
			}
		}
		require.Equal(t, producers*perProducer, total)
		elapsed := time.Since(began)
		for r := range rooms {
			for _, m := range members[r] {
				m.stop()
			}
		}
		t.Logf("F6 %s: %d producers x %d messages over %d rooms, %d subscribers each: %d deliveries checked in %v (sends took %v); %s",
			b.Name, producers, perProducer, nrooms, subscribers, total*subscribers, elapsed.Round(time.Millisecond), sendTime.Round(time.Millisecond), sum)
	})
}
