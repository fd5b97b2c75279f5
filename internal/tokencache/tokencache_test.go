package tokencache_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/tokencache"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestCache(t *testing.T) {
	type step struct {
		op    string // put, get, remove
		token string
		value int
		until time.Time
		at    time.Time
		want  int // for get: the value, or -1 for a miss
	}
	for _, tc := range []struct {
		name    string
		max     int
		steps   []step
		wantLen int
	}{
		{"a stored token is found", 2, []step{
			{op: "put", token: "a", value: 1, until: t0.Add(time.Hour)},
			{op: "get", token: "a", at: t0, want: 1},
		}, 1},
		{"an unknown token is not", 2, []step{
			{op: "put", token: "a", value: 1},
			{op: "get", token: "b", at: t0, want: -1},
		}, 1},
		{"a token is gone at its expiry, not a moment later, and dropped", 2, []step{
			{op: "put", token: "a", value: 1, until: t0.Add(time.Minute)},
			{op: "get", token: "a", at: t0.Add(time.Minute - time.Nanosecond), want: 1},
			{op: "get", token: "a", at: t0.Add(time.Minute), want: -1},
		}, 0},
		{"a zero expiry never expires by itself", 2, []step{
			{op: "put", token: "a", value: 1},
			{op: "get", token: "a", at: t0.Add(1000 * time.Hour), want: 1},
		}, 1},
		{"storing a token again replaces its value and expiry", 2, []step{
			{op: "put", token: "a", value: 1, until: t0.Add(time.Minute)},
			{op: "put", token: "a", value: 2, until: t0.Add(time.Hour)},
			{op: "get", token: "a", at: t0.Add(30 * time.Minute), want: 2},
		}, 1},
		{"beyond the bound the least recently used goes", 2, []step{
			{op: "put", token: "a", value: 1},
			{op: "put", token: "b", value: 2},
			{op: "get", token: "a", at: t0, want: 1}, // a is now the most recent
			{op: "put", token: "c", value: 3},
			{op: "get", token: "b", at: t0, want: -1},
			{op: "get", token: "a", at: t0, want: 1},
			{op: "get", token: "c", at: t0, want: 3},
		}, 2},
		{"a removed token is gone", 2, []step{
			{op: "put", token: "a", value: 1},
			{op: "remove", token: "a"},
			{op: "remove", token: "never stored"},
			{op: "get", token: "a", at: t0, want: -1},
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tokencache.New[int](tc.max)
			for i, s := range tc.steps {
				switch s.op {
				case "put":
					c.Put(s.token, s.value, s.until)
				case "remove":
					c.Remove(s.token)
				case "get":
					v, ok := c.Get(s.token, s.at)
					if got := map[bool]int{true: v, false: -1}[ok]; got != s.want {
						t.Errorf("step %d: Get(%q) = %d, %v; want %d", i, s.token, v, ok, s.want)
					}
				}
			}
			if got := c.Len(); got != tc.wantLen {
				t.Errorf("Len() = %d, want %d", got, tc.wantLen)
			}
		})
	}
}

func TestNilCacheIsDisabled(t *testing.T) {
	var c *tokencache.Cache[string]
	c.Put("a", "v", time.Time{})
	if v, ok := c.Get("a", t0); ok {
		t.Errorf("nil cache: Get found %q", v)
	}
	c.Remove("a")
	if c.Len() != 0 {
		t.Errorf("nil cache: Len() = %d", c.Len())
	}
}

// TestConcurrentUse is for the race detector, and checks the bound holds.
func TestConcurrentUse(t *testing.T) {
	c := tokencache.New[int](8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				tok := fmt.Sprint(g*1000 + i%20)
				c.Put(tok, i, t0.Add(time.Duration(i)*time.Second))
				c.Get(tok, t0)
				if i%7 == 0 {
					c.Remove(tok)
				}
			}
		})
	}
	wg.Wait()
	if got := c.Len(); got > 8 {
		t.Errorf("Len() = %d after concurrent use, more than the bound 8", got)
	}
}
