// Package tokencache remembers tokens that verified, so that the same bearer
// token, sent again on every request of a session, does not pay a signature
// verification (and, for the Admin SDK in emulator mode, a lookup RPC) each
// time. It is Envoy's jwt_cache in shape: a bounded least-recently-used map
// keyed by the exact token, holding only what a successful verification
// produced. Refusals are never cached, so garbage cannot crowd it.
//
// Both verifiers that use it (the local gateway's authn and internal/idtoken)
// say in their own comments which checks still run on a hit. The local
// gateway also keys its x-forwarded-client-cert elements by the client
// certificate's DER here: the same bound, the same eviction.
package tokencache

import (
	"container/list"
	"sync"
	"time"
)

// Cache is safe for concurrent use. A nil *Cache is a disabled cache: Get
// finds nothing, Put and Remove do nothing.
type Cache[V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = most recently used; values are *entry[V]
	byKey map[string]*list.Element
}

type entry[V any] struct {
	key   string
	value V
	until time.Time // zero: no expiry of its own
}

// New returns a cache of at most max tokens (max ≥ 1).
func New[V any](max int) *Cache[V] {
	return &Cache[V]{max: max, order: list.New(), byKey: make(map[string]*list.Element)}
}

// Get returns what was stored for token, unless it has expired at now, in
// which case the entry is dropped.
func (c *Cache[V]) Get(token string, now time.Time) (V, bool) {
	var zero V
	if c == nil {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[token]
	if !ok {
		return zero, false
	}
	en := e.Value.(*entry[V])
	if !en.until.IsZero() && !now.Before(en.until) {
		c.order.Remove(e)
		delete(c.byKey, token)
		return zero, false
	}
	c.order.MoveToFront(e)
	return en.value, true
}

// Put stores v for token until the given time (zero: until evicted or
// removed), evicting the least recently used token beyond the bound.
func (c *Cache[V]) Put(token string, v V, until time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	en := &entry[V]{key: token, value: v, until: until}
	if e, ok := c.byKey[token]; ok {
		e.Value = en
		c.order.MoveToFront(e)
		return
	}
	c.byKey[token] = c.order.PushFront(en)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*entry[V]).key)
	}
}

// Remove forgets token.
func (c *Cache[V]) Remove(token string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[token]; ok {
		c.order.Remove(e)
		delete(c.byKey, token)
	}
}

// Len is the number of tokens held, expired ones not yet met included.
func (c *Cache[V]) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
