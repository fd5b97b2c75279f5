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
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/labstack/echo/v4"
)

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

// New returns the backend for cfg, verifying users' tokens with verifier,
// workloads' Google ID tokens as cfg's Machine fields say, and logging to
// log. cfg should have been validated (ParseConfig does); New does no I/O.
func New(cfg Config, verifier idtoken.Verifier, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, verifier: verifier, log: log, draining: make(chan struct{})}
	// NewValidator only stores its options: it cannot fail today.
	s.machine, _ = newMachineVerifier(cfg)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	s.routes(e)
	s.handler = e
	return s
}

// Handler is the whole HTTP surface of the backend.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx ends, then shuts down gracefully: readiness
// fails at once, in-flight requests finish within cfg.Grace.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return serve.Run(ctx, serve.Options{
		Name:       "backend",
		Handler:    s.handler,
		Listener:   ln,
		Grace:      s.cfg.Grace,
		Drain:      s.cfg.Drain,
		Logger:     s.log,
		OnShutdown: func() { s.drainOnce.Do(func() { close(s.draining) }) },
	})
}

// Run listens on cfg.Addr and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := serve.Listen(ctx, s.cfg.Addr)
	if err != nil {
		return err
	}
	s.log.Info("backend listening", "addr", ln.Addr().String())
	return s.Serve(ctx, ln)
}
