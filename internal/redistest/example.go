package redistest

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ExampleBackend is Standalone for executable examples, which get no
// testing.TB: a client on the binary's shared standalone server (started on
// first use, stopped by Main) with a fresh key prefix. cleanup deletes the
// prefix's keys and closes the client; call it when the example ends.
//
//	func ExampleQueue_Send() {
//		b, cleanup, err := redistest.ExampleBackend()
//		...
//		defer cleanup()
//	}
func ExampleBackend() (b *Backend, cleanup func(), err error) {
	addrs, err := sharedStandalone.getUntested()
	if err != nil {
		return nil, nil, err
	}
	b = &Backend{Name: NameStandalone, Prefix: newPrefix(), Addrs: addrs}
	c := redis.NewClient(&redis.Options{Addr: addrs[0]})
	b.Client = c
	cleanup = func() {
		if err := b.deleteKeys(); err != nil {
			fmt.Printf("redistest: delete keys of prefix %q: %v\n", b.Prefix, err)
		}
		_ = c.Close()
	}
	return b, cleanup, nil
}

// getUntested is get without a testing.TB to log to. It shares get's
// sync.Once, so tests and examples of one binary use the same server.
func (s *sharedServer) getUntested() ([]string, error) {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		addrs, how, stop, err := s.start(ctx)
		s.addrs, s.how, s.err = addrs, how, err
		s.mu.Lock()
		s.stop = stop
		s.mu.Unlock()
	})
	return s.addrs, s.err
}
