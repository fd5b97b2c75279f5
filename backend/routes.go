package backend

import (
	"fmt"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// routes is the whole surface of the API, in one place.
func (s *Server) routes(e *echo.Echo) {
	e.Use(
		requestID,
		s.accessLog,
		middleware.RecoverWithConfig(middleware.RecoverConfig{
			// The panic and its stack reach handleError, which logs them once.
			LogErrorFunc: func(_ echo.Context, err error, stack []byte) error {
				return fmt.Errorf("panic: %w\n%s", err, stack)
			},
		}),
		middleware.BodyLimit("4K"), // GET-only API: no request needs a body
		securityHeaders,
	)

	e.GET(pathHealthz, s.healthz)
	e.GET("/api/secure.json", s.secure, s.partnerOrUser) // partner.go
}

const pathHealthz = "/api/healthz"
