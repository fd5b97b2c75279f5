package backend

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// SecureMessage is the body of GET /api/secure.json: the message and who
// called. UID and Email repeat a user's Caller fields at the top level, as
// the answer had them before workloads could call; the frontend reads them.
type SecureMessage struct {
	Message string `json:"message"`
	UID     string `json:"uid,omitempty"`
	Email   string `json:"email,omitempty"`
	// Caller is always set by this backend; a pointer so that a client
	// decoding an older answer, without it, writes none back (the frontend
	// relays this type).
	Caller *Caller `json:"caller,omitempty"`
}

// Caller is who called: a person ("user", with their uid and email) or a
// workload ("service-account", with the account's email).
type Caller struct {
	Kind  string `json:"kind"`
	UID   string `json:"uid,omitempty"`
	Email string `json:"email,omitempty"`
}

// Caller kinds.
const (
	CallerUser           = "user"
	CallerServiceAccount = "service-account"
)

// secure answers the caller requireCaller admitted.
func (s *Server) secure(c echo.Context) error {
	msg := SecureMessage{Message: "Hello World"}
	if tok, ok := userToken(c); ok {
		email, _ := tok.Claims["email"].(string) // absent for phone or anonymous users
		msg.UID, msg.Email = tok.UID, email
		msg.Caller = &Caller{Kind: CallerUser, UID: tok.UID, Email: email}
	} else {
		m := c.Get(ctxMachine).(machineCaller)
		msg.Caller = &Caller{Kind: CallerServiceAccount, Email: m.email}
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
