package frontend

import (
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// secureJSON keeps the original tutorial's browser fetch working: GET
// /api/secure.json on the frontend is passed to the backend through the
// gateway, with the browser's own bearer token if it sent one, or else the
// session's. The gateway's answer (status, JSON or Envoy's text) is relayed
// as is, so the browser sees exactly what the gateway decided.
func (s *server) secureJSON(c echo.Context) error {
	r := c.Request()
	token := sessionToken(r)
	if scheme, bearer, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(bearer)
	}
	resp, err := s.backend.Get(r.Context(), "/api/secure.json", token)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "The backend is unavailable right now.").SetInternal(err)
	}
	defer resp.Body.Close()
	h := c.Response().Header()
	for _, k := range []string{"Content-Type", "WWW-Authenticate"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	h.Set("Cache-Control", "no-store")
	c.Response().WriteHeader(resp.StatusCode)
	_, err = io.Copy(c.Response(), io.LimitReader(resp.Body, maxBackendBody))
	return err // the status is sent; a copy error only ends the response early
}
