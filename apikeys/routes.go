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

// routes is the management side's HTTP surface, in one place. The gateway
// routes only ManagementPrefix here; /healthz is for the kubelet. /metrics is
// not here but in metricsRoutes, on a port of its own: the scraper has no
// mesh identity, so its port must accept plaintext, and the management API's
// must not.
func (s *Service) routes() http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.Stack(middleware.Config{
		Component: "apikeys",
		Logger:    s.log,
		BodyLimit: 16 << 10,
		// Probes every few seconds are not news.
		QuietPaths: []string{"/healthz"},
	})...)
	e.Use(noSniff)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })

	g := e.Group(ManagementPrefix, s.requireUser)
	g.GET("/products", s.listProducts)
	g.GET("/apps", s.listApps)
	g.POST("/apps", s.createApp)
	g.GET("/apps/:id", s.getApp)
	g.POST("/apps/:id/revoke", s.revokeApp)
	g.GET("/apps/:id/usage", s.appUsage)
	return e
}

// metricsRoutes serves GET /metrics and nothing else, so the port it is
// served on offers a scraper no way into the management API.
func metricsRoutes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

func noSniff(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}
