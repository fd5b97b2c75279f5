package backend

import (
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/labstack/echo/v4"
)

// routes is the whole surface of the API, in one place.
func (s *Server) routes(e *echo.Echo) {
	e.Use(middleware.Stack(middleware.Config{
		Component:  "backend",
		Logger:     s.log,
		BodyLimit:  4 << 10, // GET-only API: no request needs a body
		QuietPaths: []string{pathHealthz},
	})...)
	e.Use(securityHeaders)

	e.GET(pathHealthz, s.healthz)
	e.GET("/api/secure.json", s.reportVerified(s.secure), s.serverTiming, s.partnerOrUser) // partner.go, verified.go
}

const pathHealthz = "/api/healthz"
