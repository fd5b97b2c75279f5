package identity

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/labstack/echo/v4"
)

// apiError is a failure in Google's API error format. For Identity Toolkit
// errors the message is the code the SDKs branch on ("EMAIL_EXISTS",
// "WEAK_PASSWORD : Password should be at least 6 characters"): the JS SDK
// splits it on " : ", the Admin SDK on ":".
type apiError struct {
	code    int
	message string
	status  string // canonical status, for errors outside the Identity Toolkit codes
}

func (e *apiError) Error() string { return e.message }

func badRequest(msg string) *apiError {
	return &apiError{code: http.StatusBadRequest, message: msg}
}

func internalError() *apiError {
	return &apiError{code: http.StatusInternalServerError, message: "INTERNAL_ERROR", status: "INTERNAL"}
}

// googleError is the body: {"error": {"code", "message", "errors": [...], "status"}}.
type googleError struct {
	Error googleErrorBody `json:"error"`
}

type googleErrorBody struct {
	Code    int           `json:"code"`
	Message string        `json:"message"`
	Errors  []googleCause `json:"errors"`
	Status  string        `json:"status,omitempty"`
}

type googleCause struct {
	Message string `json:"message"`
	Domain  string `json:"domain"`
	Reason  string `json:"reason"`
}

func reasonFor(code int) string {
	switch code {
	case http.StatusNotFound:
		return "notFound"
	case http.StatusUnauthorized:
		return "required"
	case http.StatusMethodNotAllowed:
		return "httpMethodNotAllowed"
	case http.StatusRequestEntityTooLarge:
		return "requestTooLarge"
	case http.StatusInternalServerError:
		return "backendError"
	default:
		return "invalid"
	}
}

// handleError is echo's central error handler: every failure, ours or the
// router's (404, 405), leaves in Google's format.
func (e *Emulator) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = &apiError{code: he.Code, message: http.StatusText(he.Code)}
		switch he.Code {
		case http.StatusNotFound:
			ae = methodNotFound(c).(*apiError)
		case http.StatusMethodNotAllowed:
			ae.message, ae.status = "Method Not Allowed: this path does not take "+c.Request().Method, "INVALID_ARGUMENT"
		}
	default:
		e.log.ErrorContext(c.Request().Context(), "identity request failed", middleware.KeyError, err)
		ae = internalError()
	}
	// Identity Toolkit codes (INVALID_LOGIN_CREDENTIALS, ...) and Google's
	// statuses help debug a sign-in; other messages may quote the request.
	reason := ae.status
	if reason == "" {
		reason = ae.message
	}
	middleware.Annotate(c.Request().Context(), slog.String(middleware.KeyReason, reason))
	body := googleError{Error: googleErrorBody{
		Code:    ae.code,
		Message: ae.message,
		Errors:  []googleCause{{Message: ae.message, Domain: "global", Reason: reasonFor(ae.code)}},
		Status:  ae.status,
	}}
	b, _ := json.Marshal(body)
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(ae.code)
		return
	}
	_ = c.JSONBlob(ae.code, b)
}
