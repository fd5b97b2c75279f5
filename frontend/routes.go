package frontend

import (
	"io/fs"
	"net/http"
	"strings"

	"github.com/acme/cloudrun-istio-gke/web"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// routes is the frontend's whole HTTP surface.
func (s *server) routes(e *echo.Echo) {
	e.GET("/", s.home)
	e.POST("/session", s.createSession, requireCSRF)
	e.POST("/signout", s.signOut, middleware.BodyLimit("16K"), requireCSRF)
	e.GET("/api/secure.json", s.secureJSON)
	e.GET("/developers", s.developers)
	e.POST("/developers/apps", s.createApp, middleware.BodyLimit("16K"), requireCSRF)
	e.POST("/developers/apps/:id/revoke", s.revokeApp, middleware.BodyLimit("16K"), requireCSRF)
	// Partner apps' calls with an API key, relayed to the gateway
	// (partner.go); without a key, nothing else under /api/ is served.
	e.Match([]string{http.MethodGet, http.MethodHead}, "/api/*", s.partnerAPI)
	e.GET("/healthz", healthz)
	e.GET(web.StaticPrefix+"*", staticAssets(), middleware.Gzip())
}

// healthz says the process serves; it checks no dependency, so a gateway
// outage shows as a message to users rather than a restart loop.
func healthz(c echo.Context) error {
	return c.String(http.StatusOK, "ok\n")
}

// staticAssets serves the embedded bundle. Names are content-hashed, so
// every response can be cached for a year.
func staticAssets() echo.HandlerFunc {
	files := web.Static()
	return func(c echo.Context) error {
		name := c.Param("*")
		if name == "" || strings.Contains(name, "/") {
			return echo.ErrNotFound
		}
		if _, err := fs.Stat(files, name); err != nil {
			return echo.ErrNotFound
		}
		c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeFileFS(c.Response(), c.Request(), files, name)
		return nil
	}
}
