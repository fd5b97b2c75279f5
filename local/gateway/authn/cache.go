package authn

import (
	"container/list"
	"sync"
)

// tokenCache remembers tokens whose signature verified, so the same token
// does not pay an RSA verification on every request (Envoy's per-provider
// jwt_cache, a bounded LRU keyed by the token). Only the signature result is
// cached: exp, nbf, issuer location and audience are checked again on every
// hit, and the verifying key must still be in the issuer's JWKS, so an entry
// never outlives its token's validity or its key; expired entries are
// dropped when met.
//
// Istio configures Envoy without a jwt_cache; this cache changes the cost of
// a repeated token, never its outcome.
type tokenCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recently used; values are *verified
	byTok map[string]*list.Element
}

// verified is everything derived from a verified token that does not depend
// on the request, computed once.
type verified struct {
	token     string
	provider  *provider
	jwt       *jwt
	key       *publicKey // the JWKS key that verified it
	principal string
	claims    map[string]any // normalized; shared, never mutated
	headers   [][2]string    // outputPayloadToHeader and outputClaimToHeaders
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, order: list.New(), byTok: make(map[string]*list.Element, max)}
}

func (c *tokenCache) get(tok string) *verified {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byTok[tok]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*verified)
}

func (c *tokenCache) remove(tok string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byTok[tok]; ok {
		c.order.Remove(e)
		delete(c.byTok, tok)
	}
}

func (c *tokenCache) put(v *verified) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byTok[v.token]; ok {
		e.Value = v
		c.order.MoveToFront(e)
		return
	}
	c.byTok[v.token] = c.order.PushFront(v)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byTok, last.Value.(*verified).token)
	}
}

func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
