package authn

import (
	"crypto"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/acme/cloudrun-istio-gke/internal/cputime"
)

// BenchmarkAuthenticate compares a token verified from scratch each time
// (cache disabled: parse + RSA-2048 verify) with the same token served from
// the verified-token cache. Figures: docs/performance.md.
func BenchmarkAuthenticate(b *testing.B) {
	testKeys(b)
	c := newClock()
	srv := newJWKSServer(b, jwksJSON(b, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true))
	tok := signJWS(b, rsaKey1, jwa.RS256(), "key-1", claimsAt(c.Now()))

	for _, bc := range []struct {
		name      string
		cacheSize int
	}{
		{name: "cold RS256 verify", cacheSize: -1},
		{name: "cached", cacheSize: DefaultCacheSize},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a, err := New([]*securityv1beta1.JWTRule{identityRule(srv.URL)}, Options{
				HTTPClient: srv.Client(), Now: c.Now, Logger: discardLogger(), CacheSize: bc.cacheSize})
			if err != nil {
				b.Fatal(err)
			}
			r := bearer(tok)
			if _, fail := a.Authenticate(r); fail != nil { // fetch the JWKS outside the loop
				b.Fatalf("want the token accepted, got %+v", fail)
			}
			b.ReportAllocs()
			cpu := cputime.Used(b)
			for b.Loop() {
				res, fail := a.Authenticate(r)
				if fail != nil || res.RequestPrincipal == "" {
					b.Fatalf("want the token accepted, got %+v", fail)
				}
			}
			// CPU time per op as well as wall time: the machine is shared,
			// and CPU time is what other processes' load does not inflate.
			cputime.ReportPerOp(b, cpu)
		})
	}
}
