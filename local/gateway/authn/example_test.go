package authn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/acme/cloudrun-istio-gke/local/gateway/authn"
)

// A RequestAuthentication rule whose jwksUri is served locally through
// JWKSOverride, a request with a valid token, one with an expired token, and
// the upstream request the gateway builds.
func ExampleAuthenticator_Authenticate() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jwk.Import(&key.PublicKey)
	_ = pub.Set(jwk.KeyIDKey, "k1")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwksBody, _ := json.Marshal(set)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwksBody) }))
	defer jwks.Close()

	const google = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	a, err := authn.New([]*securityv1beta1.JWTRule{{
		Issuer:               "https://securetoken.google.com/demo-acme",
		Audiences:            []string{"demo-acme"},
		JwksUri:              google,
		ForwardOriginalToken: true,
		OutputClaimToHeaders: []*securityv1beta1.ClaimToHeader{{Header: "x-jwt-claim-email", Claim: "email"}},
	}}, authn.Options{
		HTTPClient:   jwks.Client(),
		JWKSOverride: map[string]string{google: jwks.URL},
		Now:          func() time.Time { return now },
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		panic(err)
	}

	sign := func(exp time.Time) string {
		claims, _ := json.Marshal(map[string]any{"iss": "https://securetoken.google.com/demo-acme", "aud": "demo-acme",
			"sub": "user-1", "email": "ada@example.com", "exp": exp.Unix()})
		hdr := jws.NewHeaders()
		_ = hdr.Set(jws.KeyIDKey, "k1")
		tok, _ := jws.Sign(claims, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(hdr)))
		return string(tok)
	}

	r := httptest.NewRequest("GET", "https://api.internal.example/api/secure.json", nil)
	r.Header.Set("Authorization", "Bearer "+sign(now.Add(time.Hour)))
	r.Header.Set("X-Jwt-Claim-Email", "spoofed@example.com")
	res, fail := a.Authenticate(r)
	fmt.Println(res.RequestPrincipal, fail == nil)
	res.Apply(r)
	fmt.Println(r.Header.Values("X-Jwt-Claim-Email"))

	r = httptest.NewRequest("GET", "https://api.internal.example/api/secure.json", nil)
	r.Header.Set("Authorization", "Bearer "+sign(now.Add(-time.Hour)))
	_, fail = a.Authenticate(r)
	fmt.Println(fail.Status, fail.Body)
	fmt.Println(fail.WWWAuthenticate)
	// Output:
	// https://securetoken.google.com/demo-acme/user-1 true
	// [ada@example.com]
	// 401 Jwt is expired
	// Bearer realm="https://api.internal.example/api/secure.json", error="invalid_token"
}
