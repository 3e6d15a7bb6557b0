package queue

import (
	"hash/maphash"
	"sync"
)

// issuedTokens remembers, for each hosted client, the token of the newest
// message the worker handed it, so that Worker.Ack with that token (what a
// gateway's clients send back) skips decoding and checking the HMAC of a
// token this process just made. A token string equal to one issued here is
// that token, whoever sends it back; any other string takes the full check.
// One entry per client bounds the memory whatever the clients do; a client
// acking an older delivery (a window, a late ack) pays the full check.
//
// The entries are sharded by the token's hash: a room's members ack the
// same message at once, and one lock for all of them would be a queue.
type issuedTokens struct {
	seed   maphash.Seed
	shards [issuedShards]issuedShard
}

const issuedShards = 16

type issuedShard struct {
	mu sync.Mutex
	m  map[string]token
}

func newIssuedTokens() *issuedTokens {
	it := &issuedTokens{seed: maphash.MakeSeed()}
	for i := range it.shards {
		it.shards[i].m = map[string]token{}
	}
	return it
}

func (it *issuedTokens) shard(s string) *issuedShard {
	return &it.shards[maphash.String(it.seed, s)%issuedShards]
}

// issue records tok, replacing prev (the client's previous token, if any).
func (it *issuedTokens) issue(prev, tok string, t token) {
	it.forget(prev)
	sh := it.shard(tok)
	sh.mu.Lock()
	sh.m[tok] = t
	sh.mu.Unlock()
}

// lookup returns the token issued as tok, if it is still remembered.
func (it *issuedTokens) lookup(tok string) (token, bool) {
	sh := it.shard(tok)
	sh.mu.Lock()
	t, ok := sh.m[tok]
	sh.mu.Unlock()
	return t, ok
}

// forget drops tok ("" is never recorded).
func (it *issuedTokens) forget(tok string) {
	if tok == "" {
		return
	}
	sh := it.shard(tok)
	sh.mu.Lock()
	delete(sh.m, tok)
	sh.mu.Unlock()
}
