package idtoken

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gauth "cloud.google.com/go/auth"
	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

const project = "demo-acme"

// emulator is a real local/identity emulator on loopback, with the process
// environment pointing the Admin SDK at it.
type emulator struct {
	*identity.Emulator
	host       string
	jwksFetchs atomic.Int64 // how often the JWKS was served
	lookups    atomic.Int64 // how often the SDK looked a user up (emulator mode: once per verification)
}

func startEmulator(t *testing.T) *emulator {
	t.Helper()
	em, err := identity.New(identity.Config{ProjectID: project, StateDir: t.TempDir(), PasswordHashCost: 10})
	if err != nil {
		t.Fatalf("starting the identity emulator: %v", err)
	}
	e := &emulator{Emulator: em}
	h := em.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == jwksPath:
			e.jwksFetchs.Add(1)
		case strings.HasSuffix(r.URL.Path, "/accounts:lookup"):
			e.lookups.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.host = srv.Listener.Addr().String()
	t.Setenv(EmulatorHostEnv, e.host)
	return e
}

// newVerifier returns a verifier for the emulator whose key and token caches
// run on the returned clock, so tests can step past their limits without
// sleeping.
func (e *emulator) newVerifier(t *testing.T) (*Firebase, *clocktest.Clock) {
	t.Helper()
	clock := clocktest.New(time.Now())
	v, err := New(t.Context(), Config{ProjectID: project, EmulatorHost: e.host, Now: clock.Now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v, clock
}

// adminClient is the real Admin SDK, talking to the emulator, to disable and
// delete users as an operator would.
func (e *emulator) adminClient(t *testing.T) *auth.Client {
	t.Helper()
	app, err := firebase.NewApp(t.Context(), &firebase.Config{ProjectID: project})
	if err != nil {
		t.Fatal(err)
	}
	c, err := app.Auth(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *emulator) user(t *testing.T, email string) string {
	t.Helper()
	uid, err := e.EnsureUser(t.Context(), email, "correct horse battery staple")
	if err != nil {
		t.Fatalf("EnsureUser(%s): %v", email, err)
	}
	return uid
}

func (e *emulator) token(t *testing.T, uid string, issuedAt time.Time) string {
	t.Helper()
	tok, err := e.IDTokenFor(t.Context(), uid, issuedAt)
	if err != nil {
		t.Fatalf("IDTokenFor(%s): %v", uid, err)
	}
	return tok
}

func (e *emulator) signClaims(t *testing.T, claims map[string]any) string {
	t.Helper()
	tok, err := e.SignClaims(claims)
	if err != nil {
		t.Fatalf("SignClaims: %v", err)
	}
	return tok
}

// expOf reads the exp claim of a token.
func expOf(t *testing.T, tok string) time.Time {
	t.Helper()
	msg, err := jws.Parse([]byte(tok), jws.WithCompact())
	if err != nil {
		t.Fatalf("parsing token: %v", err)
	}
	var claims struct{ Exp int64 }
	if err := json.Unmarshal(msg.Payload(), &claims); err != nil || claims.Exp == 0 {
		t.Fatalf("token payload: exp %d, %v", claims.Exp, err)
	}
	return time.Unix(claims.Exp, 0)
}

// kidOf reads the kid from a token's header.
func kidOf(t *testing.T, tok string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(tok), jws.WithCompact())
	if err != nil {
		t.Fatalf("parsing token header: %v", err)
	}
	kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID()
	return kid
}

// forge signs claims with a key the emulator never had, under the given kid
// and algorithm.
func forge(t *testing.T, claims map[string]any, kid string, alg jwa.SignatureAlgorithm, key any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	tok, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatalf("forging a token: %v", err)
	}
	return string(tok)
}

// unsigned builds an "alg: none" token by hand: no library will sign one.
func unsigned(t *testing.T, claims map[string]any, kid string) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	p, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(p) + "."
}

func claimsFor(uid, aud string, iat time.Time) map[string]any {
	return map[string]any{
		"iss": "https://securetoken.google.com/" + aud, "aud": aud, "sub": uid, "user_id": uid,
		"iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix(), "auth_time": iat.Unix(),
		"email": "forged@example.com", "firebase": map[string]any{"sign_in_provider": "password"},
	}
}

func TestNewRefusesConfigThatWouldMisleadTheSDK(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		cfg     Config
		wantErr string
	}{
		{"a missing project id is named", "127.0.0.1:9099",
			Config{EmulatorHost: "127.0.0.1:9099"}, "ProjectID is required"},
		{"an emulator host the SDK does not see is refused", "",
			Config{ProjectID: project, EmulatorHost: "127.0.0.1:9099"}, "process environment"},
		{"an environment in emulator mode with a production config is refused", "127.0.0.1:9099",
			Config{ProjectID: project}, "process environment"},
		{"a different emulator host than the environment's is refused", "127.0.0.1:9099",
			Config{ProjectID: project, EmulatorHost: "127.0.0.1:9100"}, "process environment"},
		{"an emulator host that is a URL is refused", "http://127.0.0.1:9099",
			Config{ProjectID: project, EmulatorHost: "http://127.0.0.1:9099"}, "not host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EmulatorHostEnv, tt.env)
			v, err := New(t.Context(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New(%+v) with %s=%q: got (%v, %v), want an error containing %q",
					tt.cfg, EmulatorHostEnv, tt.env, v, err, tt.wantErr)
			}
		})
	}
}

func TestVerifyAgainstTheEmulator(t *testing.T) {
	e := startEmulator(t)
	v, _ := e.newVerifier(t)
	admin := e.adminClient(t)

	alice := e.user(t, "alice@example.com")
	disabled := e.user(t, "disabled@example.com")
	deleted := e.user(t, "deleted@example.com")
	// Read the clock only now: the emulator, like Identity Platform, refuses
	// tokens issued before the second their account was created.
	now := time.Now()
	valid := e.token(t, alice, now)
	kid := kidOf(t, valid)
	disabledTok := e.token(t, disabled, now)
	if _, err := admin.UpdateUser(t.Context(), disabled, (&auth.UserToUpdate{}).Disabled(true)); err != nil {
		t.Fatalf("disabling a user: %v", err)
	}
	deletedTok := e.token(t, deleted, now)
	if err := admin.DeleteUser(t.Context(), deleted); err != nil {
		t.Fatalf("deleting a user: %v", err)
	}

	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubJWK, err := jwk.Import(otherKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubJSON, err := json.Marshal(pubJWK)
	if err != nil {
		t.Fatal(err)
	}
	// Signature of the valid token's header and payload replaced by another's.
	forgedSig := e.signClaims(t, claimsFor(alice, project, now.Add(time.Second)))
	spliced := valid[:strings.LastIndex(valid, ".")] + forgedSig[strings.LastIndex(forgedSig, "."):]

	tests := []struct {
		name    string
		token   string
		wantUID string // "" means the token must be refused
	}{
		{"a fresh token of an existing user is accepted", valid, alice},
		// The emulator makes a new user's tokens valid from its creation on,
		// as Identity Platform does (tokensValidAfterTime), so an earlier one
		// reads as revoked.
		{"a token issued before the user's tokens became valid is refused",
			e.token(t, alice, now.Add(-30*time.Minute)), ""},
		{"an expired token is refused", e.token(t, alice, now.Add(-2*time.Hour)), ""},
		{"a token signed with another key under the emulator's kid is refused",
			forge(t, claimsFor(alice, project, now), kid, jwa.RS256(), otherKey), ""},
		{"a token signed with another key under an unknown kid is refused",
			forge(t, claimsFor(alice, project, now), "not-a-real-kid", jwa.RS256(), otherKey), ""},
		{"a token whose signature belongs to other claims is refused", spliced, ""},
		{"a well signed token for another project is refused",
			e.signClaims(t, claimsFor(alice, "another-project", now)), ""},
		{"a well signed token for another issuer is refused",
			e.signClaims(t, map[string]any{"iss": "https://accounts.google.com", "aud": project, "sub": alice,
				"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}), ""},
		{"a well signed token without a subject is refused",
			e.signClaims(t, map[string]any{"iss": "https://securetoken.google.com/" + project, "aud": project,
				"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}), ""},
		{"a token of a disabled user is refused", disabledTok, ""},
		{"a token of a deleted user is refused", deletedTok, ""},
		{"an unsigned alg none token is refused", unsigned(t, claimsFor(alice, project, now), kid), ""},
		{"an HS256 token keyed with the public JWK is refused",
			forge(t, claimsFor(alice, project, now), kid, jwa.HS256(), pubJSON), ""},
		{"an empty token is refused", "", ""},
		{"a token that is not a JWT is refused", "not.a.jwt", ""},
		{"an oversized token is refused", valid + strings.Repeat("A", maxTokenBytes), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := v.Verify(t.Context(), tt.token)
			if tt.wantUID != "" {
				if err != nil {
					t.Fatalf("Verify: got error %v, want uid %s", err, tt.wantUID)
				}
				if tok.UID != tt.wantUID || tok.Claims["email"] != "alice@example.com" {
					t.Fatalf("Verify: got uid %q email %v, want uid %q email alice@example.com",
						tok.UID, tok.Claims["email"], tt.wantUID)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify: got (%v, %v), want an error wrapping ErrInvalidToken", tok, err)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Fatalf("Verify's error quotes the token, which would then reach logs: %v", err)
			}
		})
	}
}

func TestEmulatorKeysAreCachedAndRefetchedWithinLimits(t *testing.T) {
	e := startEmulator(t)
	v, clock := e.newVerifier(t)
	alice := e.user(t, "alice@example.com")
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	unknownKid := forge(t, claimsFor(alice, project, time.Now()), "unknown-kid", jwa.RS256(), otherKey)

	// Each step runs in order on the same verifier; fetches counts all JWKS
	// fetches so far.
	steps := []struct {
		name    string
		before  func(t *testing.T)
		token   func(t *testing.T) string
		valid   bool
		fetches int64
	}{
		{"the first verification fetches the keys", nil,
			func(t *testing.T) string { return e.token(t, alice, time.Now()) }, true, 1},
		{"a second verification uses the cached keys", nil,
			func(t *testing.T) string { return e.token(t, alice, time.Now()) }, true, 1},
		{"an unknown kid right after a fetch is refused without fetching", nil,
			func(*testing.T) string { return unknownKid }, false, 1},
		{"an unknown kid after the rate limit refetches once", func(*testing.T) { clock.Advance(keysMinRefetch) },
			func(*testing.T) string { return unknownKid }, false, 2},
		{"the same unknown kid again does not refetch", nil,
			func(*testing.T) string { return unknownKid }, false, 2},
		// Within the rate limit of the last fetch, so only a key already
		// cached can verify: the emulator published it before it signed.
		{"a rotated-in key is accepted at once from the cached keys, which already had it", func(t *testing.T) {
			if err := e.RotateKey(); err != nil {
				t.Fatal(err)
			}
		},
			func(t *testing.T) string { return e.token(t, alice, time.Now()) }, true, 2},
		{"a key published after the last fetch (two rotations since) is picked up once the rate limit allows",
			func(t *testing.T) {
				for range 2 {
					if err := e.RotateKey(); err != nil {
						t.Fatal(err)
					}
				}
				clock.Advance(keysMinRefetch)
			},
			func(t *testing.T) string { return e.token(t, alice, time.Now()) }, true, 3},
		{"keys older than their max age are fetched again", func(*testing.T) { clock.Advance(keysMaxAge) },
			func(t *testing.T) string { return e.token(t, alice, time.Now()) }, true, 4},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.before != nil {
				s.before(t)
			}
			_, err := v.Verify(t.Context(), s.token(t))
			if s.valid && err != nil {
				t.Errorf("Verify: got %v, want the token accepted", err)
			}
			if !s.valid && !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify: got %v, want an error wrapping ErrInvalidToken", err)
			}
			if got := e.jwksFetchs.Load(); got != s.fetches {
				t.Errorf("JWKS fetched %d times so far, want %d", got, s.fetches)
			}
		})
	}
}

// TestVerifiedTokensAreCached counts the SDK's user lookups, which in
// emulator mode it makes once per verification it performs: a cache hit
// makes none.
func TestVerifiedTokensAreCached(t *testing.T) {
	e := startEmulator(t)
	admin := e.adminClient(t)
	alice := e.user(t, "alice@example.com")
	bob := e.user(t, "bob@example.com")
	aliceTok := e.token(t, alice, time.Now())
	bobTok := e.token(t, bob, time.Now())

	t.Run("repeats are served from the cache until its max age, then verified again", func(t *testing.T) {
		v, clock := e.newVerifier(t)
		// Each step runs in order on the same verifier.
		steps := []struct {
			name     string
			before   func(t *testing.T)
			token    string
			wantUID  string // "" = refused
			lookedUp bool   // whether the SDK verified it (and looked the user up)
		}{
			{"the first verification looks the user up", nil, bobTok, bob, true},
			{"the same token again is served from the cache", nil, bobTok, bob, false},
			{"another token is verified on its own", nil, aliceTok, alice, true},
			{"a user disabled after their token was verified is honoured from the cache, as production mode honours any valid token",
				func(t *testing.T) {
					if _, err := admin.UpdateUser(t.Context(), bob, (&auth.UserToUpdate{}).Disabled(true)); err != nil {
						t.Fatal(err)
					}
					clock.Advance(cacheMaxAge - time.Second)
				}, bobTok, bob, false},
			{"at the cache's max age the token is verified again, and refused", func(*testing.T) { clock.Advance(time.Second) },
				bobTok, "", true},
			{"a refusal is not cached", nil, bobTok, "", true},
		}
		for _, s := range steps {
			if s.before != nil {
				s.before(t)
			}
			before := e.lookups.Load()
			tok, err := v.Verify(t.Context(), s.token)
			switch {
			case s.wantUID == "" && !errors.Is(err, ErrInvalidToken):
				t.Errorf("%s: Verify = %v, %v; want a refusal", s.name, tok, err)
			case s.wantUID != "" && (err != nil || tok.UID != s.wantUID):
				t.Errorf("%s: Verify = %v, %v; want uid %s", s.name, tok, err, s.wantUID)
			}
			if got := e.lookups.Load() - before; got != map[bool]int64{true: 1}[s.lookedUp] {
				t.Errorf("%s: %d user lookups, want %d", s.name, got, map[bool]int64{true: 1}[s.lookedUp])
			}
		}
	})

	t.Run("an entry ends at the token's exp when that comes first", func(t *testing.T) {
		// The cache's clock two minutes before the token's exp; the SDK's,
		// the real one, well within its hour.
		exp := expOf(t, aliceTok)
		clock := clocktest.New(exp.Add(-2 * time.Minute))
		v, err := New(t.Context(), Config{ProjectID: project, EmulatorHost: e.host, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		before := e.lookups.Load()
		for _, step := range []struct {
			advance time.Duration
			lookups int64
		}{{0, 1}, {time.Minute, 1}, {time.Minute, 2}} {
			clock.Advance(step.advance)
			if _, err := v.Verify(t.Context(), aliceTok); err != nil {
				t.Fatalf("Verify at exp%+v: %v", clock.Now().Sub(exp), err)
			}
			if got := e.lookups.Load() - before; got != step.lookups {
				t.Errorf("at exp%+v: %d user lookups so far, want %d", clock.Now().Sub(exp), got, step.lookups)
			}
		}
	})

	t.Run("a negative CacheSize disables the cache", func(t *testing.T) {
		v, err := New(t.Context(), Config{ProjectID: project, EmulatorHost: e.host, CacheSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		before := e.lookups.Load()
		for range 3 {
			if _, err := v.Verify(t.Context(), aliceTok); err != nil {
				t.Fatal(err)
			}
		}
		if got := e.lookups.Load() - before; got != 3 {
			t.Errorf("3 verifications without a cache made %d user lookups, want 3", got)
		}
	})
}

func TestConcurrentVerificationsShareOneKeyFetch(t *testing.T) {
	e := startEmulator(t)
	v, _ := e.newVerifier(t)
	tok := e.token(t, e.user(t, "alice@example.com"), time.Now())

	const n = 16
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify: got %v, want the token accepted", err)
		}
	}
	if got := e.jwksFetchs.Load(); got != 1 {
		t.Errorf("%d concurrent first verifications fetched the JWKS %d times, want once", n, got)
	}
}

func TestUnreachableKeysAreAnErrorNotARefusal(t *testing.T) {
	e := startEmulator(t)
	tok := e.token(t, e.user(t, "alice@example.com"), time.Now())
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // a port nothing listens on any more

	keys := newKeySet(down.URL+jwksPath, &http.Client{Timeout: 5 * time.Second})
	err := keys.verifySignature(t.Context(), tok)
	if err == nil || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("verifySignature with the JWKS unreachable: got %v, want an error that is not ErrInvalidToken", err)
	}
	// Within the rate limit the failure is remembered, not retried.
	err = keys.verifySignature(t.Context(), tok)
	if err == nil || errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("second verifySignature: got %v, want the remembered unavailability", err)
	}
}

// BenchmarkVerify splits the cost of one emulator-mode verification: our
// RS256 check against the cached JWKS alone; the whole of a first Verify,
// which adds the SDK's claim checks and its user lookup RPC to the emulator
// (a lookup production mode does not make); and a repeat, from the
// verified-token cache.
func BenchmarkVerify(b *testing.B) {
	em, err := identity.New(identity.Config{ProjectID: project, StateDir: b.TempDir(), PasswordHashCost: 10})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(em.Handler())
	b.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	b.Setenv(EmulatorHostEnv, host)
	uid, err := em.EnsureUser(b.Context(), "alice@example.com", "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	tok, err := em.IDTokenFor(b.Context(), uid, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	verifier := func(cacheSize int, revocationCheck time.Duration) *Firebase {
		v, err := New(b.Context(), Config{ProjectID: project, EmulatorHost: host, CacheSize: cacheSize, RevocationCheck: revocationCheck})
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	// The check period is longer than the benchmark, as 30 s is longer than
	// the gap between one user's requests: the user is looked up once.
	uncached, cached, checked := verifier(-1, 0), verifier(0, 0), verifier(0, time.Hour)

	b.Run("signature against cached JWKS", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := uncached.keys.verifySignature(b.Context(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bm := range []struct {
		name string
		v    *Firebase
	}{
		{"Verify with the emulator user lookup", uncached},
		{"Verify again from the token cache", cached},
		{"Verify again from the token cache with the revocation check", checked},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bm.v.Verify(b.Context(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// staticToken is a credential for production mode that never leaves the
// process: the checks below refuse tokens before any Google API is called.
type staticToken struct{}

func (staticToken) Token(context.Context) (*gauth.Token, error) {
	return &gauth.Token{Value: "test-access-token", Type: "Bearer"}, nil
}

// TestProductionModeRefusesWrongTokensBeforeFetchingKeys runs the verifier
// outside emulator mode, with explicit credentials, as on GKE. Signature
// checks there need Google's keys, which a test cannot fetch, so these rows
// are the ones the SDK refuses from the token's content alone.
func TestProductionModeRefusesWrongTokensBeforeFetchingKeys(t *testing.T) {
	e := startEmulator(t) // only as a signer of realistic tokens
	alice := e.user(t, "alice@example.com")
	now := time.Now()
	t.Setenv(EmulatorHostEnv, "")
	v, err := New(t.Context(), Config{ProjectID: project,
		Credentials: gauth.NewCredentials(&gauth.CredentialsOptions{TokenProvider: staticToken{}})})
	if err != nil {
		t.Fatalf("New in production mode with explicit credentials: %v", err)
	}
	if v.keys != nil {
		t.Fatalf("production mode set up an emulator key cache; the SDK must check signatures itself")
	}
	tests := []struct {
		name  string
		token string
	}{
		{"a token for another project", e.signClaims(t, claimsFor(alice, "another-project", now))},
		{"an expired token", e.signClaims(t, claimsFor(alice, project, now.Add(-2*time.Hour)))},
		{"an unsigned alg none token", unsigned(t, claimsFor(alice, project, now), "kid")},
		{"a token without a kid", unsigned(t, claimsFor(alice, project, now), "")},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if tok, err := v.Verify(t.Context(), tt.token); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify: got (%v, %v), want an error wrapping ErrInvalidToken", tok, err)
			}
		})
	}
}
