package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestHostileInputIsRefusedByTheFrontend attacks the frontend's session and
// sign-out endpoints (CSRF, forged tokens) and its HTTP parsing.
func TestHostileInputIsRefusedByTheFrontend(t *testing.T) {
	h := newHostileFixture(t)
	runAttacks(t, h.tk, frontendAttacks(h))
}

// frontendAttacks are the rows against the frontend.
func frontendAttacks(h *hostileFixture) []attack {
	// The fixture, under the names its rows use.
	tk, withHeader, withPayload, now, signed := h.tk, h.withHeader, h.withPayload, h.now, h.signed
	frontendHost, big, nested, origin, session, idTokenBody := h.frontendHost, h.big, h.nested, h.origin, h.session, h.idTokenBody
	conversation, smuggle := h.conversation, h.smuggle
	return []attack{
		// ---- Frontend ----
		{name: "frontend: POST /session from another origin is refused (CSRF)", doc: docCSRF,
			send:       session("/session", nil, func(h http.Header, _ *http.Cookie, _ *string) { h.Set("Origin", "https://evil.example") }),
			wantStatus: 403, wantJSON: map[string]string{"error": "This request did not come from this site."}},
		{name: "frontend: POST /session with Origin null is refused (CSRF)", doc: docCSRF,
			send:       session("/session", nil, func(h http.Header, _ *http.Cookie, _ *string) { h.Set("Origin", "null") }),
			wantStatus: 403, wantJSON: map[string]string{"error": "This request did not come from this site."}},
		{name: "frontend: POST /session with neither Origin nor Sec-Fetch-Site is refused (CSRF)", doc: docCSRF,
			send:       session("/session", nil, func(h http.Header, _ *http.Cookie, _ *string) { h.Del("Origin") }),
			wantStatus: 403, wantJSON: map[string]string{"error": "This request did not come from this site."}},
		{name: "frontend: POST /session marked cross-site by Sec-Fetch-Site is refused (CSRF)", doc: docCSRF,
			send: session("/session", nil, func(h http.Header, _ *http.Cookie, _ *string) {
				h.Del("Origin")
				h.Set("Sec-Fetch-Site", "cross-site")
			}), wantStatus: 403, wantJSON: map[string]string{"error": "This request did not come from this site."}},
		{name: "frontend: POST /session without the CSRF cookie is refused", doc: docCSRF,
			send:       session("/session", nil, func(_ http.Header, c *http.Cookie, _ *string) { c.Value = "" }),
			wantStatus: 403, wantJSON: map[string]string{"error": "Your page is out of date. Reload it and try again."}},
		{name: "frontend: POST /session with a token not matching the cookie is refused", doc: docCSRF,
			send:       session("/session", nil, func(_ http.Header, _ *http.Cookie, tok *string) { *tok = randomString(32) }),
			wantStatus: 403, wantJSON: map[string]string{"error": "Your page is out of date. Reload it and try again."}},
		{name: "frontend: POST /signout from another origin is refused (CSRF)", doc: docCSRF,
			send:       session("/signout", nil, func(h http.Header, _ *http.Cookie, _ *string) { h.Set("Origin", "https://evil.example") }),
			wantStatus: 403, wantJSON: map[string]string{"error": "This request did not come from this site."}},
		{name: "frontend: POST /signout without the CSRF token is refused", doc: docCSRF,
			send:       session("/signout", nil, func(_ http.Header, _ *http.Cookie, tok *string) { *tok = "" }),
			wantStatus: 403, wantJSON: map[string]string{"error": "Your page is out of date. Reload it and try again."}},
		{name: "frontend: sign-out ignores a next= parameter and redirects to / only (no open redirect)", doc: "OWASP Unvalidated Redirects and Forwards",
			send: func(t *testing.T) (exchange, error) {
				cookie, token := csrfPair(t)
				h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {origin}, "Cookie": {cookie.String()}}
				return do(t, http.MethodPost, env.frontendURL+"/signout?next=https://evil.example/&redirect=//evil.example",
					h, "csrf="+url.QueryEscape(token)+"&next=https%3A%2F%2Fevil.example")
			}, wantStatus: 303, check: wantHeader("Location", "/")},
		{name: "frontend: a scheme-relative path is not redirected off-site", doc: "OWASP Unvalidated Redirects and Forwards",
			send:       smuggle(frontendHost, false, "GET //evil.example/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
			wantStatus: 404, check: both(noOffsiteLocation, bodyHas("<strong>Not Found</strong>"))},
		{name: "frontend: a sign-out form body over 16 KB is too large", doc: "frontend/routes.go BodyLimit 16K on POST /signout",
			send: session("/signout", func(t *testing.T) string { return "csrf=" + strings.Repeat("a", 20<<10) }, func(h http.Header, _ *http.Cookie, _ *string) {
				h.Set("Content-Type", "application/x-www-form-urlencoded")
			}), wantStatus: 413, wantJSON: map[string]string{"error": "Request Entity Too Large"}},
		{name: "frontend: a planted CSRF cookie of the wrong shape is refused even when the header matches it", doc: docCSRF,
			send:       session("/session", nil, func(_ http.Header, c *http.Cookie, tok *string) { c.Value, *tok = "attacker", "attacker" }),
			wantStatus: 403, wantJSON: map[string]string{"error": "Your page is out of date. Reload it and try again."}},
		{name: "frontend: sign-in answers 204 with no Location whatever next= says (no open redirect)", doc: "OWASP Unvalidated Redirects and Forwards",
			send: func(t *testing.T) (exchange, error) {
				cookie, token := csrfPair(t)
				h := http.Header{"Content-Type": {"application/json"}, "Origin": {origin}, "Cookie": {cookie.String()}, "X-Csrf-Token": {token}}
				return do(t, http.MethodPost, env.frontendURL+"/session?next=https://evil.example/&continueUrl=//evil.example",
					h, mustJSON(t, map[string]string{"idToken": tk.valid}))
			}, wantStatus: 204, check: func(t *testing.T, got exchange) {
				if loc := got.header.Get("Location"); loc != "" {
					t.Errorf("sign-in answered Location %q; want none", loc)
				}
			}},
		{name: "frontend: a forged alg none token cannot become a session", doc: docCSRF,
			send: session("/session", idTokenBody(func(t *testing.T) string {
				return withHeader(t, map[string]any{"alg": "none", "kid": tk.header["kid"]})
			}), nil), wantStatus: 401, wantJSON: map[string]string{"error": "That sign-in was not accepted. Sign in again."},
			check: noSetCookie("session")},
		{name: "frontend: an expired token cannot become a session", doc: docCSRF,
			send: session("/session", idTokenBody(func(t *testing.T) string {
				return signed(t, map[string]any{"exp": now - 3600, "iat": now - 7200})
			}), nil), wantStatus: 401, wantJSON: map[string]string{"error": "That sign-in was not accepted. Sign in again."},
			check: noSetCookie("session")},
		{name: "frontend: a 40 KB POST /session body is refused", doc: "frontend/session.go maxSessionRequest = 32 KiB",
			send:       session("/session", func(t *testing.T) string { return `{"idToken":"` + strings.Repeat("a", 40<<10) + `"}` }, nil),
			wantStatus: 400, wantJSON: map[string]string{"error": "Expected a JSON body with an idToken."}},
		{name: "frontend: a JSON bomb as POST /session body is refused", doc: "frontend/session.go",
			send:       session("/session", func(t *testing.T) string { return `{"idToken":` + nested(12000) + `}` }, nil),
			wantStatus: 400, wantJSON: map[string]string{"error": "Expected a JSON body with an idToken."}},
		{name: "frontend: a 128 KB header exceeds its header limit", doc: docGoHeaders,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodGet, env.frontendURL+"/", http.Header{"Cookie": {"session=" + big}}, "")
			}, wantStatus: 431, wantBody: body431},
		{name: "frontend: a forged session cookie is refused by the frontend, never relayed to the gateway", doc: docFrontendRelay,
			send: func(t *testing.T) (exchange, error) {
				forged := withPayload(t, encodeSegment(t, tk.withClaims(map[string]any{"sub": "mallory"})))
				return do(t, http.MethodGet, env.frontendURL+"/api/secure.json", http.Header{"Cookie": {"session=" + forged}}, "")
			}, wantStatus: 401, wantJSON: map[string]string{"error": "That sign-in was not accepted. Sign in again."}},
		{name: "frontend: a forged bearer header beside a valid session cookie is refused (two credentials)", doc: docFrontendRelay,
			send: func(t *testing.T) (exchange, error) {
				forged := withPayload(t, encodeSegment(t, tk.withClaims(map[string]any{"sub": "mallory"})))
				return do(t, http.MethodGet, env.frontendURL+"/api/secure.json",
					http.Header{"Cookie": {boundSession(t, env.frontendURL, tk.valid).String()}, "Authorization": {"Bearer " + forged}}, "")
			}, wantStatus: 400, wantJSON: map[string]string{"error": "Send one sign-in: the session cookie or one Authorization: Bearer header."}},
		{name: "frontend: a valid ID token planted as a bare session cookie (login CSRF from another localhost port) is not a session", doc: docSessionBinding,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodGet, env.frontendURL+"/api/secure.json", http.Header{"Cookie": {"session=" + tk.valid}}, "")
			}, wantStatus: 401, wantJSON: map[string]string{"error": "That sign-in was not accepted. Sign in again."}},
		{name: "frontend: an account signed up but not verified is refused before the gateway (sign-up is open)", doc: docFrontendEmailVerified,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodGet, env.frontendURL+"/api/secure.json", http.Header{"Authorization": {"Bearer " + unverifiedToken(t)}}, "")
			}, wantStatus: 403, wantJSON: map[string]string{"error": "Verify your email address first: open the link we sent you."}},
		{name: "frontend: two Authorization headers are refused before the gateway", doc: docFrontendRelay,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodGet, env.frontendURL+"/api/secure.json", http.Header{"Authorization": {"Bearer " + tk.valid, "Bearer " + tk.valid}}, "")
			}, wantStatus: 400, wantJSON: map[string]string{"error": "Send one sign-in: the session cookie or one Authorization: Bearer header."}},
		{name: "frontend: an encoded traversal out of the static assets is not found", doc: "frontend/routes.go staticAssets",
			send:       smuggle(frontendHost, false, "GET /static/..%2f..%2fgo.mod HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
			wantStatus: 404, check: bodyHas("<strong>Not Found</strong>")},
		{name: "frontend: a request smuggled after a CL+TE POST /session is never answered", doc: docSmuggling,
			sendSeq: conversation(frontendHost, false, fmt.Sprintf(strings.Replace(strings.Replace(clTE, "/api/healthz", "/session", 1), "GET /api/secure.json", "GET /healthz", 1), "x", "x")), wantSeq: []int{403}},
	}
}
