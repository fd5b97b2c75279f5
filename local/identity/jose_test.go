package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
)

// The emulator signs with lestrrat-go/jwx; these tests verify with go-jose,
// an independent implementation, against the JWKS as served over HTTP, the
// way a gateway does.

func fetchJWKS(t *testing.T, srv *httptest.Server) jose.JSONWebKeySet {
	t.Helper()
	resp, err := clientOf(srv).Get(srv.URL + JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET JWKS = %d %s; want 200 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("JWKS is not a JSON Web Key Set: %v", err)
	}
	return set
}

// idClaims are the claims an Identity Platform ID token carries.
type idClaims struct {
	josejwt.Claims
	AuthTime      int64  `json:"auth_time"`
	UserID        string `json:"user_id"`
	Email         string `json:"email"`
	EmailVerified *bool  `json:"email_verified"`
	Firebase      struct {
		Identities     map[string][]string `json:"identities"`
		SignInProvider string              `json:"sign_in_provider"`
	} `json:"firebase"`
}

// verify checks token's RS256 signature against set by kid, then iss, aud
// and time (at now, without leeway), as a gateway does.
func verify(set jose.JSONWebKeySet, token string, now time.Time) (idClaims, error) {
	var c idClaims
	tok, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return c, fmt.Errorf("parsing: %w", err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		return c, errors.New("no kid in the header")
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		return c, fmt.Errorf("kid %s: %d keys in the JWKS, want 1", tok.Headers[0].KeyID, len(keys))
	}
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		return c, fmt.Errorf("signature: %w", err)
	}
	err = c.ValidateWithLeeway(josejwt.Expected{
		Issuer:      "https://securetoken.google.com/" + testProject,
		AnyAudience: josejwt.Audience{testProject},
		Time:        now,
	}, 0)
	if err != nil {
		return c, fmt.Errorf("claims: %w", err)
	}
	return c, nil
}

func TestEveryIssuedIDTokenVerifiesWithAnIndependentLibrary(t *testing.T) {
	clock := clocktest.New(time.Now().Truncate(time.Second))
	e, srv := newTestEmulator(t, func(c *Config) { c.Now = clock.Now })
	set := fetchJWKS(t, srv)

	up := signUp(t, srv, "ada@example.com", "correct horse")
	uid := up["localId"].(string)
	clock.Advance(time.Minute)
	_, in := call(t, srv, "POST", signInPath, map[string]any{"email": "ada@example.com", "password": "correct horse", "returnSecureToken": true})
	clock.Advance(time.Minute)
	_, ref := refreshForm(t, srv, in["refreshToken"].(string))
	_, upd := call(t, srv, "POST", updatePath, map[string]any{"idToken": in["idToken"], "password": "new password", "returnSecureToken": true})
	minted, err := e.IDTokenFor(t.Context(), uid, clock.Now())
	if err != nil {
		t.Fatal(err)
	}

	tokens := []struct {
		name     string
		token    any
		authTime time.Time
	}{
		{"the token from accounts:signUp", up["idToken"], clock.Now().Add(-2 * time.Minute)},
		{"the token from accounts:signInWithPassword", in["idToken"], clock.Now().Add(-time.Minute)},
		{"the token from a refresh keeps the sign-in's auth_time", ref["id_token"], clock.Now().Add(-time.Minute)},
		{"the token from a password change", upd["idToken"], clock.Now()},
		{"the token from IDTokenFor", minted, clock.Now()},
	}
	for _, tt := range tokens {
		t.Run(tt.name, func(t *testing.T) {
			tok, ok := tt.token.(string)
			if !ok || tok == "" {
				t.Fatalf("no token issued (%v)", tt.token)
			}
			c, err := verify(set, tok, clock.Now())
			if err != nil {
				t.Fatalf("verify: %v; want a valid token", err)
			}
			if c.Subject != uid || c.UserID != uid {
				t.Errorf("sub %q, user_id %q; want both %q", c.Subject, c.UserID, uid)
			}
			if c.AuthTime != tt.authTime.Unix() {
				t.Errorf("auth_time %d; want %d", c.AuthTime, tt.authTime.Unix())
			}
			if c.IssuedAt == nil || c.Expiry == nil || c.Expiry.Time().Sub(c.IssuedAt.Time()) != time.Hour {
				t.Errorf("iat %v, exp %v; want exp = iat + 1h", c.IssuedAt, c.Expiry)
			}
			if c.Email != "ada@example.com" || c.EmailVerified == nil || *c.EmailVerified {
				t.Errorf("email %q, email_verified %v; want ada@example.com, false", c.Email, c.EmailVerified)
			}
			if c.Firebase.SignInProvider != "password" || len(c.Firebase.Identities["email"]) != 1 || c.Firebase.Identities["email"][0] != "ada@example.com" {
				t.Errorf("firebase %+v; want sign_in_provider password and identities.email [ada@example.com]", c.Firebase)
			}
		})
	}

	bad := []struct {
		name  string
		token func(t *testing.T) string
		now   time.Time
	}{
		{"a token whose payload was changed fails", func(t *testing.T) string {
			p := strings.Split(minted, ".")
			body, _ := base64.RawURLEncoding.DecodeString(p[1])
			body = []byte(strings.Replace(string(body), uid, "someone-else", 2))
			return p[0] + "." + base64.RawURLEncoding.EncodeToString(body) + "." + p[2]
		}, clock.Now()},
		{"a token whose signature was changed fails", func(t *testing.T) string {
			p := strings.Split(minted, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(p[2])
			sig[len(sig)/2] ^= 1
			return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}, clock.Now()},
		{"a token past its expiry fails", func(t *testing.T) string { return minted }, clock.Now().Add(time.Hour + time.Second)},
		{"a token issued two hours ago by IDTokenFor has expired", func(t *testing.T) string {
			old, err := e.IDTokenFor(t.Context(), uid, clock.Now().Add(-2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return old
		}, clock.Now()},
		{"a token signed by another key under the same kid fails", func(t *testing.T) string {
			return signWithForeignKey(t, minted)
		}, clock.Now()},
		{"a well-signed token for another audience fails", func(t *testing.T) string {
			return signed(t, e, map[string]any{"aud": "other-project"}, clock.Now())
		}, clock.Now()},
		{"a well-signed token from another issuer fails", func(t *testing.T) string {
			return signed(t, e, map[string]any{"iss": "https://securetoken.google.com/other-project"}, clock.Now())
		}, clock.Now()},
		{"an unsigned token (alg none) fails", func(t *testing.T) string {
			p := strings.Split(minted, ".")
			return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + p[1] + "."
		}, clock.Now()},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := verify(set, tt.token(t), tt.now); err == nil {
				t.Fatalf("verify succeeded with claims %+v; want an error", c)
			}
		})
	}

	t.Run("the emulator itself refuses the same bad tokens", func(t *testing.T) {
		for _, tt := range bad[:2] {
			code, out := call(t, srv, "POST", lookupPath, map[string]any{"idToken": tt.token(t)})
			if code != 400 || errMessage(out) != "INVALID_ID_TOKEN" {
				t.Errorf("lookup with %s = %d %q; want 400 INVALID_ID_TOKEN", tt.name, code, errMessage(out))
			}
		}
		old, _ := e.IDTokenFor(t.Context(), uid, clock.Now().Add(-2*time.Hour))
		if code, out := call(t, srv, "POST", lookupPath, map[string]any{"idToken": old}); code != 400 || errMessage(out) != "TOKEN_EXPIRED" {
			t.Errorf("lookup with an expired token = %d %q; want 400 TOKEN_EXPIRED", code, errMessage(out))
		}
	})
}

// signed signs a valid-looking ID token with the emulator's key, overriding some claims.
func signed(t *testing.T, e *Emulator, override map[string]any, now time.Time) string {
	t.Helper()
	claims := map[string]any{
		"iss": e.Issuer(), "aud": e.ProjectID(), "sub": "u1", "user_id": "u1",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "auth_time": now.Unix(),
	}
	for k, v := range override {
		claims[k] = v
	}
	tok, err := e.SignClaims(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signWithForeignKey re-signs token's header and payload with a new RSA key,
// keeping the emulator's kid.
func signWithForeignKey(t *testing.T, token string) string {
	t.Helper()
	parsed, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), parsed.Headers[0].KeyID))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fetchX509 returns the x509 PEM map as a JWKS, the way the Firebase Admin
// SDKs read it outside emulator mode (auth/token_verifier.go: kid → PEM).
func fetchX509(t *testing.T, srv *httptest.Server) jose.JSONWebKeySet {
	t.Helper()
	resp, err := clientOf(srv).Get(srv.URL + X509Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var certs map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&certs); err != nil {
		t.Fatalf("x509 map is not a JSON object: %v", err)
	}
	var set jose.JSONWebKeySet
	for kid, p := range certs {
		blk, _ := pem.Decode([]byte(p))
		if blk == nil {
			t.Fatalf("kid %s: not a PEM certificate", kid)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("kid %s: %v", kid, err)
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{KeyID: kid, Key: cert.PublicKey, Algorithm: "RS256", Use: "sig"})
	}
	return set
}

func kidsOf(set jose.JSONWebKeySet) []string {
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

func sortedKIDs(kids ...string) []string {
	slices.Sort(kids)
	return kids
}

func TestRotationKeepsTheOldKeyForItsGrace(t *testing.T) {
	clock := clocktest.New(time.Now().Truncate(time.Second))
	e, srv := newTestEmulator(t, func(c *Config) { c.Now = clock.Now; c.KeyGrace = 90 * time.Minute })
	up := signUp(t, srv, "ada@example.com", "correct horse")
	before := up["idToken"].(string)
	oldKID, nextKID := e.keys.currentKID(), e.keys.nextKID()
	if oldKID == nextKID {
		t.Fatal("the next key has the current key's kid")
	}
	// What verifiers cached before the rotation: a gateway's JWKS, an Admin
	// SDK's x509 map.
	cachedJWKS, cachedX509 := fetchJWKS(t, srv), fetchX509(t, srv)
	if want := sortedKIDs(oldKID, nextKID); !slices.Equal(kidsOf(cachedJWKS), want) || !slices.Equal(kidsOf(cachedX509), want) {
		t.Fatalf("before any rotation the JWKS has %v and the x509 map %v; want the current and the next key %v",
			kidsOf(cachedJWKS), kidsOf(cachedX509), want)
	}

	if err := e.RotateKey(); err != nil {
		t.Fatal(err)
	}
	after := signIn(t, srv, "ada@example.com", "correct horse")
	if got := e.keys.currentKID(); got != nextKID {
		t.Fatalf("after the rotation the emulator signs with %s; want the published next key %s", got, nextKID)
	}
	newNextKID := e.keys.nextKID()
	if newNextKID == oldKID || newNextKID == nextKID {
		t.Fatalf("the rotation published %s as the next key; want a new one", newNextKID)
	}

	t.Run("a verifier that cached the keys before the rotation accepts new tokens without fetching", func(t *testing.T) {
		for name, set := range map[string]jose.JSONWebKeySet{"JWKS": cachedJWKS, "x509 map": cachedX509} {
			for tname, tok := range map[string]string{"old": before, "new": after} {
				if _, err := verify(set, tok, clock.Now()); err != nil {
					t.Errorf("%s token against the %s cached before the rotation: %v; want valid", tname, name, err)
				}
			}
		}
	})
	t.Run("during the grace the JWKS has the old, the current and the next key", func(t *testing.T) {
		set := fetchJWKS(t, srv)
		if want := sortedKIDs(oldKID, nextKID, newNextKID); !slices.Equal(kidsOf(set), want) {
			t.Fatalf("JWKS has %v; want previous, current and next %v", kidsOf(set), want)
		}
		if got, want := kidsOf(fetchX509(t, srv)), kidsOf(set); !slices.Equal(got, want) {
			t.Fatalf("x509 map has %v; want the JWKS's keys %v", got, want)
		}
		for name, tok := range map[string]string{"old": before, "new": after} {
			if _, err := verify(set, tok, clock.Now()); err != nil {
				t.Errorf("%s token: %v; want valid", name, err)
			}
		}
	})
	t.Run("a restart keeps all three keys and the same current and next key", func(t *testing.T) {
		e2, err := New(Config{ProjectID: testProject, StateDir: filepath.Dir(e.keys.path), Now: clock.Now, KeyGrace: 90 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(e2.keys.published()); n != 3 {
			t.Fatalf("%d keys published after restart; want 3", n)
		}
		if e2.keys.currentKID() != nextKID || e2.keys.nextKID() != newNextKID {
			t.Fatalf("after restart current %s next %s; want %s and %s", e2.keys.currentKID(), e2.keys.nextKID(), nextKID, newNextKID)
		}
	})
	t.Run("after the grace the old key is gone and its tokens fail", func(t *testing.T) {
		clock.Advance(90 * time.Minute)
		set := fetchJWKS(t, srv)
		if want := sortedKIDs(nextKID, newNextKID); !slices.Equal(kidsOf(set), want) {
			t.Fatalf("JWKS keys %v; want only the current and the next key %v", kidsOf(set), want)
		}
		fresh, err := e.IDTokenFor(t.Context(), up["localId"].(string), clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verify(set, fresh, clock.Now()); err != nil {
			t.Fatalf("a fresh token: %v; want valid", err)
		}
		// Checked as of its issue time, so that only the missing key can fail it.
		if _, err := verify(set, before, clock.Now().Add(-90*time.Minute)); err == nil {
			t.Fatal("a token signed by the retired key verified; want it refused once the key is gone")
		}
	})
}

func TestTwoRotationsInARowSignWithAKeyOnlyTheFirstPublished(t *testing.T) {
	e, srv := newTestEmulator(t)
	up := signUp(t, srv, "ada@example.com", "correct horse")
	cached := fetchJWKS(t, srv)
	for range 2 {
		if err := e.RotateKey(); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := e.IDTokenFor(t.Context(), up["localId"].(string), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify(cached, tok, time.Now()); err == nil {
		t.Fatal("a JWKS cached before two rotations verified a token of the second; want an unknown kid")
	}
	if _, err := verify(fetchJWKS(t, srv), tok, time.Now()); err != nil {
		t.Fatalf("against a fresh JWKS: %v; want valid", err)
	}
}

func TestAStateDirWithoutANextKeyKeepsSigningWithItsKey(t *testing.T) {
	// signing-keys.json as the emulator wrote it before it published a next
	// key: one current key, no "next" entry.
	dir := t.TempDir()
	e1, _ := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
	kid := e1.keys.currentKID()
	editKeysOnDisk(t, dir, func(disk []keyOnDisk) []keyOnDisk {
		disk = slices.DeleteFunc(disk, func(k keyOnDisk) bool { return k.Next })
		if len(disk) != 1 || disk[0].KID != kid {
			t.Fatalf("keys on disk %v; want the current key %s and a next one", disk, kid)
		}
		return disk
	})

	e2, srv := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
	if got := e2.keys.currentKID(); got != kid {
		t.Fatalf("after the upgrade the emulator signs with %s; want the persisted %s, so that no verifier meets an unknown kid", got, kid)
	}
	if want := sortedKIDs(kid, e2.keys.nextKID()); e2.keys.nextKID() == kid || !slices.Equal(kidsOf(fetchJWKS(t, srv)), want) {
		t.Fatalf("JWKS has %v; want the kept key and a new next key %v", kidsOf(fetchJWKS(t, srv)), want)
	}
}

func TestX509MapAndDiscoveryMatchTheJWKS(t *testing.T) {
	_, srv := newTestEmulator(t)
	set := fetchJWKS(t, srv)

	resp, err := clientOf(srv).Get(srv.URL + X509Path)
	if err != nil {
		t.Fatal(err)
	}
	var certs map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&certs); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(certs) != len(set.Keys) {
		t.Fatalf("x509 map has %d certificates, JWKS %d keys; want the same keys", len(certs), len(set.Keys))
	}
	for _, k := range set.Keys {
		blk, _ := pem.Decode([]byte(certs[k.KeyID]))
		if blk == nil {
			t.Fatalf("no PEM certificate for kid %s", k.KeyID)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !cert.PublicKey.(*rsa.PublicKey).Equal(k.Key) {
			t.Errorf("kid %s: certificate key differs from the JWKS key", k.KeyID)
		}
		if k.Algorithm != "RS256" || k.Use != "sig" {
			t.Errorf("kid %s: alg %q use %q; want RS256 sig", k.KeyID, k.Algorithm, k.Use)
		}
		if _, private := k.Key.(*rsa.PrivateKey); private {
			t.Fatalf("the JWKS publishes a private key")
		}
	}

	_, disc := call(t, srv, http.MethodGet, "/securetoken.google.com/"+testProject+"/.well-known/openid-configuration", nil)
	if disc["issuer"] != "https://securetoken.google.com/"+testProject || disc["jwks_uri"] != srv.URL+JWKSPath {
		t.Fatalf("discovery = %v; want our issuer and jwks_uri %s", disc, srv.URL+JWKSPath)
	}
}

func TestARingWithoutACurrentKeyGetsOneAndKeepsTheRetiredInTheirGrace(t *testing.T) {
	// A hand-edited signing-keys.json whose every key is retired: the
	// emulator must not sign with a retired key, nor drop one a token may
	// still carry.
	dir := t.TempDir()
	e1, _ := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
	kids := []string{e1.keys.currentKID(), e1.keys.nextKID()}
	editKeysOnDisk(t, dir, func(disk []keyOnDisk) []keyOnDisk {
		for i := range disk {
			disk[i].Next, disk[i].Retired = false, time.Now().Add(-time.Minute)
		}
		return disk
	})

	e2, srv := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
	cur, next := e2.keys.currentKID(), e2.keys.nextKID()
	if slices.Contains(kids, cur) || slices.Contains(kids, next) || cur == next {
		t.Fatalf("current %s, next %s; want two new keys, not the retired %v", cur, next, kids)
	}
	if got, want := kidsOf(fetchJWKS(t, srv)), sortedKIDs(append(kids, cur, next)...); !slices.Equal(got, want) {
		t.Fatalf("JWKS has %v; want the retired keys in their grace and the new ones %v", got, want)
	}
}

// editKeysOnDisk rewrites the signing keys a stopped emulator left in dir
// with what edit makes of them, as a hand edit or an older version would.
func editKeysOnDisk(t *testing.T, dir string, edit func([]keyOnDisk) []keyOnDisk) {
	t.Helper()
	path := filepath.Join(dir, keysFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var disk []keyOnDisk
	if err := json.Unmarshal(raw, &disk); err != nil {
		t.Fatal(err)
	}
	raw, err = json.Marshal(edit(disk))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
