package frontend

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/acme/cloudrun-istio-gke/web/components"
	"github.com/labstack/echo/v4"
)

const requestIDKey = "request_id"

// withRequestID gives every request an id the user can quote and the logs
// carry. It is always minted here, never taken from the request, so a
// client cannot choose what support will search for.
func withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		b := make([]byte, 8)
		rand.Read(b)
		id := hex.EncodeToString(b)
		c.Set(requestIDKey, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// accessLog hands errors to the central error handler, then logs one line
// per request: what was asked (path only: queries are not logged), what was
// answered, and, for failures, why. Cookies and headers are never logged.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			r := c.Request()
			status := c.Response().Status
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Duration("latency", time.Since(start)),
				slog.String(requestIDKey, requestID(c)),
			}
			level := slog.LevelInfo
			if err != nil {
				attrs = append(attrs, slog.String("error", errorCause(err)))
				if status >= 500 {
					level = slog.LevelError
				}
			}
			log.LogAttrs(r.Context(), level, "request", attrs...)
			return nil
		}
	}
}

// errorCause is the most telling text of an error: the internal cause of an
// echo.HTTPError (what went wrong) rather than its message (what the user
// was told).
func errorCause(err error) string {
	var he *echo.HTTPError
	if errors.As(err, &he) && he.Internal != nil {
		return fmt.Sprintf("%v: %v", he.Message, he.Internal)
	}
	return err.Error()
}

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
	id := requestID(c)
	r := c.Request()
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
