package backend

import (
	"net/http"
	"regexp"

	"github.com/labstack/echo/v4"
)

// headerAPIApp names the partner app whose API key the gateway's decision
// service accepted (apikeys/, istio/authorizationpolicy-apikeys.yaml). The
// backend can take it on trust: only the gateway reaches it
// (backend-namespace-policy.yaml), and the gateway's CUSTOM step removes
// every copy a client sent before it sets its own.
const headerAPIApp = "X-Api-App"

// appIDPattern is the decision service's app id shape (apikeys newID); a
// value of any other shape did not come from it.
var appIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// PartnerMessage is the body of GET /api/secure.json for a partner app.
type PartnerMessage struct {
	Message string `json:"message"`
	App     string `json:"app"`
}

// partnerOrUser answers a partner app's call, which carries x-api-app and
// no token; every other request goes to the token path (requireCaller: a
// user or a workload), which still refuses one with two credentials.
func (s *Server) partnerOrUser(user echo.HandlerFunc) echo.HandlerFunc {
	users := s.requireCaller(user)
	return func(c echo.Context) error {
		r := c.Request()
		apps := r.Header.Values(headerAPIApp)
		if len(apps) != 1 || len(r.Header.Values("Authorization")) != 0 || !appIDPattern.MatchString(apps[0]) {
			return users(c)
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, PartnerMessage{Message: "Hello World", App: apps[0]})
	}
}
