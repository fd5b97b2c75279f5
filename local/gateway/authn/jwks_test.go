package authn

import (
	"context"
	"crypto"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"google.golang.org/protobuf/types/known/durationpb"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
)

// Faults at the JWKS endpoint (issue "Hardening": down, slow, garbage; cached
// keys keep valid tokens working, unknown keys fail closed, recovery without
// restart, no thundering herd).
func TestJWKSFaults(t *testing.T) {
	testKeys(t)
	key1 := jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true)
	both := jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey, "key-2": &rsaKey2.PublicKey}, true)

	type step struct {
		do          func(s *jwksServer, c *clocktest.Clock)
		kid         string // token signed with key-1 for "key-1", key-2 otherwise
		wantBody    string // "" means the token is accepted
		wantFetches int64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "valid tokens keep working while the endpoint is down", steps: []step{
			{kid: "key-1", wantFetches: 1},
			{do: func(s *jwksServer, c *clocktest.Clock) {
				s.serve(http.StatusServiceUnavailable, nil)
				c.Advance(6 * time.Minute)
			},
				kid: "key-1", wantFetches: 2},
			{kid: "key-1", wantFetches: 2},
		}},
		{name: "a garbage JWKS does not replace good keys", steps: []step{
			{kid: "key-1", wantFetches: 1},
			{do: func(s *jwksServer, c *clocktest.Clock) {
				s.serve(http.StatusOK, []byte("<html>oops"))
				c.Advance(6 * time.Minute)
			},
				kid: "key-1", wantFetches: 2},
		}},
		{name: "an unknown kid fails closed while the endpoint is down", steps: []step{
			{kid: "key-1", wantFetches: 1},
			{do: func(s *jwksServer, c *clocktest.Clock) { s.serve(http.StatusBadGateway, nil); c.Advance(time.Minute) },
				kid: "key-2", wantBody: "Jwks doesn't have key to match kid or alg from Jwt", wantFetches: 2},
		}},
		{name: "a rotated-in key is accepted at once", steps: []step{
			{kid: "key-1", wantFetches: 1},
			{do: func(s *jwksServer, c *clocktest.Clock) { s.serve(http.StatusOK, both); c.Advance(time.Minute) },
				kid: "key-2", wantFetches: 2},
			{kid: "key-1", wantFetches: 2},
		}},
		{name: "refetches for unknown kids are rate limited", steps: []step{
			{kid: "key-1", wantFetches: 1},
			{do: func(s *jwksServer, c *clocktest.Clock) { c.Advance(time.Minute) },
				kid: "key-2", wantBody: "Jwks doesn't have key to match kid or alg from Jwt", wantFetches: 2},
			{do: func(s *jwksServer, c *clocktest.Clock) {
				s.serve(http.StatusOK, both)
				c.Advance(minRefetchInterval - time.Second)
			},
				kid: "key-2", wantBody: "Jwks doesn't have key to match kid or alg from Jwt", wantFetches: 2},
			{do: func(s *jwksServer, c *clocktest.Clock) { c.Advance(time.Second) },
				kid: "key-2", wantFetches: 3},
		}},
		// Until keys were fetched once, every token fails verification, as
		// with istiod's fail-closed PublicOnlyJwks (pilot/pkg/model/jwks_resolver.go).
		{name: "the gateway recovers without restart once the endpoint is back", steps: []step{
			{do: func(s *jwksServer, c *clocktest.Clock) { s.serve(http.StatusInternalServerError, nil) },
				kid: "key-1", wantBody: "Jwt verification fails", wantFetches: 1},
			{kid: "key-1", wantBody: "Jwt verification fails", wantFetches: 1},
			{do: func(s *jwksServer, c *clocktest.Clock) { s.serve(http.StatusOK, key1); c.Advance(minRefetchInterval) },
				kid: "key-1", wantFetches: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			srv := newJWKSServer(t, key1)
			a := newAuthenticator(t, []*securityv1beta1.JWTRule{identityRule(srv.URL)}, c, nil)
			for i, st := range tt.steps {
				if st.do != nil {
					st.do(srv, c)
				}
				key := rsaKey1
				if st.kid != "key-1" {
					key = rsaKey2
				}
				// A fresh token each step, so the verified-token cache does not hide the keys.
				tok := signJWS(t, key, jwa.RS256(), st.kid, with(claimsAt(c.Now()), "jti", fmt.Sprint(i)))
				_, fail := a.Authenticate(bearer(tok))
				switch {
				case st.wantBody == "" && fail != nil:
					t.Errorf("step %d: want the %s token accepted, got %d %q", i, st.kid, fail.Status, fail.Body)
				case st.wantBody != "" && (fail == nil || fail.Body != st.wantBody):
					t.Errorf("step %d: want 401 %q, got %+v", i, st.wantBody, fail)
				}
				if got := srv.fetches.Load(); got != st.wantFetches {
					t.Errorf("step %d: JWKS fetched %d times, want %d", i, got, st.wantFetches)
				}
			}
		})
	}
}

func TestConcurrentColdStartFetchesTheJWKSOnce(t *testing.T) {
	testKeys(t)
	c := newClock()
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true))
	a := newAuthenticator(t, []*securityv1beta1.JWTRule{identityRule(srv.URL)}, c, nil)

	const n = 32
	toks := make([]string, n)
	for i := range toks {
		toks[i] = signJWS(t, rsaKey2, jwa.RS256(), fmt.Sprintf("made-up-%d", i), claimsAt(c.Now()))
	}
	var wg sync.WaitGroup
	fails := make(chan *Failure, n)
	for _, tok := range toks {
		wg.Go(func() {
			_, f := a.Authenticate(bearer(tok))
			fails <- f
		})
	}
	wg.Wait()
	close(fails)
	for f := range fails {
		if f == nil || f.Body != "Jwks doesn't have key to match kid or alg from Jwt" {
			t.Errorf("a token with a made-up kid got %+v, want 401 for the unknown key", f)
		}
	}
	// Singleflight merges concurrent fetches and the refetch limit stops
	// the rest: 32 requests with 32 unknown kids cost one fetch.
	if got := srv.fetches.Load(); got != 1 {
		t.Errorf("JWKS fetched %d times for %d concurrent requests, want 1", got, n)
	}
}

func TestSlowJWKSEndpointTimesOut(t *testing.T) {
	testKeys(t)
	c := newClock()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	rule := identityRule(slow.URL)
	rule.Timeout = durationpb.New(50 * time.Millisecond)
	a := newAuthenticator(t, []*securityv1beta1.JWTRule{rule}, c, nil)

	start := time.Now()
	_, fail := a.Authenticate(bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", claimsAt(c.Now()))))
	if fail == nil || fail.Body != "Jwt verification fails" {
		t.Fatalf("got %+v, want 401 %q", fail, "Jwt verification fails")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("a hung JWKS endpoint held the request for %v; the rule's 50ms timeout should end it", elapsed)
	}
}

func TestRequestCancelledWhileWaitingForTheJWKS(t *testing.T) {
	testKeys(t)
	c := newClock()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	a := newAuthenticator(t, []*securityv1beta1.JWTRule{identityRule(slow.URL)}, c, nil)

	ctx, cancel := context.WithCancel(context.Background())
	r := bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", claimsAt(c.Now()))).WithContext(ctx)
	go func() {
		<-entered
		cancel()
	}()
	_, fail := a.Authenticate(r)
	if fail == nil || fail.Body != "Jwt verification fails" {
		t.Fatalf("got %+v, want 401 %q once the client gave up", fail, "Jwt verification fails")
	}
}

func TestVerifiedTokenCache(t *testing.T) {
	testKeys(t)
	srvKeys := jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true)

	t.Run("the same token is verified once and served from the cache after", func(t *testing.T) {
		c := newClock()
		srv := newJWKSServer(t, srvKeys)
		a := newAuthenticator(t, []*securityv1beta1.JWTRule{identityRule(srv.URL)}, c, nil)
		tok := signJWS(t, rsaKey1, jwa.RS256(), "key-1", claimsAt(c.Now()))
		first, fail := a.Authenticate(bearer(tok))
		if fail != nil {
			t.Fatalf("want the token accepted, got %+v", fail)
		}
		second, fail := a.Authenticate(bearer(tok))
		if fail != nil {
			t.Fatalf("want the token accepted again, got %+v", fail)
		}
		if reflect.ValueOf(first.Claims).Pointer() != reflect.ValueOf(second.Claims).Pointer() {
			t.Error("the second request parsed and verified the token again; want the cached verification reused")
		}
		if got := a.cache.Len(); got != 1 {
			t.Errorf("cache holds %d tokens, want 1", got)
		}
	})
	t.Run("a cached token is refused once it expires", func(t *testing.T) {
		c := newClock()
		srv := newJWKSServer(t, srvKeys)
		a := newAuthenticator(t, []*securityv1beta1.JWTRule{identityRule(srv.URL)}, c, nil)
		tok := signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(c.Now()), "exp", c.Now().Add(time.Minute).Unix()))
		if _, fail := a.Authenticate(bearer(tok)); fail != nil {
			t.Fatalf("want the token accepted, got %+v", fail)
		}
		c.Advance(time.Minute + ClockSkew + time.Second)
		_, fail := a.Authenticate(bearer(tok))
		if fail == nil || fail.Body != "Jwt is expired" {
			t.Fatalf("got %+v, want 401 %q from the cache", fail, "Jwt is expired")
		}
		if got := a.cache.Len(); got != 0 {
			t.Errorf("cache holds %d tokens after expiry, want the expired one dropped", got)
		}
	})
	t.Run("a cached token stops working once the issuer withdraws its key", func(t *testing.T) {
		c := newClock()
		srv := newJWKSServer(t, srvKeys)
		a := newAuthenticator(t, []*securityv1beta1.JWTRule{identityRule(srv.URL)}, c, nil)
		tok := signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(c.Now()), "exp", c.Now().Add(24*time.Hour).Unix()))
		if _, fail := a.Authenticate(bearer(tok)); fail != nil {
			t.Fatalf("want the token accepted, got %+v", fail)
		}
		srv.serve(http.StatusOK, jwksJSON(t, map[string]crypto.PublicKey{"key-2": &rsaKey2.PublicKey}, true))
		c.Advance(jwksCacheDuration + time.Second)
		_, fail := a.Authenticate(bearer(tok))
		if fail == nil || fail.Body != "Jwks doesn't have key to match kid or alg from Jwt" {
			t.Fatalf("got %+v, want 401 %q after the key left the JWKS", fail, "Jwks doesn't have key to match kid or alg from Jwt")
		}
		if got := a.cache.Len(); got != 0 {
			t.Errorf("cache holds %d tokens, want the withdrawn key's token dropped", got)
		}
	})
	t.Run("the cache never holds more than CacheSize tokens", func(t *testing.T) {
		c := newClock()
		srv := newJWKSServer(t, srvKeys)
		a, err := New([]*securityv1beta1.JWTRule{identityRule(srv.URL)}, Options{
			HTTPClient: srv.Client(), Now: c.Now, Logger: discardLogger(), CacheSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			tok := signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(c.Now()), "jti", fmt.Sprint(i)))
			if _, fail := a.Authenticate(bearer(tok)); fail != nil {
				t.Fatalf("token %d: want accepted, got %+v", i, fail)
			}
		}
		if got := a.cache.Len(); got != 2 {
			t.Errorf("cache holds %d tokens, want the bound 2", got)
		}
	})
	t.Run("a negative CacheSize disables the cache", func(t *testing.T) {
		c := newClock()
		srv := newJWKSServer(t, srvKeys)
		a, err := New([]*securityv1beta1.JWTRule{identityRule(srv.URL)}, Options{
			HTTPClient: srv.Client(), Now: c.Now, Logger: discardLogger(), CacheSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		tok := signJWS(t, rsaKey1, jwa.RS256(), "key-1", claimsAt(c.Now()))
		for range 2 {
			if _, fail := a.Authenticate(bearer(tok)); fail != nil {
				t.Fatalf("want accepted, got %+v", fail)
			}
		}
		if got := a.cache.Len(); got != 0 {
			t.Errorf("cache holds %d tokens, want none", got)
		}
	})
}
