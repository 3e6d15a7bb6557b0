package queue

import (
	"slices"
	"sync"
)

// issuedToken is the token of the newest message a worker handed a hosted
// client, as sent (s) and as made (t).
type issuedToken struct {
	s string
	t token
}

// hostedTokens finds, from the client ID Worker.Ack is given, the tokens
// the worker issued to that client (one per room it is hosted in), so that
// Ack with such a token (what a gateway's clients send back) skips
// decoding it and checking its HMAC: a string equal to a token issued here
// is that token, whoever sends it back. Any other string, an older token
// (a window, a late ack) or a client of a follow-all worker takes the full
// check, with the same outcome.
//
// Issuing is an atomic store on the client (no lock, no map: a fanout
// issues one per member); the index by client ID changes only when a
// client is hosted or stops being hosted, so its reads take no lock.
type hostedTokens struct {
	mu  sync.Mutex // serializes the changes of ids
	ids sync.Map   // client ID -> *[]*workerClient, replaced, never changed
}

// host indexes c; its room's mu must be held.
func (h *hostedTokens) host(c *workerClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cs []*workerClient
	if v, ok := h.ids.Load(c.id); ok {
		cs = slices.Clone(*v.(*[]*workerClient))
	}
	cs = append(cs, c)
	h.ids.Store(c.id, &cs)
}

// unhost drops c from the index (if there) and forgets its token; its
// room's mu must be held.
func (h *hostedTokens) unhost(c *workerClient) {
	c.token.Store(nil)
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.ids.Load(c.id)
	if !ok {
		return
	}
	cs := slices.DeleteFunc(slices.Clone(*v.(*[]*workerClient)), func(x *workerClient) bool { return x == c })
	if len(cs) == 0 {
		h.ids.Delete(c.id)
		return
	}
	h.ids.Store(c.id, &cs)
}

// lookup returns the token issued to clientID as tok, if it is the newest
// issued to that client in one of its rooms.
func (h *hostedTokens) lookup(clientID, tok string) (token, bool) {
	v, ok := h.ids.Load(clientID)
	if !ok {
		return token{}, false
	}
	for _, c := range *v.(*[]*workerClient) {
		if it := c.token.Load(); it != nil && it.s == tok {
			return it.t, true
		}
	}
	return token{}, false
}

// count returns the hosted clients indexed (tests).
func (h *hostedTokens) count() int {
	n := 0
	h.ids.Range(func(_, v any) bool {
		n += len(*v.(*[]*workerClient))
		return true
	})
	return n
}
