// Package frontend is the public web app that runs on Cloud Run: it renders
// the pages (templ components from package web/components), accepts the
// Identity Platform ID token the browser's Firebase SDK obtains and keeps it
// in an HttpOnly session cookie, and fetches the secret message from the
// private GKE backend through the Istio ingress gateway, presenting its
// client certificate (mTLS) and the user's token as a bearer JWT.
// /developers manages the user's API keys the same way (developers.go).
//
// New builds the whole handler from a validated Config and its dependencies;
// cmd/frontend and local/stack wire those from flags or the dev stack.
package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/acme/cloudrun-istio-gke/web"
	"github.com/labstack/echo/v4"
)

// Revoker ends a user's sessions at Identity Platform: their refresh tokens
// stop working, so no new ID token is minted for them. *auth.Client (the
// Admin SDK) implements it.
type Revoker interface {
	RevokeRefreshTokens(ctx context.Context, uid string) error
}

// Deps are the frontend's collaborators.
type Deps struct {
	// Verifier checks Identity Platform ID tokens; refusals wrap
	// idtoken.ErrInvalidToken.
	Verifier idtoken.Verifier
	// Revoker is called at sign-out; *idtoken.Firebase implements it.
	Revoker Revoker
	// GatewayTLS gives the client certificate and gateway CA per connection;
	// *tlsdir.Dir implements it.
	GatewayTLS ClientTLS
	Logger     *slog.Logger // nil discards
	Now        func() time.Time
}

type server struct {
	cfg        Config
	sessionKey []byte // the session cookie's MAC key (binding.go)
	verifier   idtoken.Verifier
	revoker    Revoker
	gateway    *GatewayClient
	log        *slog.Logger
	now        func() time.Time
	assets     assetURLs
}

type assetURLs struct{ script, stylesheet string }

// Frontend is the web app; its owner serves Handler and calls Close when done.
type Frontend struct {
	handler http.Handler
	gateway *GatewayClient
}

// Handler is the whole HTTP surface of the frontend.
func (f *Frontend) Handler() http.Handler { return f.handler }

// Close releases the gateway client's idle connections.
func (f *Frontend) Close() error {
	f.gateway.Close()
	return nil
}

// New validates cfg and returns the frontend.
func New(cfg Config, deps Deps) (*Frontend, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("frontend: invalid config: %w", err)
	}
	if deps.Verifier == nil || deps.Revoker == nil || deps.GatewayTLS == nil {
		return nil, errors.New("frontend: Deps.Verifier, Deps.Revoker and Deps.GatewayTLS are required")
	}
	sessionKey, err := loadSessionKey(cfg)
	if err != nil {
		return nil, fmt.Errorf("frontend: %w", err)
	}
	gateway, err := NewGatewayClient(cfg.GatewayURL, cfg.GatewayServerName, cfg.BackendTimeout, deps.GatewayTLS)
	if err != nil {
		return nil, fmt.Errorf("frontend: %w", err)
	}
	s := &server{
		cfg:        cfg,
		sessionKey: sessionKey,
		verifier:   deps.Verifier,
		revoker:    deps.Revoker,
		gateway:    gateway,
		log:        deps.Logger,
		now:        deps.Now,
		assets:     assetURLs{script: web.ScriptURL(), stylesheet: web.StylesheetURL()},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.Stack(middleware.Config{
		Component: "frontend",
		Logger:    s.log,
		// The public edge: a client must not choose the id support searches for.
		TrustRequestID: middleware.TrustNone,
		// Cloud Run's startup probe (deploy/cloudrun/frontend.yaml).
		QuietPaths: []string{"/healthz"},
	})...)
	e.Use(securityHeaders(contentSecurityPolicy(cfg)))
	s.routes(e)
	return &Frontend{handler: e, gateway: gateway}, nil
}
