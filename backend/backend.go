// Package backend is the private API that runs on GKE behind the Istio
// ingress gateway: GET /api/secure.json answers its caller — a signed-in user
// or a workload's service account — and GET /api/healthz tells Kubernetes
// whether to send traffic.
//
// The gateway already demands mTLS and a valid JWT, but the backend trusts no
// one blindly: it verifies the forwarded bearer token itself (a user's with
// internal/idtoken, a workload's with cloud.google.com/go/auth's validator
// and the same allowlist as the gateway), so a misconfigured mesh policy does
// not open the API. It is a library so that
// cmd/backend, devstack and tests compose it the same way.
package backend

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/labstack/echo/v4"
)

// Deps are the backend's collaborators, built by its main (or the stack).
type Deps struct {
	// Verifier checks users' Identity Platform ID tokens; refusals wrap
	// idtoken.ErrInvalidToken.
	Verifier idtoken.Verifier
	Logger   *slog.Logger // nil discards
}

// Server is the backend API.
type Server struct {
	cfg      Config
	verifier idtoken.Verifier
	machine  *machineVerifier // nil: no workload may call
	log      *slog.Logger
	handler  http.Handler
	// draining is closed once shutdown begins: readiness then fails so that
	// Kubernetes stops sending new requests while in-flight ones finish.
	draining  chan struct{}
	drainOnce sync.Once
}

// New validates cfg and returns the backend, verifying users' tokens with
// deps.Verifier and workloads' Google ID tokens as cfg's Machine fields say.
// It does no I/O; its owner serves Handler (serve.Run, with BeginDrain as
// OnShutdown).
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Verifier == nil {
		return nil, errors.New("backend: Deps.Verifier is required")
	}
	s := &Server{cfg: cfg, verifier: deps.Verifier, log: deps.Logger, draining: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.machine, err = newMachineVerifier(cfg); err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	s.routes(e)
	s.handler = e
	return s, nil
}

// Handler is the whole HTTP surface of the backend.
func (s *Server) Handler() http.Handler { return s.handler }

// BeginDrain makes readiness fail from now on, so that Kubernetes stops
// routing new requests here while in-flight ones finish: the serve.Options
// OnShutdown of the backend's server.
func (s *Server) BeginDrain() { s.drainOnce.Do(func() { close(s.draining) }) }
