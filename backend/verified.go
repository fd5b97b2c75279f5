package backend

import (
	"strings"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/acme/cloudrun-istio-gke/internal/hopfacts"
	"github.com/labstack/echo/v4"
)

// serverTiming tells the caller how long the backend took, token check
// included, in Server-Timing (https://www.w3.org/TR/server-timing/).
func (s *Server) serverTiming(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		c.Response().Before(func() {
			c.Response().Header().Set("Server-Timing", hopfacts.FormatServerTiming(
				hopfacts.Timing{Name: "backend", Dur: time.Since(start), Desc: "backend"}))
		})
		return next(c)
	}
}

// reportVerified tells the caller, in response headers (hopfacts), what the
// backend verified of the request, so that the frontend can show the user
// how the request was let in.
func (s *Server) reportVerified(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Only a person's Identity Platform token is reported; another kind
		// of caller (a workload with a Google ID token) passes unreported.
		tok, ok := c.Get(ctxToken).(*auth.Token)
		if !ok || tok == nil {
			return next(c)
		}
		hopfacts.Report{
			Token: hopfacts.Token{
				Issuer:   tok.Issuer,
				Subject:  tok.Subject,
				Audience: tok.Audience,
				Expires:  time.Unix(tok.Expires, 0),
			},
			ClientCert: gatewayClientCert(c.Request().Header.Values("X-Forwarded-Client-Cert")),
		}.Write(c.Response().Header())
		return next(c)
	}
}

// gatewayClientCert reads the element the gateway added to
// x-forwarded-client-cert: the last one, since each proxy appends its own
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert).
// The gateway replaces whatever a client sent (SANITIZE_SET), and only the
// gateway reaches the backend, so the element describes the certificate the
// gateway verified. It is reported, never used to decide anything.
func gatewayClientCert(values []string) hopfacts.ClientCert {
	elems := splitOutsideQuotes(strings.Join(values, ","), ',')
	if len(elems) == 0 {
		return hopfacts.ClientCert{}
	}
	var cc hopfacts.ClientCert
	for _, pair := range splitOutsideQuotes(elems[len(elems)-1], ';') {
		k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
		v = strings.Trim(v, `"`)
		switch {
		case strings.EqualFold(k, "Hash"):
			cc.Hash = v
		case strings.EqualFold(k, "URI") && cc.URI == "":
			cc.URI = v
		}
	}
	return cc
}

// splitOutsideQuotes splits s at sep where sep is not inside double quotes
// (Subject and Cert values are quoted and may hold either separator).
func splitOutsideQuotes(s string, sep byte) []string {
	if s == "" {
		return nil
	}
	var out []string
	quoted, from := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++ // an escaped character inside quotes
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[from:i])
			from = i + 1
		}
	}
	return append(out, s[from:])
}
