package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// TestHostileInputIsRefusedByTheBackend reaches the backend directly, past the
// gateway: it must refuse on its own.
func TestHostileInputIsRefusedByTheBackend(t *testing.T) {
	h := newHostileFixture(t)
	runAttacks(t, h.tk, backendAttacks(h))
}

// backendAttacks are the rows against the backend, reached directly.
func backendAttacks(h *hostileFixture) []attack {
	// The fixture, under the names its rows use.
	st, tk, attackerHits, attacker, attackerSigned, withHeader := h.st, h.tk, h.attackerHits, h.attacker, h.attackerSigned, h.withHeader
	now, signed, backendHost, be, big := h.now, h.signed, h.backendHost, h.be, h.big
	conversation, smuggle, unauth, invalidRequest := h.conversation, h.smuggle, h.unauth, h.invalidRequest
	return []attack{
		// ---- Backend, reached directly: it refuses on its own ----
		{name: "backend: no token is refused with its own 401", doc: docBackendAuth,
			send: be(nil, nil), wantStatus: 401, wantJSON: unauth,
			check: wantHeader("Www-Authenticate", `Bearer realm="api"`)},
		{name: "backend: spoofed x-jwt-claim headers without a token are refused", doc: docBackendAuth,
			send:       be(nil, http.Header{"X-Jwt-Claim-Sub": {tk.uid}, "X-Jwt-Claim-Email": {"e2e-demo@example.com"}}),
			wantStatus: 401, wantJSON: unauth},
		{name: "backend: an alg none token is refused", doc: docBackendAuth,
			send: be(func(t *testing.T) string {
				return withHeader(t, map[string]any{"alg": "none", "kid": tk.header["kid"]})
			}, nil), wantStatus: 401, wantJSON: unauth,
			check: wantHeader("Www-Authenticate", `Bearer realm="api", error="invalid_token"`)},
		{name: "backend: HS256 keyed with the public key is refused", doc: docBackendAuth,
			send:       be(func(t *testing.T) string { return hmacWithPublicKey(t, tk, jwa.HS256(), tk.header["kid"]) }, nil),
			wantStatus: 401, wantJSON: unauth},
		{name: "backend: a token for another audience is refused", doc: docBackendAuth,
			send:       be(func(t *testing.T) string { return signed(t, map[string]any{"aud": "another-project"}) }, nil),
			wantStatus: 401, wantJSON: unauth},
		{name: "backend: a token from the attacker's key with a jku header is refused", doc: docBackendAuth,
			send: be(func(t *testing.T) string {
				return attackerSigned(t, map[string]any{"jku": attacker.URL}, tk.claims)
			}, nil), wantStatus: 401, wantJSON: unauth,
			check: func(t *testing.T, _ exchange) { noAttackerHits(t, &attackerHits) }},
		{name: "backend: an expired token is refused", doc: docBackendAuth,
			send:       be(func(t *testing.T) string { return signed(t, map[string]any{"exp": now - 3600, "iat": now - 7200}) }, nil),
			wantStatus: 401, wantJSON: unauth},
		{name: "backend: a 20 KB token is refused before parsing", doc: docBackendAuth,
			send: be(func(t *testing.T) string { return strings.Repeat("a", 20<<10) }, nil), wantStatus: 401, wantJSON: unauth},
		{name: "backend: a Basic credential is not a bearer token", doc: docBackendAuth,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodGet, st.BackendURL+"/api/secure.json", http.Header{"Authorization": {"Basic " + tk.valid}}, "")
			}, wantStatus: 401, wantJSON: unauth},
		{name: "backend: a token in the query string is refused as a second way to send one", doc: docOneToken,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodGet, st.BackendURL+"/api/secure.json?access_token="+url.QueryEscape(tk.valid), nil, "")
			}, wantStatus: 400, wantJSON: invalidRequest},
		{name: "backend: two Authorization headers are refused, even both valid", doc: docOneToken,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodGet, st.BackendURL+"/api/secure.json",
					http.Header{"Authorization": {"Bearer " + tk.valid, "Bearer " + tk.valid}}, "")
			}, wantStatus: 400, wantJSON: invalidRequest,
			check: wantHeader("Www-Authenticate", `Bearer realm="api", error="invalid_request"`)},
		{name: "backend: a valid token whose email is not verified is forbidden, and told why", doc: docEmailVerified,
			send:       be(func(t *testing.T) string { return signed(t, map[string]any{"email_verified": false}) }, nil),
			wantStatus: 403, wantJSON: map[string]string{"error": "email_not_verified"}},
		{name: "backend: a valid token whose email_verified is the string \"true\" is forbidden too", doc: docEmailVerified,
			send:       be(func(t *testing.T) string { return signed(t, map[string]any{"email_verified": "true"}) }, nil),
			wantStatus: 403, wantJSON: map[string]string{"error": "email_not_verified"}},
		{name: "backend: dot-dot out of the health check is not resolved into the secret", doc: docBackendAuth,
			send:       smuggle(backendHost, false, "GET /api/healthz/../secure.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
			wantStatus: 404, wantJSON: map[string]string{"error": "not_found"}},
		{name: "backend: a 128 KB header exceeds its header limit", doc: docGoHeaders,
			send: be(nil, http.Header{"X-Big": {big}}), wantStatus: 431, wantBody: body431},
		{name: "backend: a body beyond 4 KB on its GET-only API is too large", doc: docBackendAuth,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodPost, st.BackendURL+"/api/healthz", http.Header{"Content-Type": {"application/json"}}, strings.Repeat("x", 8<<10))
			}, wantStatus: 413, wantJSON: map[string]string{"error": "bad_request"}},
		{name: "backend: a request smuggled after a CL+TE body is never answered", doc: docSmuggling,
			sendSeq: conversation(backendHost, false, fmt.Sprintf(strings.Replace(clTE, "GET /api/secure.json", "GET /api/healthz", 1), "x", "x")), wantSeq: []int{405}},
		{name: "backend: two Host headers are a bad request", doc: "RFC 9112 section 3.2",
			send: smuggle(backendHost, false, fmt.Sprintf(twoHosts, "x")), wantStatus: 400, wantBody: "400 Bad Request"},
		{name: "backend: a bare CR inside a header value is a bad request", doc: docSmuggling,
			send: smuggle(backendHost, false, fmt.Sprintf(bareCR, "x")), wantStatus: 400, wantBody: "400 Bad Request"},
		{name: "backend: two different Content-Lengths are refused", doc: docSmuggling,
			send: smuggle(backendHost, false, fmt.Sprintf(clCL, "x")), wantStatus: 400, wantBody: body400},
	}
}
