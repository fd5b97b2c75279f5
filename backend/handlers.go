package backend

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/acme/cloudrun-istio-gke/internal/secureapi"
)

// secure answers the caller requireCaller admitted.
func (s *Server) secure(c echo.Context) error {
	// The answer's type is the contract the frontend reads (internal/secureapi).
	msg := secureapi.SecureMessage{Message: "Hello World"}
	if tok, ok := userToken(c); ok {
		email, _ := tok.Claims["email"].(string) // absent for phone or anonymous users
		msg.UID, msg.Email = tok.UID, email
		msg.Caller = &secureapi.Caller{Kind: secureapi.CallerUser, UID: tok.UID, Email: email}
	} else {
		m := c.Get(ctxMachine).(machineCaller)
		msg.Caller = &secureapi.Caller{Kind: secureapi.CallerServiceAccount, Email: m.email}
	}
	// The answer is per caller: no shared cache may keep it.
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, msg)
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
