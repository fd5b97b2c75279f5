package frontend

import (
	"net"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// requestIsHTTPS tells whether the browser reached us over HTTPS. Cloud Run
// terminates TLS in front of the container and says so in X-Forwarded-Proto.
// A client could send that header over plain HTTP, but it would only make
// its own cookies Secure, and so unusable to itself.
func requestIsHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// plainLocalhost is the one case where cookies are not Secure and not
// __Host- prefixed: plain HTTP to a loopback host, where browsers would
// refuse such cookies. Plain HTTP anywhere else still gets Secure cookies,
// which the browser will not store: sign-in fails safe rather than sending a
// session in the clear.
func plainLocalhost(r *http.Request) bool {
	if requestIsHTTPS(r) {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// requestOrigin is the origin the browser used for this page, to compare
// with the Origin header of its POSTs.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if requestIsHTTPS(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// contentSecurityPolicy is built once from the configuration. Scripts and
// styles come only from this origin (the bundle; no inline script or style
// anywhere), the SDK may talk to the Identity Platform endpoints (or the
// local emulator), and no one may frame the page.
func contentSecurityPolicy(c Config) string {
	connect := []string{"'self'"}
	if u := c.emulatorURL(); u != "" {
		connect = append(connect, u)
	} else {
		connect = append(connect, "https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com")
	}
	script := []string{"'self'"}
	frame := []string{"'none'"}
	if c.GoogleSignIn {
		// The popup flow loads Google's gapi loader and talks to the auth
		// domain through a hidden iframe.
		script = append(script, "https://apis.google.com")
		frame = []string{"https://" + c.FirebaseAuthDomain}
		connect = append(connect, "https://www.googleapis.com")
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src " + strings.Join(script, " "),
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src " + strings.Join(connect, " "),
		"frame-src " + strings.Join(frame, " "),
		"form-action 'self'",
		"base-uri 'none'",
		"object-src 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// securityHeaders sets the headers every response carries.
func securityHeaders(csp string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
			h.Set("X-Frame-Options", "DENY") // for browsers without frame-ancestors
			h.Set("Cross-Origin-Opener-Policy", "same-origin-allow-popups")
			if requestIsHTTPS(c.Request()) {
				h.Set("Strict-Transport-Security", "max-age=31536000")
			}
			return next(c)
		}
	}
}
