package apikeys

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/acme/cloudrun-istio-gke/internal/middleware"
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
	e.Use(middleware.Stack(middleware.Config{
		Component: "apikeys",
		Logger:    s.log,
		BodyLimit: 16 << 10,
		// Probes and scrapes every few seconds are not news.
		QuietPaths: []string{"/healthz", "/metrics"},
	})...)
	e.Use(noSniff)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))

	g := e.Group(ManagementPrefix, s.requireUser)
	g.GET("/products", s.listProducts)
	g.GET("/apps", s.listApps)
	g.POST("/apps", s.createApp)
	g.GET("/apps/:id", s.getApp)
	g.POST("/apps/:id/revoke", s.revokeApp)
	g.GET("/apps/:id/usage", s.appUsage)
	return e
}

func noSniff(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}
