package backend

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// SecureMessage is the body of GET /api/secure.json.
type SecureMessage struct {
	Message string `json:"message"`
	UID     string `json:"uid"`
	Email   string `json:"email"`
}

// secure answers the user whose token requireUser verified.
func (s *Server) secure(c echo.Context) error {
	tok := userToken(c)
	email, _ := tok.Claims["email"].(string) // absent for phone or anonymous users
	// The answer is per user: no shared cache may keep it.
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, SecureMessage{Message: "Hello World", UID: tok.UID, Email: email})
}

// Health is the body of GET /api/healthz.
type Health struct {
	Status string `json:"status"`
}

// healthz is the readiness check: 200 while serving, 503 once shutdown has
// begun, so that Kubernetes takes the pod out of the Service's endpoints
// while in-flight requests finish.
func (s *Server) healthz(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	select {
	case <-s.draining:
		return c.JSON(http.StatusServiceUnavailable, Health{Status: "shutting down"})
	default:
		return c.JSON(http.StatusOK, Health{Status: "ok"})
	}
}
