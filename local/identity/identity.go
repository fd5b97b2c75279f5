// Package identity is a local stand-in for Google Cloud Identity Platform
// (Firebase Auth): email/password, email-link and custom-token sign-in, and
// the Admin SDK's user management (import, bulk delete, session cookies,
// email action links, project config). It speaks the Identity Toolkit and
// Secure Token REST APIs exactly as the unmodified Firebase JS SDK
// (connectAuthEmulator) and the Firebase Admin Go SDK (FIREBASE_AUTH_EMULATOR_HOST)
// call them, and unlike the official Firebase emulator it signs ID tokens with
// RS256 and publishes the keys (JWKS, x509 PEM map, OIDC discovery), so that a
// gateway's signature checks are as real locally as they are on Google Cloud.
//
// Tokens look like Identity Platform's: issuer
// https://securetoken.google.com/<project>, audience <project>, sub = user_id =
// localId, one hour of life. The signing keys persist in Config.StateDir. The
// JWKS publishes the next key beside the current one, a rotation ahead of its
// first signature, so that a verifier holding a cached JWKS accepts new
// tokens at once after a rotation; the previous key stays published for
// Config.KeyGrace, so that tokens it signed keep verifying until they expire.
//
// Passwords are stored only as scrypt hashes (golang.org/x/crypto/scrypt,
// N = 2^PasswordHashCost, r = 8, p = 1, 16-byte random salt, 32-byte key; the
// default cost 12 means 4 MiB and about 10 ms of one core per hash), tuned so
// sign-in sustains over 100 requests/s on 2 cores. Each stored hash records its
// own parameters, so changing the cost never locks existing users out.
//
// Accounts persist in StateDir/accounts.json, written atomically (temp file,
// fsync, rename) after every change, so a restart keeps users. Refresh tokens
// are 256-bit random strings kept only in memory as SHA-256 digests: they are
// opaque and unguessable, disabling, deleting or revoking a user kills them,
// and a restart of the emulator signs everyone out (their next refresh fails
// with INVALID_REFRESH_TOKEN and the SDK asks them to sign in again).
//
// Email action links (verification, email change, password reset) are not
// mailed: their single-use codes stay in memory, are listed as the Firebase
// emulator lists them (GET /emulator/v1/projects/{p}/oobCodes) and are handed
// to Config.OnOobCode, which devstack prints.
//
// It answers only requests that name a loopback (or configured) host, from
// no browser origin but the configured ones, and never takes the admin
// credential from a browser.
//
// Passwords, tokens and keys are never logged.
package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Paths the emulator serves besides the Identity Toolkit API. They are Google's
// own paths on its own host, so a client only swaps the host.
const (
	JWKSPath = "/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
	X509Path = "/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
)

// Token lifetimes as Identity Platform has them.
const (
	// IDTokenLifetime is the life of every ID token, as on Google Cloud.
	IDTokenLifetime = time.Hour
	// DefaultKeyGrace keeps a rotated-out key published for two token
	// lifetimes: every token it signed has expired by then, even for a
	// verifier that cached the JWKS for its whole max-age just before.
	DefaultKeyGrace = 2 * IDTokenLifetime
	// DefaultPasswordHashCost is log2 of scrypt's N; see the package comment.
	DefaultPasswordHashCost = 12
	minPasswordHashCost     = 10
	maxPasswordHashCost     = 20
)

// Config configures an Emulator. ProjectID and StateDir are required.
type Config struct {
	ProjectID string // e.g. "demo-acme": the token audience and part of the issuer
	StateDir  string // accounts and signing keys persist here
	Logger    *slog.Logger
	Now       func() time.Time // nil means time.Now; lets tests move the clock
	KeyGrace  time.Duration    // how long a rotated-out key stays in the JWKS; 0 means DefaultKeyGrace
	// PasswordHashCost is log2 of scrypt's N for new password hashes, between
	// 10 and 20; 0 means DefaultPasswordHashCost.
	PasswordHashCost int
	// RevealUnknownEmails makes sign-in answer EMAIL_NOT_FOUND and
	// INVALID_PASSWORD, as projects without email enumeration protection do.
	// By default both answer INVALID_LOGIN_CREDENTIALS, like a project created
	// since September 2023, so a caller cannot probe which emails have accounts.
	RevealUnknownEmails bool
	// ActionURL is where email action links point (verification, password
	// reset, sign-in links), like a project's custom email action handler;
	// the link adds mode, oobCode, apiKey, continueUrl and lang. Empty means
	// the emulator's own page at /emulator/action, which applies
	// verification links.
	ActionURL string
	// BaseURL is where clients reach the emulator, e.g.
	// "http://127.0.0.1:9099": the discovery document's jwks_uri and the
	// default action links point there, never at a Host a request names.
	// Empty means the discovery document is not served.
	BaseURL string
	// AllowedOrigins are the browser origins (scheme://host:port) that may
	// call the emulator, the frontend's; a request carrying any other Origin
	// is refused, so a page on another site cannot drive it.
	AllowedOrigins []string
	// AllowedHosts are host names, besides loopback ones, that requests may
	// name in Host; "*" admits any. Loopback only by default, so that a DNS
	// rebinding page cannot reach the emulator under its own name.
	AllowedHosts []string
	// MaxAccounts bounds how many accounts sign-up and the Admin API may
	// create; 0 means DefaultMaxAccounts. Saved accounts beyond it still load.
	MaxAccounts int
	// AuthorizedDomains are hosts, besides localhost, loopback addresses and
	// the project's firebaseapp.com and web.app, that email action links may
	// continue to (continueUrl).
	AuthorizedDomains []string
	// OnOobCode, if set, is called with every out-of-band code the emulator
	// would have emailed, so that devstack can print the link. It must not block.
	OnOobCode func(OobCode)
}

func (c *Config) validate() error {
	var errs []error
	if c.ProjectID == "" {
		errs = append(errs, errors.New("identity: Config.ProjectID is required"))
	} else if strings.ContainsAny(c.ProjectID, "/?#% ") {
		errs = append(errs, fmt.Errorf("identity: Config.ProjectID %q is not a project id", c.ProjectID))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("identity: Config.StateDir is required"))
	}
	if c.MaxAccounts < 0 {
		errs = append(errs, fmt.Errorf("identity: Config.MaxAccounts %d is negative", c.MaxAccounts))
	}
	if c.KeyGrace < 0 {
		errs = append(errs, fmt.Errorf("identity: Config.KeyGrace %v is negative", c.KeyGrace))
	}
	if c.ActionURL != "" {
		if u, err := url.Parse(c.ActionURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("identity: Config.ActionURL %q is not an http(s) URL", c.ActionURL))
		}
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("identity: Config.BaseURL %q is not an http(s) origin", c.BaseURL))
		}
	}
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			errs = append(errs, fmt.Errorf("identity: Config.AllowedOrigins: %q is not an origin (scheme://host:port)", o))
		}
	}
	if c.PasswordHashCost != 0 && (c.PasswordHashCost < minPasswordHashCost || c.PasswordHashCost > maxPasswordHashCost) {
		errs = append(errs, fmt.Errorf("identity: Config.PasswordHashCost %d is outside %d..%d",
			c.PasswordHashCost, minPasswordHashCost, maxPasswordHashCost))
	}
	return errors.Join(errs...)
}

// Emulator is the Identity Platform stand-in. It is safe for concurrent use.
type Emulator struct {
	project  string
	issuer   string
	log      *slog.Logger
	now      func() time.Time
	hasher   *passwordHasher
	reveal   bool
	accounts *accountStore
	keys     *keyRing
	sessions *sessionStore

	notice []string // see Notices

	actionURL string
	baseURL   string
	origins   map[string]bool
	hosts     map[string]bool
	domains   map[string]bool
	onOob     func(OobCode)
	oobs      *oobStore
	throttle  *throttle
	config    projectConfig

	decoyOnce sync.Once
	decoy     string // see decoyHash
}

// New loads the emulator's state from cfg.StateDir, creating the directory,
// a first signing key and an empty account list when they are missing.
func New(cfg Config) (*Emulator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeyGrace == 0 {
		cfg.KeyGrace = DefaultKeyGrace
	}
	if cfg.PasswordHashCost == 0 {
		cfg.PasswordHashCost = DefaultPasswordHashCost
	}
	if cfg.MaxAccounts == 0 {
		cfg.MaxAccounts = DefaultMaxAccounts
	}
	// 0700: the directory holds private keys and password hashes.
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: creating state dir: %w", err)
	}
	keys, err := loadKeyRing(cfg.StateDir, cfg.KeyGrace, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	accounts, notice, err := loadAccounts(cfg.StateDir, cfg.Now(), cfg.MaxAccounts)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	e := &Emulator{
		project:  cfg.ProjectID,
		issuer:   "https://securetoken.google.com/" + cfg.ProjectID,
		log:      cfg.Logger,
		now:      cfg.Now,
		hasher:   newPasswordHasher(cfg.PasswordHashCost),
		reveal:   cfg.RevealUnknownEmails,
		accounts: accounts,
		keys:     keys,
		sessions: newSessionStore(),
		notice:   notice,

		actionURL: cfg.ActionURL,
		baseURL:   strings.TrimSuffix(cfg.BaseURL, "/"),
		origins:   map[string]bool{},
		hosts:     map[string]bool{},
		domains:   map[string]bool{},
		onOob:     cfg.OnOobCode,
		oobs:      newOobStore(),
		throttle:  newThrottle(),
	}
	for _, o := range cfg.AllowedOrigins {
		e.origins[strings.ToLower(o)] = true
	}
	for _, d := range cfg.AuthorizedDomains {
		e.domains[strings.ToLower(d)] = true
	}
	for _, h := range cfg.AllowedHosts {
		e.hosts[strings.ToLower(h)] = true
	}
	for _, n := range notice {
		e.log.Warn("identity state: "+n, "stateDir", cfg.StateDir)
	}
	e.log.Info("identity emulator state loaded", "projectId", e.project, "stateDir", cfg.StateDir,
		"accounts", accounts.len(), "kid", keys.currentKID(), "nextKid", keys.nextKID())
	return e, nil
}

// Notices are what New had to repair in the saved state (accounts set aside
// because they broke uniqueness), each a sentence saying what to do, for the
// caller to show where a developer looks; nil when the state was sound.
func (e *Emulator) Notices() []string { return slices.Clone(e.notice) }

// Issuer is the iss claim of every ID token: https://securetoken.google.com/<project>.
func (e *Emulator) Issuer() string { return e.issuer }

// ProjectID is the project the emulator serves; it is the aud claim of every ID token.
func (e *Emulator) ProjectID() string { return e.project }

// EnsureUser makes sure an account with email exists, signs in with
// password and has a verified email (a seeded user has no inbox to verify
// from), creating it or resetting its password as needed, and returns its
// uid. devstack calls it at every start to seed the demo user.
func (e *Emulator) EnsureUser(ctx context.Context, email, password string) (string, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return "", fmt.Errorf("identity: seeding user: %w", err)
	}
	if err := checkPassword(password); err != nil {
		return "", fmt.Errorf("identity: seeding user %s: %w", email, err)
	}
	a, found := e.accounts.byEmailAddr(email)
	hash := a.PasswordHash
	if !found || !e.hasher.verify(ctx, a.PasswordHash, password) {
		if hash, err = e.hasher.hash(ctx, password); err != nil {
			return "", fmt.Errorf("identity: seeding user %s: %w", email, err)
		}
	} else if a.EmailVerified {
		return a.LocalID, nil
	}
	now := e.now()
	var uid string
	err = e.accounts.mutate(func(s *accountSet) error {
		if a, ok := s.byEmail(email); ok {
			if a.PasswordHash != hash {
				a.PasswordHash, a.PasswordUpdatedAt = hash, now.UnixMilli()
			}
			a.EmailVerified = true
			uid = a.LocalID
			return nil
		}
		a := newAccount(newUID(), now)
		a.Email, a.PasswordHash, a.PasswordUpdatedAt, a.EmailVerified = email, hash, now.UnixMilli(), true
		uid = a.LocalID
		return s.insert(a)
	})
	if err != nil {
		return "", fmt.Errorf("identity: seeding user %s: %w", email, err)
	}
	return uid, nil
}

// RotateKey makes the published next key current and publishes a new next
// key. A verifier that fetched the JWKS (or the x509 map) since the previous
// rotation already has the newly current key. The previous key stays
// published for Config.KeyGrace so that tokens it signed keep verifying.
//
// Two rotations in a row sign with a key that was published only by the
// first: a verifier that has not fetched in between meets an unknown kid, as
// it would after an emergency rotation on Google Cloud.
func (e *Emulator) RotateKey() error {
	if err := e.keys.rotate(); err != nil {
		return fmt.Errorf("identity: rotating signing key: %w", err)
	}
	e.log.Info("identity signing key rotated", "kid", e.keys.currentKID(), "nextKid", e.keys.nextKID())
	return nil
}

// IDTokenFor mints a real ID token for an existing user as if they had signed
// in with their password at issuedAt; tests use it to make expired tokens.
func (e *Emulator) IDTokenFor(ctx context.Context, uid string, issuedAt time.Time) (string, error) {
	a, ok := e.accounts.byUID(uid)
	if !ok {
		return "", fmt.Errorf("identity: minting ID token: %w", ErrUserNotFound)
	}
	tok, err := e.idToken(a, issuedAt, issuedAt)
	if err != nil {
		return "", fmt.Errorf("identity: minting ID token: %w", err)
	}
	return tok, nil
}

// SignClaims signs arbitrary claims with the current key and kid, for tests of
// tokens that are well signed but wrong (another audience, issuer, ...).
func (e *Emulator) SignClaims(claims map[string]any) (string, error) {
	tok, err := e.keys.sign(claims)
	if err != nil {
		return "", fmt.Errorf("identity: signing claims: %w", err)
	}
	return tok, nil
}

// ErrUserNotFound is returned for a uid that has no account.
var ErrUserNotFound = errors.New("identity: no such user")

// newUID returns a localId shaped like Firebase's: 28 URL-safe characters.
func newUID() string {
	b := make([]byte, 21)
	rand.Read(b) // never fails; see crypto/rand.Read
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionStore holds refresh tokens by SHA-256 digest; see the package comment.
type sessionStore struct {
	mu    sync.RWMutex
	byKey map[[32]byte]session
}

type session struct {
	uid      string
	authTime time.Time      // when the user signed in with their password
	issued   time.Time      // when this refresh token was issued
	provider string         // the sign-in method: "password", "custom"
	claims   map[string]any // a custom token's developer claims, kept for every refresh
}

func newSessionStore() *sessionStore {
	return &sessionStore{byKey: map[[32]byte]session{}}
}
