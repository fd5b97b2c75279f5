package backend

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/labstack/echo/v4"
)

// Error codes in the JSON body of every error answer: stable, documented,
// and free of detail.
const (
	codeUnauthenticated  = "unauthenticated"    // 401: no valid ID token
	codeInvalidRequest   = "invalid_request"    // 400: more than one credential (RFC 6750 section 3.1)
	codeEmailNotVerified = "email_not_verified" // 403: a valid token, but the email is not verified
	codeCallerNotAllowed = "caller_not_allowed" // 403: a valid workload token for a service account not on the allowlist
	codeUnavailable      = "unavailable"        // 503: the token could not be checked right now
	codeNotFound         = "not_found"
	codeMethod           = "method_not_allowed"
	codeBadRequest       = "bad_request"
	codeInternal         = "internal"
)

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

var messages = map[string]string{
	codeUnauthenticated:  "A valid ID token is required.",
	codeInvalidRequest:   "Send the ID token once, in a single Authorization: Bearer header, and never in the query string.",
	codeEmailNotVerified: "Verify your email address first: follow the link in the email you were sent, then sign in again.",
	codeUnavailable:      "The request could not be authenticated right now; try again.",
	codeCallerNotAllowed: "This service account may not call the API.",
	codeNotFound:         "No such resource.",
	codeMethod:           "Method not allowed.",
	codeBadRequest:       "Bad request.",
	codeInternal:         "Internal error.",
}

// apiError is what handlers and middleware return for an expected failure:
// the status and code the client sees, and the cause, which only the log
// sees.
type apiError struct {
	status int
	code   string
	cause  error
}

func (e *apiError) Error() string { return e.code + ": " + e.cause.Error() }
func (e *apiError) Unwrap() error { return e.cause }

// handleError is the one place errors become answers. The request's access
// line (internal/middleware) logs the error; this adds the code answered.
func (s *Server) handleError(err error, c echo.Context) {
	ctx := c.Request().Context()
	if c.Response().Committed {
		s.log.ErrorContext(ctx, "error after the response began", middleware.KeyError, err)
		return
	}
	status, code := http.StatusInternalServerError, codeInternal
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		status, code = ae.status, ae.code
	case errors.As(err, &he):
		// echo's own: unknown route, wrong method, body too large.
		status = he.Code
		switch he.Code {
		case http.StatusNotFound:
			code = codeNotFound
		case http.StatusMethodNotAllowed:
			code = codeMethod
		case http.StatusInternalServerError:
			code = codeInternal
		default:
			code = codeBadRequest
		}
	}
	middleware.Annotate(ctx, slog.String(middleware.KeyReason, code))
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, ErrorBody{Error: code, Message: messages[code]})
	}
	if err != nil {
		s.log.ErrorContext(ctx, "writing error answer", middleware.KeyError, err)
	}
}
