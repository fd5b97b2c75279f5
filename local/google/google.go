// Package google is a local stand-in for the Google services a workload uses
// to prove who it is with a Google-signed ID token: the metadata server
// (Cloud Run, GKE Workload Identity, GCE), the OAuth 2.0 token endpoint that
// a service-account key file's token_uri names, the IAM Credentials API that
// impersonation calls, and the public keys at /oauth2/v3/certs. The
// unmodified cloud.google.com/go/auth libraries talk to it with
// GCE_METADATA_HOST, a key file written by WriteKeyFile, or an impersonation
// ADC file written by WriteImpersonationFile (with Transport, as the IAM
// address is fixed in the library).
//
// Tokens are shaped like Google's (iss https://accounts.google.com, numeric
// sub and azp, email, email_verified, one hour of life) and signed with RS256
// by a key set of its own, separate from the Identity Platform emulator's.
// Keys and the accounts' unique ids persist in Config.StateDir.
package google

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/middleware"
)

// Issuer is the iss of every ID token, as Google's.
const Issuer = "https://accounts.google.com"

// GoogleCertsURL and GoogleTokenURL are the production addresses the local
// ones stand in for.
const (
	GoogleCertsURL = "https://www.googleapis.com/oauth2/v3/certs"
	GoogleTokenURL = "https://oauth2.googleapis.com/token"
)

// Paths of the OAuth side, "/<Google host>/<path>" as local/identity does it,
// so a client only swaps the host.
const (
	TokenPath     = "/oauth2.googleapis.com/token"
	CertsPath     = "/www.googleapis.com/oauth2/v3/certs"
	DiscoveryPath = "/accounts.google.com/.well-known/openid-configuration"
	// MetadataPrefix is where the metadata server's v1 API lives; the
	// metadata handler must be served at the root of its host, since
	// cloud.google.com/go/compute/metadata builds
	// http://$GCE_METADATA_HOST/computeMetadata/v1/...
	MetadataPrefix = "/computeMetadata/v1/"
)

// IDTokenLifetime is the life of every ID token: Google's are valid one hour
// (https://cloud.google.com/iam/docs/create-short-lived-credentials-direct#create-id).
const IDTokenLifetime = time.Hour

// Config configures the stand-in. ProjectID, StateDir, URL and at least one
// service account are required.
type Config struct {
	ProjectID string // e.g. "demo-acme": the metadata server's project-id
	StateDir  string // signing key and service-account keys persist here (0700)
	// URL is where Handler is served, e.g. "http://127.0.0.1:9300". The key
	// files' token_uri is URL+TokenPath, and the token endpoint requires that
	// exact audience in assertions, as Google requires its own token URL.
	URL string
	// ServiceAccounts are the machine identities by email, such as
	// "reporter@demo-acme.iam.gserviceaccount.com". The first is the
	// metadata server's default account.
	ServiceAccounts []string
	// TokenCreators are people, by email, who hold
	// roles/iam.serviceAccountTokenCreator on every service account: they may
	// impersonate one with an ADC file written by WriteImpersonationFile.
	TokenCreators []string
	Logger        *slog.Logger     // optional
	Now           func() time.Time // nil means time.Now; lets tests move the clock
	// TokenLifetime is the life of the ID tokens; 0 means IDTokenLifetime,
	// Google's. Tests shorten it to reach a client's early-refresh window.
	TokenLifetime time.Duration
}

func (c *Config) validate() error {
	var errs []error
	if c.ProjectID == "" {
		errs = append(errs, errors.New("google: Config.ProjectID is required"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("google: Config.StateDir is required"))
	}
	if u, err := url.Parse(c.URL); c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("google: Config.URL %q is not an absolute http(s) URL", c.URL))
	}
	if c.TokenLifetime < 0 {
		errs = append(errs, fmt.Errorf("google: Config.TokenLifetime %v is negative", c.TokenLifetime))
	}
	if len(c.ServiceAccounts) == 0 {
		errs = append(errs, errors.New("google: Config.ServiceAccounts needs at least one email"))
	}
	for _, e := range c.TokenCreators {
		if at := strings.IndexByte(e, '@'); at <= 0 || at == len(e)-1 {
			errs = append(errs, fmt.Errorf("google: Config.TokenCreators: %q is not an email", e))
		}
	}
	seen := map[string]bool{}
	for _, e := range c.ServiceAccounts {
		if at := strings.IndexByte(e, '@'); at <= 0 || at == len(e)-1 || strings.ContainsAny(e, " /?#") {
			errs = append(errs, fmt.Errorf("google: Config.ServiceAccounts: %q is not an email", e))
		}
		if seen[e] {
			errs = append(errs, fmt.Errorf("google: Config.ServiceAccounts: %q is listed twice", e))
		}
		seen[e] = true
	}
	return errors.Join(errs...)
}

// Google is the stand-in. It is safe for concurrent use.
type Google struct {
	project  string
	base     string
	log      *slog.Logger
	now      func() time.Time
	lifetime time.Duration
	state    *state
	accounts map[string]*account // by email
	def      *account            // the metadata server's default account

	mu     sync.Mutex
	access map[string]accessGrant // access token → grant, for IAM calls
}

// New loads the keys from cfg.StateDir, creating the signing key and a key
// and unique id for each service account that has none yet.
func New(cfg Config) (*Google, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = IDTokenLifetime
	}
	st, err := loadState(cfg.StateDir, cfg.ServiceAccounts, cfg.TokenCreators)
	if err != nil {
		return nil, fmt.Errorf("google: %w", err)
	}
	g := &Google{
		project:  cfg.ProjectID,
		base:     strings.TrimSuffix(cfg.URL, "/"),
		log:      cfg.Logger,
		now:      cfg.Now,
		lifetime: cfg.TokenLifetime,
		state:    st,
		accounts: map[string]*account{},
		access:   map[string]accessGrant{},
	}
	for _, a := range st.accounts {
		g.accounts[a.email] = a
	}
	g.def = g.accounts[cfg.ServiceAccounts[0]]
	return g, nil
}

// TokenURL is the token_uri of the key files: the local oauth2.googleapis.com/token.
func (g *Google) TokenURL() string { return g.base + TokenPath }

// CertsURL is the local www.googleapis.com/oauth2/v3/certs: the JWKS that
// verifies every ID token the stand-in signs. Point a jwksUri or
// idtoken.ValidatorOptions.RS256CertsURL at it.
func (g *Google) CertsURL() string { return g.base + CertsPath }

// DefaultServiceAccount is the metadata server's account.
func (g *Google) DefaultServiceAccount() string { return g.def.email }

// UniqueID is the numeric id of a service account: the sub and azp of its
// tokens. It reports false for an account the stand-in does not have.
func (g *Google) UniqueID(email string) (string, bool) {
	a, ok := g.accounts[email]
	if !ok {
		return "", false
	}
	return a.uniqueID, true
}

// Handler serves the metadata server and the OAuth and IAM endpoints on one
// host, so that one loopback port is both GCE_METADATA_HOST and the key
// files' token_uri.
func (g *Google) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(MetadataPrefix, g.MetadataHandler())
	oauth := g.OAuthHandler()
	mux.Handle(TokenPath, oauth)
	mux.Handle(CertsPath, oauth)
	mux.Handle(DiscoveryPath, oauth)
	mux.Handle(iamPrefix, oauth)
	return middleware.Handler(middleware.Config{Component: "google", Logger: g.log}, mux)
}
