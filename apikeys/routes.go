package apikeys

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/acme/cloudrun-istio-gke/internal/logging"
)

// ManagementPrefix is where the management API lives. It is under /api/, so
// the gateway's rule that every /api/ request carries a valid user JWT
// covers it before this service checks the token again.
const ManagementPrefix = "/api/apikeys/v1"

// routes is the whole HTTP surface, in one place. The gateway routes only
// ManagementPrefix here; /healthz and /metrics are for the kubelet and
// Prometheus inside the cluster.
func (s *Service) routes(reg *prometheus.Registry) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(
		s.accessLog,
		middleware.RecoverWithConfig(middleware.RecoverConfig{
			LogErrorFunc: func(_ echo.Context, err error, stack []byte) error {
				return fmt.Errorf("panic: %w\n%s", err, stack)
			},
		}),
		middleware.BodyLimit("16K"),
		noSniff,
	)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))

	g := e.Group(ManagementPrefix, s.requireUser)
	g.GET("/products", s.listProducts)
	g.GET("/apps", s.listApps)
	g.POST("/apps", s.createApp)
	g.GET("/apps/:id", s.getApp)
	g.POST("/apps/:id/revoke", s.revokeApp)
	g.GET("/apps/:id/usage", s.appUsage)
	return logging.Middleware(e)
}

// accessLog logs one line per request: method, path, status, duration and
// the caller once known. Never headers or the query: they carry tokens.
func (s *Service) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err) // the answer must be written before its status is logged
		}
		req := c.Request()
		attrs := []any{"method", req.Method, "path", req.URL.Path, "status", c.Response().Status,
			"durationMs", float64(time.Since(start).Microseconds()) / 1000}
		if who, ok := c.Get(ctxOwner).(string); ok {
			attrs = append(attrs, "uid", who)
		}
		level := slog.LevelInfo
		if req.URL.Path == "/healthz" || req.URL.Path == "/metrics" {
			level = slog.LevelDebug // probes and scrapes every few seconds are not news
		}
		s.log.Log(req.Context(), level, "request", attrs...)
		return nil
	}
}

func noSniff(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}
