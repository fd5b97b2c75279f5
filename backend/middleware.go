package backend

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	gidtoken "cloud.google.com/go/auth/credentials/idtoken"
	"firebase.google.com/go/v4/auth"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/labstack/echo/v4"
)

const (
	ctxToken   = "idToken"       // *auth.Token of a user
	ctxMachine = "machineCaller" // machineCaller of a workload
)

var errNoBearer = errors.New("no bearer token in Authorization")

// requireCaller admits requests whose bearer token verifies — a person's
// Identity Platform token, or a workload's Google-signed ID token for a
// service account on the allowlist — and keeps who called for the handler.
// Every refusal gets the same answer for its status, so it tells an attacker
// nothing; the reason is logged.
func (s *Server) requireCaller(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := oneCredential(c.Request()); err != nil {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="api", error="invalid_request"`)
			return &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, cause: err}
		}
		raw, ok := bearerToken(c.Request().Header.Get("Authorization"))
		if !ok {
			// RFC 6750 section 3: a 401 names the scheme it wants, and
			// carries no error code when the request had no credentials.
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			return &apiError{status: http.StatusUnauthorized, code: codeUnauthenticated, cause: errNoBearer}
		}
		if s.machine != nil && issuer(raw) == GoogleIssuer {
			return s.admitMachine(c, next, raw)
		}
		return s.admitUser(c, next, raw)
	}
}

// issuer is the iss of raw, unverified: it only chooses the verifier, which
// then checks the issuer itself.
func issuer(raw string) string {
	p, err := gidtoken.ParsePayload(raw)
	if err != nil {
		return ""
	}
	return p.Issuer
}

func (s *Server) admitMachine(c echo.Context, next echo.HandlerFunc, raw string) error {
	caller, err := s.machine.verify(c.Request().Context(), raw)
	var invalid invalidToken
	switch {
	case errors.As(err, &invalid):
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="api", error="invalid_token"`)
		return &apiError{status: http.StatusUnauthorized, code: codeUnauthenticated, cause: err}
	case errors.Is(err, errNotAllowed), errors.Is(err, errMachineEmailUnverified):
		annotateMachine(c, caller) // the access line names the account refused
		return &apiError{status: http.StatusForbidden, code: codeCallerNotAllowed, cause: err}
	case err != nil:
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, cause: err}
	}
	annotateMachine(c, caller)
	c.Set(ctxMachine, caller)
	return next(c)
}

// annotateMachine puts the workload on the request's access line: Istio's
// request.auth.principal (iss/sub, the account's numeric id) and, since
// nobody reads that, the account's email.
func annotateMachine(c echo.Context, m machineCaller) {
	ctx := c.Request().Context()
	if m.sub != "" {
		middleware.Annotate(ctx, slog.String(middleware.KeyRequestPrincipal, GoogleIssuer+"/"+m.sub))
	}
	if m.email != "" {
		middleware.Annotate(ctx, slog.String("serviceAccount", m.email))
	}
}

func (s *Server) admitUser(c echo.Context, next echo.HandlerFunc, raw string) error {
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
	// Istio's request.auth.principal: the user, as every hop logs it.
	middleware.Annotate(c.Request().Context(), slog.String(middleware.KeyRequestPrincipal, tok.Issuer+"/"+tok.Subject))
	if verified, _ := tok.Claims["email_verified"].(bool); !verified {
		// Sign-up is open: anyone can make an account for any address,
		// so an unverified email proves nothing about who this is. The
		// gateway requires the same (istio/authorizationpolicy-gateway.yaml).
		return &apiError{status: http.StatusForbidden, code: codeEmailNotVerified, cause: errEmailNotVerified}
	}
	c.Set(ctxToken, tok)
	return next(c)
}

var errEmailNotVerified = errors.New("the token's email_verified claim is not true")

var (
	errManyAuthorization = errors.New("more than one Authorization value")
	errQueryToken        = errors.New("an access_token query parameter")
)

// oneCredential refuses a request that could name two users: more than one
// Authorization header, or a token in the query (RFC 6750 section 2: "Clients
// MUST NOT use more than one method to transmit the token in each request";
// section 3.1: such a request is invalid_request, 400). The gateway reads the
// token only from Authorization, and Envoy joins repeated Authorization
// headers into one value in which it finds "Bearer " anywhere, so the user it
// authenticated and the user this server would take from the first value
// could differ (issue 13). Refusing both shapes leaves exactly one token,
// the one the gateway checked.
func oneCredential(r *http.Request) error {
	if len(r.Header.Values("Authorization")) > 1 {
		return errManyAuthorization
	}
	if hasQueryParam(r.URL.RawQuery, "access_token") {
		return errQueryToken
	}
	return nil
}

// hasQueryParam reports whether any pair of rawQuery is named name, however
// its key is escaped, and even when a value is not valid escaping (which
// url.ParseQuery would drop without a word).
func hasQueryParam(rawQuery, name string) bool {
	for pair := range strings.SplitSeq(rawQuery, "&") {
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if key == name {
			return true
		}
	}
	return false
}

// userToken is the user's token requireCaller verified, if a user called.
func userToken(c echo.Context) (*auth.Token, bool) {
	tok, ok := c.Get(ctxToken).(*auth.Token)
	return tok, ok
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
