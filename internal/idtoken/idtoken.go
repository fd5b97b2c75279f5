// Package idtoken is the one place where this project verifies Identity
// Platform (Firebase Auth) ID tokens: the frontend when it accepts a session,
// the backend on every API call, apikeys on every management call. All three
// depend on the Verifier interface; the Firebase type implements it with the
// Firebase Admin Go SDK.
//
// In production the SDK checks everything itself, the RS256 signature against
// Google's published keys included. Locally FIREBASE_AUTH_EMULATOR_HOST puts
// the SDK in emulator mode, in which it skips the signature check altogether
// (auth/token_verifier.go: "In emulator mode, skip signature verification").
// Our emulator (local/identity) signs its tokens and publishes a JWKS, so in
// emulator mode Verify checks the signature against that JWKS first: a forged
// token is refused on one machine exactly as it is in production.
//
// Revocation: Verify calls VerifyIDToken, not VerifyIDTokenAndCheckRevoked,
// whose check is an Identity Toolkit RPC (accounts:lookup) on every call: on
// the backend's hot path a network round trip per API request, Identity
// Platform quota per request, and the API's availability tied to Identity
// Platform's. Instead Config.RevocationCheck makes the same decision (user
// disabled, deleted, or tokens revoked, as sign-out does) from a lookup of
// the user made at most once per that period (revocation.go): a revoked user
// is refused no later than RevocationCheck after the revocation, and a
// user's requests within it cost a map lookup. A lookup that fails is an
// error (callers answer 5xx), never a pass. The Istio gateway checks no
// revocation at all (a token is good there until its exp), so the backend's
// check is what bounds a revoked user's access. Without RevocationCheck, in
// emulator mode the SDK still looks the user up on every verification (that
// is how it is written), so a disabled or deleted user's token that was not
// yet verified is refused locally; that RPC stays on loopback.
//
// Verified tokens are cached (internal/tokencache), keyed by the exact token:
// the frontend sends the same ID token on every API call of a session, and
// the browser the same session cookie on every page, so a repeat costs a map
// lookup instead of an RS256 verification (and, in emulator mode, the lookup
// RPC). An entry lives until the token's exp, and never longer than
// cacheMaxAge, so a key Google withdraws, or locally a user disabled, stops
// being honoured within that long, as the JWKS itself is only trusted that
// long. Refusals are never cached.
package idtoken

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	gauth "cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"google.golang.org/api/option"

	"github.com/acme/cloudrun-istio-gke/internal/tokencache"
)

// Verifier is what the frontend, the backend and apikeys depend on; *Firebase
// implements it.
type Verifier interface {
	Verify(ctx context.Context, idToken string) (*auth.Token, error)
}

// ErrInvalidToken is wrapped by every refusal: the token is malformed, forged,
// expired, for another project, or its user is disabled or gone. Callers
// answer 401 for it. Any other error from Verify means the token could not be
// checked (keys or the user lookup unreachable): callers answer 5xx.
var ErrInvalidToken = errors.New("invalid ID token")

// EmulatorHostEnv is the variable the Firebase Admin SDK reads, and reads
// only, to enter emulator mode: each component takes the emulator's address
// as explicit configuration (with this variable as its fallback), and New
// refuses a value the process environment contradicts. Only a process's
// owner (a main, or a test with t.Setenv) sets it.
const EmulatorHostEnv = "FIREBASE_AUTH_EMULATOR_HOST"

// jwksPath is where Google, and therefore our emulator, publishes the keys
// that sign ID tokens, as a JWKS.
const jwksPath = "/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"

// DefaultCacheSize bounds the verified-token cache: about 2 MB of tokens and
// claims, the sessions active within cacheMaxAge on one instance of a busy
// service. A larger population only costs verifications again, never
// correctness.
const DefaultCacheSize = 1000

// cacheMaxAge is the longest a verified token is taken from the cache
// without being verified again: the age at which the emulator's JWKS is
// fetched again too.
const cacheMaxAge = keysMaxAge

// maxTokenBytes bounds what we parse. Identity Platform ID tokens are about
// 1 KB; custom claims are limited to 1,000 bytes.
const maxTokenBytes = 16 << 10

// Config configures a Firebase verifier.
type Config struct {
	// ProjectID is the Google Cloud project the tokens are issued for
	// ("demo-acme" locally): issuer https://securetoken.google.com/<ProjectID>,
	// audience <ProjectID>. Required.
	ProjectID string
	// EmulatorHost is FIREBASE_AUTH_EMULATOR_HOST (host:port), empty in
	// production. The SDK reads only the process environment, so New refuses
	// a value that differs from os.Getenv's: a verifier that believed it was
	// in production while the SDK skipped signatures would accept forgeries.
	EmulatorHost string
	// Credentials authenticate the SDK's Google API calls in production.
	// Nil means Application Default Credentials, detected explicitly. Unused
	// in emulator mode.
	Credentials *gauth.Credentials
	// HTTPClient fetches the emulator's JWKS. Nil means a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// CacheSize bounds the verified-token cache (tokens). Zero means
	// DefaultCacheSize; a negative value disables the cache.
	CacheSize int
	// Now is the clock of the token cache, the revocation check and the
	// emulator's JWKS refresh. Nil means time.Now. The SDK's own checks
	// (exp, iat) always use the real clock.
	Now func() time.Time
	// RevocationCheck, when positive, refuses the tokens of a user who was
	// disabled, deleted or had their tokens revoked, at most this long after
	// it happened: each user is looked up at most once per RevocationCheck.
	// Zero checks nothing beyond the token itself. DefaultRevocationCheck is
	// the backend's choice.
	RevocationCheck time.Duration
}

// DefaultRevocationCheck bounds how long a revoked user keeps access to the
// API: 30 s, so that sign-out is effective within half a minute while an
// active user costs the backend one Identity Platform lookup per 30 s, not
// one per request.
const DefaultRevocationCheck = 30 * time.Second

func (c Config) validate() error {
	var errs []error
	if c.ProjectID == "" {
		errs = append(errs, errors.New("ProjectID is required"))
	}
	if env := os.Getenv(EmulatorHostEnv); c.EmulatorHost != env {
		errs = append(errs, fmt.Errorf("EmulatorHost is %q but %s is %q: the Admin SDK reads only the "+
			"process environment and would verify tokens in the other mode; set both or neither",
			c.EmulatorHost, EmulatorHostEnv, env))
	}
	if c.RevocationCheck < 0 {
		errs = append(errs, fmt.Errorf("RevocationCheck %v must not be negative", c.RevocationCheck))
	}
	if c.EmulatorHost != "" {
		if _, _, err := net.SplitHostPort(c.EmulatorHost); err != nil {
			errs = append(errs, fmt.Errorf("EmulatorHost %q is not host:port: %w", c.EmulatorHost, err))
		}
	}
	return errors.Join(errs...)
}

// Firebase verifies ID tokens with the Firebase Admin Go SDK.
type Firebase struct {
	client *auth.Client
	// keys is the emulator's JWKS; nil in production, where the SDK checks
	// signatures itself.
	keys  *keySet
	cache *tokencache.Cache[*auth.Token] // nil when disabled
	now   func() time.Time
	// revoked is nil unless Config.RevocationCheck is set.
	revoked *revocations
}

// New returns a verifier for cfg. It performs no network I/O in emulator
// mode; in production, detecting default credentials may query the metadata
// server.
func New(ctx context.Context, cfg Config) (*Firebase, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("idtoken: invalid config: %w", err)
	}
	var opts []option.ClientOption
	if cfg.EmulatorHost == "" {
		creds := cfg.Credentials
		if creds == nil {
			var err error
			creds, err = credentials.DetectDefault(&credentials.DetectOptions{
				Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"},
			})
			if err != nil {
				return nil, fmt.Errorf("idtoken: detecting application default credentials: %w", err)
			}
		}
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("idtoken: creating Firebase app: %w", err)
	}
	client, err := app.Auth(ctx)
	if err != nil {
		return nil, fmt.Errorf("idtoken: creating Firebase Auth client: %w", err)
	}
	f := &Firebase{client: client, now: cfg.Now}
	if f.now == nil {
		f.now = time.Now
	}
	switch {
	case cfg.CacheSize == 0:
		f.cache = tokencache.New[*auth.Token](DefaultCacheSize)
	case cfg.CacheSize > 0:
		f.cache = tokencache.New[*auth.Token](cfg.CacheSize)
	}
	if cfg.RevocationCheck > 0 {
		f.revoked = newRevocations(client, cfg.RevocationCheck, DefaultCacheSize)
	}
	if cfg.EmulatorHost != "" {
		hc := cfg.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: 10 * time.Second}
		}
		f.keys = newKeySet("http://"+cfg.EmulatorHost+jwksPath, hc)
		f.keys.now = f.now
	}
	return f, nil
}

// Verify returns the token's claims if idToken is a valid ID token for the
// configured project. Refusals wrap ErrInvalidToken. The Token may be shared
// with other calls for the same token: callers must not modify it.
func (f *Firebase) Verify(ctx context.Context, idToken string) (*auth.Token, error) {
	if idToken == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if len(idToken) > maxTokenBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidToken, len(idToken), maxTokenBytes)
	}
	now := f.now()
	if tok, ok := f.cache.Get(idToken, now); ok {
		return f.checkRevoked(ctx, tok, now)
	}
	if f.keys != nil {
		// Before the SDK: it would look the user up over the network first,
		// and a forged token should cost us no more than a local check.
		if err := f.keys.verifySignature(ctx, idToken); err != nil {
			return nil, err
		}
	}
	tok, err := f.client.VerifyIDToken(ctx, idToken)
	if err != nil {
		if refused(err) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
		}
		return nil, fmt.Errorf("verifying ID token: %w", err)
	}
	until := now.Add(cacheMaxAge)
	if exp := time.Unix(tok.Expires, 0); exp.Before(until) {
		until = exp
	}
	f.cache.Put(idToken, tok, until)
	return f.checkRevoked(ctx, tok, now)
}

// RevokeRefreshTokens ends the user's sessions at Identity Platform (the
// frontend's sign-out): their refresh tokens stop working, so no new ID
// token is minted for them. It needs permission to update users.
func (f *Firebase) RevokeRefreshTokens(ctx context.Context, uid string) error {
	return f.client.RevokeRefreshTokens(ctx, uid)
}

// checkRevoked returns tok unless the revocation check (when configured)
// refuses it.
func (f *Firebase) checkRevoked(ctx context.Context, tok *auth.Token, now time.Time) (*auth.Token, error) {
	if f.revoked == nil {
		return tok, nil
	}
	if err := f.revoked.check(ctx, tok, now); err != nil {
		return nil, err
	}
	return tok, nil
}

// refused tells a verdict on the token from a failure to reach one.
func refused(err error) bool {
	return auth.IsIDTokenInvalid(err) || // malformed, expired, revoked, disabled
		auth.IsUserNotFound(err) // the emulator's user lookup: the user is gone
}
