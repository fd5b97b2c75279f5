package frontend

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"

	"github.com/labstack/echo/v4"
)

// CSRF protection for the two state-changing routes (POST /session and POST
// /signout) is two independent checks, both required:
//
//  1. Origin: the browser's Origin header must be this site's origin. When a
//     browser leaves Origin out, Sec-Fetch-Site must say same-origin; a
//     request with neither is refused.
//  2. Token (double submit): a random token in an HttpOnly cookie must match
//     the one the page carries (X-CSRF-Token header from the sign-in module,
//     or the sign-out form's hidden field). The cookie is __Host- prefixed on
//     HTTPS, so a sibling subdomain cannot plant one.
const (
	csrfCookieBase = "csrf"
	csrfHeader     = "X-CSRF-Token"
	csrfFormField  = "csrf"
	csrfTokenBytes = 32
)

// csrfToken returns the browser's CSRF token, issuing one in a cookie if it
// has none yet.
func csrfToken(c echo.Context) string {
	r := c.Request()
	if ck, err := r.Cookie(cookieName(r, csrfCookieBase)); err == nil && validCSRFToken(ck.Value) {
		return ck.Value
	}
	b := make([]byte, csrfTokenBytes)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	tok := base64.RawURLEncoding.EncodeToString(b)
	c.SetCookie(newCookie(r, csrfCookieBase, tok, 0))
	return tok
}

func validCSRFToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == csrfTokenBytes
}

// requireCSRF refuses a request that fails either check, with 403 and a
// reason for the log.
func requireCSRF(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if reason := checkOrigin(r); reason != "" {
			return echo.NewHTTPError(http.StatusForbidden, "This request did not come from this site.").
				SetInternal(errCSRF(reason))
		}
		ck, err := r.Cookie(cookieName(r, csrfCookieBase))
		if err != nil || !validCSRFToken(ck.Value) {
			return echo.NewHTTPError(http.StatusForbidden, "Your page is out of date. Reload it and try again.").
				SetInternal(errCSRF("no CSRF cookie"))
		}
		sent := r.Header.Get(csrfHeader)
		if sent == "" {
			sent = c.FormValue(csrfFormField)
		}
		if subtle.ConstantTimeCompare([]byte(sent), []byte(ck.Value)) != 1 {
			return echo.NewHTTPError(http.StatusForbidden, "Your page is out of date. Reload it and try again.").
				SetInternal(errCSRF("CSRF token missing or not matching the cookie"))
		}
		return next(c)
	}
}

// checkOrigin returns why the request is not same-origin, or "".
func checkOrigin(r *http.Request) string {
	if origin := r.Header.Get("Origin"); origin != "" {
		if origin != requestOrigin(r) {
			return "Origin " + origin + " is not " + requestOrigin(r)
		}
		return ""
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "same-origin":
		return ""
	case "":
		return "neither Origin nor Sec-Fetch-Site was sent"
	default:
		return "Sec-Fetch-Site is " + site
	}
}

type errCSRF string

func (e errCSRF) Error() string { return "CSRF check failed: " + string(e) }
