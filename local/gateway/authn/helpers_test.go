package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
)

// The names fixed for the project: the local Identity Platform issuer.
const (
	testProject = "demo-acme"
	testIssuer  = "https://securetoken.google.com/" + testProject
	googleJWKS  = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
)

// RSA key generation is slow; the test binary makes each key once.
var (
	keysOnce sync.Once
	rsaKey1  *rsa.PrivateKey
	rsaKey2  *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey1, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

func newClock() *clocktest.Clock { return clocktest.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)) }

// jwksJSON publishes public keys as a JWKS, each with its kid and alg, as
// Google's securetoken endpoint does.
func jwksJSON(t testing.TB, keys map[string]crypto.PublicKey, withAlg bool) []byte {
	t.Helper()
	set := jwk.NewSet()
	for kid, pub := range keys {
		k, err := jwk.Import(pub)
		if err != nil {
			t.Fatalf("importing public key %s: %v", kid, err)
		}
		_ = k.Set(jwk.KeyIDKey, kid)
		if withAlg {
			switch pub.(type) {
			case *rsa.PublicKey:
				_ = k.Set(jwk.AlgorithmKey, jwa.RS256())
			case *ecdsa.PublicKey:
				_ = k.Set(jwk.AlgorithmKey, jwa.ES256())
			}
		}
		if err := set.AddKey(k); err != nil {
			t.Fatalf("adding key %s: %v", kid, err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatalf("encoding JWKS: %v", err)
	}
	return b
}

// jwksServer serves a JWKS it can change, fail or garble, counting fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    []byte
	status  int
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// signJWS signs a token with jwx, the way a real issuer would.
func signJWS(t testing.TB, key crypto.Signer, alg jwa.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("encoding claims: %v", err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	_ = hdr.Set(jws.TypeKey, "JWT")
	tok, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatalf("signing token: %v", err)
	}
	return string(tok)
}

// signRaw builds a token with any header at all, for attacks a well-behaved
// library refuses to produce: RS256 over the exact header and payload given.
func signRaw(t testing.TB, key *rsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	input := seg(t, header) + "." + seg(t, claims)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// signHMAC is the classic key-confusion attack: HS256 keyed with bytes the
// attacker knows (for example the issuer's public key).
func signHMAC(t testing.TB, secret []byte, header, claims map[string]any) string {
	t.Helper()
	input := seg(t, header) + "." + seg(t, claims)
	m := hmac.New(sha256.New, secret)
	_, _ = io.WriteString(m, input)
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func seg(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding segment: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// claimsAt are valid Identity Platform claims for now.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss":   testIssuer,
		"aud":   testProject,
		"sub":   "user-1",
		"email": "ada@example.com",
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
}

func with(c map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// identityRule is the project's RequestAuthentication rule.
func identityRule(jwksURI string) *securityv1beta1.JWTRule {
	return &securityv1beta1.JWTRule{
		Issuer:               testIssuer,
		Audiences:            []string{testProject},
		JwksUri:              jwksURI,
		ForwardOriginalToken: true,
		OutputClaimToHeaders: []*securityv1beta1.ClaimToHeader{
			{Header: "x-jwt-claim-sub", Claim: "sub"},
			{Header: "x-jwt-claim-email", Claim: "email"},
		},
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newAuthenticator(t testing.TB, rules []*securityv1beta1.JWTRule, c *clocktest.Clock, override map[string]string) *Authenticator {
	t.Helper()
	a, err := New(rules, Options{
		HTTPClient:   &http.Client{Timeout: 5 * time.Second},
		JWKSOverride: override,
		Now:          c.Now,
		Logger:       discardLogger(),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}
