// Package apikeys is the API-key decision service: an Envoy ext_authz v3
// gRPC server that the Istio gateway asks about every /api/ request (an
// AuthorizationPolicy with action CUSTOM), plus the HTTP API developers use
// to create apps and keys, and Prometheus metrics.
//
// Apps belong to an owner and hold one key for one or more API products
// (products.go); the check answers 401 for an unknown or revoked key, 403
// when the app's products do not cover the request, 429 past the quota, and
// otherwise lets the request through with x-api-app set to the app's id.
// Apps, quota counters and usage live in a Store: in memory for one replica,
// in Redis beyond.
package apikeys

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
)

// Config is what a Service is built from.
type Config struct {
	// Catalog is the API products. Required.
	Catalog *Catalog
	// Store holds apps, quotas and usage. Required; the caller owns it and
	// closes it after the Service.
	Store Store
	// Verifier checks the ID tokens of management API callers. Required.
	Verifier idtoken.Verifier
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the service's metrics and is served by
	// MetricsHandler;
	// nil means a registry of the service's own, with the Go and process
	// collectors.
	Registry *prometheus.Registry
	// Now is the clock of quota windows and usage; nil means time.Now.
	Now func() time.Time
}

func (c Config) validate() error {
	var errs []error
	if c.Catalog == nil {
		errs = append(errs, errors.New("apikeys: Catalog is required"))
	} else if err := c.Catalog.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Store == nil {
		errs = append(errs, errors.New("apikeys: Store is required"))
	}
	if c.Verifier == nil {
		errs = append(errs, errors.New("apikeys: Verifier is required"))
	}
	return errors.Join(errs...)
}

// Service is the decision service: Check for Envoy, Handler for people,
// MetricsHandler for Prometheus.
type Service struct {
	authv3.UnimplementedAuthorizationServer

	catalog  *Catalog
	store    Store
	verifier idtoken.Verifier
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	handler  http.Handler
	scrape   http.Handler
}

// New returns the service for cfg.
func New(cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Service{
		catalog:  cfg.Catalog,
		store:    cfg.Store,
		verifier: cfg.Verifier,
		log:      cfg.Logger,
		now:      cfg.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	reg := cfg.Registry
	if reg == nil {
		reg = newRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.handler = s.routes()
	s.scrape = metricsRoutes(reg)
	return s, nil
}

// Register adds the Authorization service to a gRPC server.
func (s *Service) Register(g grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(g, s) }

// Handler serves the management API and /healthz.
func (s *Service) Handler() http.Handler { return s.handler }

// MetricsHandler serves GET /metrics, the service's Prometheus series, and
// nothing else. Serve it on a listener of its own: on GKE the scraper comes
// without a mesh identity, so that port is the one left open to plaintext.
func (s *Service) MetricsHandler() http.Handler { return s.scrape }

// observe counts a decision in the metrics and in the app's usage, and logs
// refusals with their reason. A usage write that fails costs a log line,
// never the decision.
func (s *Service) observe(ctx context.Context, d Decision, now time.Time, elapsed time.Duration) {
	s.metrics.observe(d, elapsed)
	if d.AppID != "" {
		if err := s.store.RecordUsage(ctx, d.AppID, now, d.Outcome.Status(), elapsed); err != nil {
			s.log.WarnContext(ctx, "recording usage", "app", d.AppID, "error", err)
		}
	}
	switch d.Outcome {
	case OutcomeAllowed, OutcomeNoKey:
		return
	case OutcomeUnavailable:
		s.log.ErrorContext(ctx, "check failed", "outcome", d.Outcome, "app", d.AppID, "error", d.Err)
	default:
		s.log.InfoContext(ctx, "check refused", "outcome", d.Outcome, "app", d.AppID, "product", d.Product)
	}
}
