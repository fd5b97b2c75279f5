package backend

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"firebase.google.com/go/v4/auth"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/labstack/echo/v4"
)

const ctxToken = "idToken"

var errNoBearer = errors.New("no bearer token in Authorization")

// requireUser admits requests whose bearer token verifies, and keeps the
// verified token for the handler. Every refusal gets the same answer, so it
// tells an attacker nothing; the reason is logged.
func (s *Server) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		raw, ok := bearerToken(c.Request().Header.Get("Authorization"))
		if !ok {
			// RFC 6750 section 3: a 401 names the scheme it wants, and
			// carries no error code when the request had no credentials.
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			return &apiError{status: http.StatusUnauthorized, code: codeUnauthenticated, cause: errNoBearer}
		}
		tok, err := s.verifier.Verify(c.Request().Context(), raw)
		if errors.Is(err, idtoken.ErrInvalidToken) {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="api", error="invalid_token"`)
			return &apiError{status: http.StatusUnauthorized, code: codeUnauthenticated, cause: err}
		}
		if err != nil {
			// We could not check the token: not the client's fault, and
			// not a reason to let it in.
			return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, cause: err}
		}
		c.Set(ctxToken, tok)
		// Istio's request.auth.principal: the user, as every hop logs it.
		middleware.Annotate(c.Request().Context(), slog.String(middleware.KeyRequestPrincipal, tok.Issuer+"/"+tok.Subject))
		return next(c)
	}
}

// userToken is the token requireUser verified.
func userToken(c echo.Context) *auth.Token {
	return c.Get(ctxToken).(*auth.Token)
}

// bearerToken extracts the token from an Authorization header value. The
// scheme is case-insensitive (RFC 9110 section 11.1, RFC 6750 section 2.1).
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// securityHeaders are right for every answer of a JSON API.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		return next(c)
	}
}
