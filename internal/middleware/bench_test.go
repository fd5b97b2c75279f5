package middleware_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/acme/cloudrun-istio-gke/backend"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/labstack/echo/v4"
)

// BenchmarkLayer measures one request through the layer, side by side with
// the backend as built (the layer, then securityHeaders; its own chain of
// logging.Middleware, requestID, accessLog, Recover and BodyLimit before
// issue 14), and with echo alone as the floor. Every case answers GET /api/healthz as the backend
// does and writes its access line (to io.Discard, at DEBUG), with the
// headers a request from the gateway carries.
//
//	go test ./internal/middleware -run '^$' -bench Layer -benchmem -count 6
func BenchmarkLayer(b *testing.B) {
	log := logging.New(io.Discard, slog.LevelDebug, "demo-acme")
	healthz := func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, backend.Health{Status: "ok"})
	}
	nosniff := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set("X-Content-Type-Options", "nosniff")
			return next(c)
		}
	}
	withStack := echo.New()
	withStack.Use(middleware.Stack(middleware.Config{Component: "backend", Logger: log, BodyLimit: 4 << 10})...)
	withStack.Use(nosniff)
	withStack.GET("/api/healthz", healthz)

	bare := echo.New()
	bare.GET("/api/healthz", healthz)

	handlers := []struct {
		name string
		h    http.Handler
	}{
		{"echo alone", bare},
		{"backend", backendFor(b, log)},
		{"middleware.Stack", withStack},
	}
	req := httptest.NewRequest(http.MethodGet, "/api/healthz", nil)
	req.RemoteAddr = "10.8.0.5:41234" // the gateway, inside the cluster: its id is adopted
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("X-Request-Id", "0b5b2a3c-9c1e-4a43-8d2f-7d3f0a1e2b3c")
	req.Header.Set("User-Agent", "Go-http-client/1.1")
	for _, h := range handlers {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req.Body = http.NoBody // BodyLimit wraps the body it finds
				w := httptest.NewRecorder()
				h.h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d, want 200", w.Code)
				}
			}
		})
	}
}

// backendFor is the project's backend; its healthz, which the benchmark
// asks for, verifies no token.
func backendFor(b *testing.B, log *slog.Logger) http.Handler {
	srv, err := backend.New(backend.Config{Addr: "127.0.0.1:0", ProjectID: "demo-acme", Grace: time.Second, RevocationCheck: time.Minute},
		backend.Deps{Verifier: noTokens{}, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	return srv.Handler()
}

type noTokens struct{}

func (noTokens) Verify(context.Context, string) (*auth.Token, error) {
	return nil, errors.New("no token is verified here")
}
