package middleware

import (
	"net/http"
	"net/url"
	"strings"
)

// redacted replaces the value of a query parameter that may be a secret.
const redacted = "REDACTED"

// sensitiveParts are pieces of query parameter names whose values may be
// credentials: access_token, id_token, key (Google API keys), api_key,
// oobCode (Firebase action codes), code (OAuth), X-Goog-Signature,
// client_secret, password, ... A name that merely contains one is redacted
// too: a parameter wrongly hidden costs a little debugging, a token logged
// is a leak.
var sensitiveParts = []string{
	"token", "key", "secret", "passw", "sig", "code", "auth", "cred", "session", "cookie", "jwt", "assertion",
}

func sensitiveParam(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	name = strings.ToLower(name)
	for _, p := range sensitiveParts {
		if strings.Contains(name, p) {
			return true
		}
	}
	return false
}

// requestURL is httpRequest.requestUrl: scheme, host, path and query, with
// the value of every sensitive query parameter redacted (its name is kept:
// that it was there helps debugging).
func requestURL(r *http.Request) string {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	u := scheme + r.Host + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + redactQuery(r.URL.RawQuery)
	}
	return u
}

// redactQuery redacts a raw query, keeping its order and encoding. It
// splits on ';' as well as '&': some parsers still do, and a value they
// would read as a parameter must not reach the log.
func redactQuery(q string) string {
	var b strings.Builder
	done := 0 // q[:done] is in b, when b is used at all
	start := 0
	for i := 0; i <= len(q); i++ {
		if i < len(q) && q[i] != '&' && q[i] != ';' {
			continue
		}
		name, _, hasValue := strings.Cut(q[start:i], "=")
		if hasValue && sensitiveParam(name) {
			b.WriteString(q[done:start])
			b.WriteString(name)
			b.WriteString("=" + redacted)
			done = i
		}
		start = i + 1
	}
	if done == 0 {
		return q // nothing sensitive: no copy
	}
	b.WriteString(q[done:])
	return b.String()
}
