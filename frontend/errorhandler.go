package frontend

import (
	"errors"
	"net/http"
	"strings"

	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/acme/cloudrun-istio-gke/web/components"
	"github.com/labstack/echo/v4"
)

// handleError is the one place errors become responses: JSON for API and
// session calls, an error page otherwise; always with the request id.
// Unexpected errors are answered without their text.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "Something went wrong on our side."
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(code)
		}
	}
	r := c.Request()
	id := middleware.RequestID(r.Context())
	c.Response().Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		c.NoContent(code)
		return
	}
	if wantsJSON(r) {
		c.JSON(code, map[string]string{"error": msg, "requestId": id})
		return
	}
	shell := s.shell(c, components.SessionNone)
	render(c, code, components.ErrorPage(shell, components.Problem{Title: msg, RequestID: id}))
}

// wantsJSON tells API and fetch callers from page navigations.
func wantsJSON(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/api/") ||
		strings.Contains(r.Header.Get("Accept"), "application/json") ||
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
}
