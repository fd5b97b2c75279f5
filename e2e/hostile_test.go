package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Documentation the hostile rows follow, beyond those in gateway_test.go.
const (
	docGoHeaders     = "net/http Server.MaxHeaderBytes (64 KiB in internal/serve): 431 Request Header Fields Too Large"
	docSmuggling     = "RFC 9112 section 6.3 (a message with both Transfer-Encoding and Content-Length, or differing Content-Lengths, may be rejected or must be framed by Transfer-Encoding); net/http refuses differing Content-Lengths with 400 and lets Transfer-Encoding win over Content-Length"
	docJWTHeaders    = "local/gateway/authn: keys come from the JWKS only; jku, x5u and jwk headers are never followed; crit is refused"
	docClockSkew     = "jwt_verify_lib kClockSkewInSecond = 60 for nbf and exp; Envoy does not check iat (the backend's Firebase SDK does)"
	docOutputClaims  = "https://istio.io/latest/docs/reference/config/security/jwt/#ClaimToHeader (client-sent copies of output headers are replaced)"
	docCSRF          = "frontend/csrf.go: Origin (or Sec-Fetch-Site same-origin) and a double-submit token, both required"
	docEnumeration   = "https://cloud.google.com/identity-platform/docs/admin/email-enumeration-protection (INVALID_LOGIN_CREDENTIALS for both)"
	docEmulatorBody  = "local/identity: request bodies are bounded at 64 KiB (413 INVALID_ARGUMENT) and must be one JSON value"
	docEmailVerified = "istio/authorizationpolicy-gateway.yaml (x-jwt-claim-email-verified must be \"true\"; Istio matches only string claims: https://istio.io/latest/docs/reference/config/security/conditions/); backend/middleware.go (email_verified must be the boolean true)"
	docEnvoyCodec    = "local/gateway/codec.go: envoyproxy/envoy conn_manager_utility.cc maybeNormalizePath (a fragment is rejected, 400), http1 codec (headers over max_request_headers_kb, default 60 KiB: 431)"
	docBackendAuth   = "backend: every refusal is 401 {\"error\":\"unauthenticated\"}; it verifies on its own, whatever stands in front"
)

// exchange is one request and what came back.
type exchange = gatewayResponse

// attack is one hostile request and the exact refusal it must meet.
type attack struct {
	name string
	doc  string
	send func(t *testing.T) (exchange, error)
	// wantStatus is always checked. wantBody, when set, is the exact body;
	// wantJSON, when set, maps dotted JSON paths to exact values.
	wantStatus int
	wantBody   string
	wantJSON   map[string]string
	check      func(t *testing.T, got exchange) // anything more
	// sendSeq, instead of send, writes raw bytes that may hold a smuggled
	// second request and returns every response on the connection; wantSeq
	// is their statuses in order.
	sendSeq func(t *testing.T) ([]exchange, error)
	wantSeq []int
}

func TestHostileInputIsRefusedEverywhere(t *testing.T) {
	st := requireLocal(t, "the hostile table crafts tokens with the local emulator's key and reaches every server directly")
	tk := userTokens(t)

	// An attacker's own key and JWKS, to sign tokens whose headers point at it.
	attackerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		pub, _ := jwk.Import(attackerKey.Public())
		set := jwk.NewSet()
		set.AddKey(pub)
		json.NewEncoder(w).Encode(set)
	}))
	defer attacker.Close()
	attackerSigned := func(t *testing.T, extra map[string]any, claims map[string]any) string {
		hdr := jws.NewHeaders()
		hdr.Set(jws.TypeKey, "JWT")
		hdr.Set(jws.KeyIDKey, tk.header["kid"])
		for k, v := range extra {
			if err := hdr.Set(k, v); err != nil {
				t.Fatalf("header %s: %v", k, err)
			}
		}
		tok, err := jws.Sign([]byte(mustJSON(t, claims)), jws.WithKey(jwa.ES256(), attackerKey, jws.WithProtectedHeaders(hdr)))
		if err != nil {
			t.Fatalf("signing the attacker's token: %v", err)
		}
		return string(tok)
	}
	// withHeader replaces the valid token's header, keeping its payload and
	// signature: the header is signed too, so only the kid lookup and the
	// signature are left to refuse it.
	withHeader := func(t *testing.T, h map[string]any) string {
		parts := strings.Split(tk.valid, ".")
		parts[0] = encodeSegment(t, h)
		return strings.Join(parts, ".")
	}
	withPayload := func(t *testing.T, payload string) string {
		parts := strings.Split(tk.valid, ".")
		parts[1] = payload
		return strings.Join(parts, ".")
	}
	now := time.Now().Unix()
	signed := func(t *testing.T, changes map[string]any) string { return signLocally(t, tk.withClaims(changes)) }
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	gw := func(path string, h func(t *testing.T) http.Header) func(t *testing.T) (exchange, error) {
		return func(t *testing.T) (exchange, error) {
			var hdr http.Header
			if h != nil {
				hdr = h(t)
			}
			return sendRaw(t, clientTLS(t, env.clientCertDir, true), path, hdr)
		}
	}
	gwToken := func(tok func(t *testing.T) string) func(t *testing.T) (exchange, error) {
		return gw("/api/secure.json", func(t *testing.T) http.Header { return bearer(tok(t)) })
	}
	backendHost := hostPort(t, st.BackendURL)
	frontendHost := hostPort(t, env.frontendURL)
	identityHost := hostPort(t, st.IdentityURL)
	be := func(tok func(t *testing.T) string, h http.Header) func(t *testing.T) (exchange, error) {
		return func(t *testing.T) (exchange, error) {
			hdr := http.Header{}
			for k, v := range h {
				hdr[k] = v
			}
			if tok != nil {
				hdr.Set("Authorization", "Bearer "+tok(t))
			}
			return do(t, http.MethodGet, st.BackendURL+"/api/secure.json", hdr, "")
		}
	}
	big := strings.Repeat("A", 128<<10) // well past 64 KiB plus net/http's bufio slop
	nested := func(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }
	signInBody := func(email, password string) string {
		return mustJSON(t, map[string]any{"email": email, "password": password, "returnSecureToken": true})
	}
	emu := func(method, body string) func(t *testing.T) (exchange, error) {
		return func(t *testing.T) (exchange, error) {
			return do(t, http.MethodPost, st.IdentityURL+"/identitytoolkit.googleapis.com/v1/"+method+"?key=emulator-api-key",
				http.Header{"Content-Type": {"application/json"}}, body)
		}
	}
	origin := env.frontendURL
	// session posts to POST /session (or /signout) with the CSRF material
	// mangled by change; a fresh page gives a matching cookie and token.
	session := func(path string, body func(t *testing.T) string, change func(h http.Header, cookie *http.Cookie, token *string)) func(t *testing.T) (exchange, error) {
		return func(t *testing.T) (exchange, error) {
			cookie, token := csrfPair(t)
			h := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}, "Origin": {origin}}
			if change != nil {
				change(h, cookie, &token)
			}
			if token != "" {
				h.Set("X-CSRF-Token", token)
			}
			if cookie != nil && cookie.Value != "" {
				h.Add("Cookie", cookie.String())
			}
			b := `{"idToken":"x"}`
			if body != nil {
				b = body(t)
			}
			return do(t, http.MethodPost, env.frontendURL+path, h, b)
		}
	}
	idTokenBody := func(tok func(t *testing.T) string) func(t *testing.T) string {
		return func(t *testing.T) string { return mustJSON(t, map[string]string{"idToken": tok(t)}) }
	}
	conversation := func(host string, useTLS bool, raw string) func(t *testing.T) ([]exchange, error) {
		return func(t *testing.T) ([]exchange, error) { return rawConversation(t, host, useTLS, raw) }
	}
	oneAnswerThenClose := func(host string, useTLS bool, raw string) func(t *testing.T) (exchange, error) {
		return func(t *testing.T) (exchange, error) { return rawOneAnswerThenClose(t, host, useTLS, raw) }
	}
	smuggle := func(host string, useTLS bool, head string) func(t *testing.T) (exchange, error) {
		return func(t *testing.T) (exchange, error) {
			return rawExchange(t, host, useTLS, head)
		}
	}
	gwAddr := gatewayAddr(t)
	const clTE = "POST /api/healthz HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/secure.json HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
	const clCL = "POST /api/healthz HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"
	const teTE = "POST /api/healthz HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
	const teSpace = "POST /api/healthz HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
	const bareCR = "GET /api/healthz HTTP/1.1\r\nHost: %s\r\nX-A: a\rX-Injected: b\r\n\r\n"
	const twoHosts = "GET /api/healthz HTTP/1.1\r\nHost: %s\r\nHost: evil.example\r\n\r\n"
	const nulHeader = "GET /api/healthz HTTP/1.1\r\nHost: %s\r\nX-A: a\x00b\r\n\r\n"
	gwName := env.gatewayServerName
	unauth := map[string]string{"error": "unauthenticated"}
	invalidRequest := map[string]string{"error": "invalid_request"}
	// net/http's own refusals, written before any handler runs (the local
	// gateway's codec is net/http's too; Envoy's wording differs).
	const body400 = "400 Bad Request"
	const body431 = "431 Request Header Fields Too Large"

	tests := []attack{
		// ---- Gateway: JWT header tricks ----
		{name: "gateway: alg None in another case is not an implemented algorithm", doc: docJWTParse,
			send: gwToken(func(t *testing.T) string {
				return withHeader(t, map[string]any{"alg": "None", "typ": "JWT", "kid": tk.header["kid"]})
			}), wantStatus: 401, wantBody: bodyBadAlg},
		{name: "gateway: alg NONE upper-case is not an implemented algorithm", doc: docJWTParse,
			send: gwToken(func(t *testing.T) string {
				return withHeader(t, map[string]any{"alg": "NONE", "kid": tk.header["kid"]})
			}), wantStatus: 401, wantBody: bodyBadAlg},
		{name: "gateway: a token without alg is malformed", doc: docJWTParse,
			send:       gwToken(func(t *testing.T) string { return withHeader(t, map[string]any{"kid": tk.header["kid"]}) }),
			wantStatus: 401, wantBody: "Jwt header [alg] field is required and must be a string"},
		{name: "gateway: HS512 keyed with the issuer's public key finds no key", doc: docJWKSMatch,
			send:       gwToken(func(t *testing.T) string { return hmacWithPublicKey(t, tk, jwa.HS512(), tk.header["kid"]) }),
			wantStatus: 401, wantBody: bodyNoKey},
		{name: "gateway: HS256 keyed with the public key and no kid finds no key", doc: docJWKSMatch,
			send:       gwToken(func(t *testing.T) string { return hmacWithPublicKey(t, tk, jwa.HS256(), nil) }),
			wantStatus: 401, wantBody: bodyNoKey},
		{name: "gateway: a kid with a path traversal matches no key", doc: docJWKSMatch,
			send: gwToken(func(t *testing.T) string {
				return withHeader(t, map[string]any{"alg": "RS256", "kid": "../../../../../../etc/passwd"})
			}), wantStatus: 401, wantBody: bodyNoKey},
		{name: "gateway: a kid with an SQL injection matches no key", doc: docJWKSMatch,
			send: gwToken(func(t *testing.T) string {
				return withHeader(t, map[string]any{"alg": "RS256", "kid": "x' OR '1'='1' --"})
			}), wantStatus: 401, wantBody: bodyNoKey},
		{name: "gateway: a kid naming a URL is not fetched and matches no key", doc: docJWKSMatch,
			send: gwToken(func(t *testing.T) string {
				return withHeader(t, map[string]any{"alg": "RS256", "kid": attacker.URL + "/key"})
			}), wantStatus: 401, wantBody: bodyNoKey,
			check: func(t *testing.T, _ exchange) { noAttackerHits(t, &attackerHits) }},
		{name: "gateway: a kid that is a number is malformed", doc: docJWTParse,
			send:       gwToken(func(t *testing.T) string { return withHeader(t, map[string]any{"alg": "RS256", "kid": 7}) }),
			wantStatus: 401, wantBody: "Jwt header [kid] field is not a string"},
		{name: "gateway: a jku header pointing at the attacker's JWKS is ignored", doc: docJWTHeaders,
			send: gwToken(func(t *testing.T) string {
				return attackerSigned(t, map[string]any{"jku": attacker.URL}, tk.claims)
			}), wantStatus: 401, wantBody: bodyNoKey,
			check: func(t *testing.T, _ exchange) { noAttackerHits(t, &attackerHits) }},
		{name: "gateway: an x5u header pointing at the attacker is ignored", doc: docJWTHeaders,
			send: gwToken(func(t *testing.T) string {
				return attackerSigned(t, map[string]any{"x5u": attacker.URL + "/cert.pem"}, tk.claims)
			}), wantStatus: 401, wantBody: bodyNoKey,
			check: func(t *testing.T, _ exchange) { noAttackerHits(t, &attackerHits) }},
		{name: "gateway: an embedded jwk header carrying the attacker's key is ignored", doc: docJWTHeaders,
			send: gwToken(func(t *testing.T) string {
				pub, err := jwk.Import(attackerKey.Public())
				if err != nil {
					t.Fatal(err)
				}
				return attackerSigned(t, map[string]any{"jwk": pub}, tk.claims)
			}), wantStatus: 401, wantBody: bodyNoKey},
		{name: "gateway: RS256 header with a crit extension and the real kid fails verification", doc: docJWTHeaders,
			send: gwToken(func(t *testing.T) string {
				return withHeader(t, map[string]any{"alg": "RS256", "kid": tk.header["kid"], "crit": []string{"exp"}, "exp": 1})
			}), wantStatus: 401, wantBody: bodyBadSig},
		// ---- Gateway: sizes and shapes ----
		{name: "gateway: a 128 KB bearer token exceeds the header limit", doc: docGoHeaders,
			send:       gw("/api/secure.json", func(t *testing.T) http.Header { return bearer(big) }),
			wantStatus: 431, wantBody: body431},
		{name: "gateway: a 20 KB token of garbage is not JSON", doc: docJWTParse,
			send: gwToken(func(t *testing.T) string {
				return strings.Repeat("QUFB", 5000) + "." + tk.payload + ".c2ln"
			}), wantStatus: 401, wantBody: "Jwt header is an invalid JSON"},
		{name: "gateway: a JWT payload nested 20,000 deep is invalid JSON", doc: docJWTParse,
			send: gwToken(func(t *testing.T) string {
				return withPayload(t, encodeRaw(`{"a":`+nested(20000)+`}`))
			}), wantStatus: 401, wantBody: "Jwt payload is an invalid JSON"},
		{name: "gateway: a well-signed payload nested 1,000 deep with a string iat is refused on the claim type, not crashed", doc: docJWTParse,
			send: gwToken(func(t *testing.T) string {
				var v any = "x"
				for range 1000 {
					v = []any{v}
				}
				return signed(t, map[string]any{"bomb": v, "iat": "not a number"})
			}), wantStatus: 401, wantBody: "Jwt payload [iat] field is not an integer"},
		// ---- Gateway: tokens in two places (issue 13: one token, in one place) ----
		{name: "gateway: a forged query token beside a valid header token is not read by the gateway and makes the backend refuse", doc: docOneToken,
			send:       gw("/api/secure.json?access_token=not-a-jwt", func(t *testing.T) http.Header { return bearer(tk.valid) }),
			wantStatus: 400, wantJSON: invalidRequest, check: wantHeader("Www-Authenticate", `Bearer realm="api", error="invalid_request"`)},
		{name: "gateway: a valid query token does not carry a forged header token: only the header is read, and it fails", doc: docOneToken,
			send: gw("/api/secure.json?access_token="+url.QueryEscape(tk.valid), func(t *testing.T) http.Header {
				return bearer(withPayload(t, encodeSegment(t, tk.withClaims(map[string]any{"sub": "mallory"}))))
			}), wantStatus: 401, wantBody: bodyBadSig},
		{name: "gateway: a valid query token alone is no token: only the Authorization header is read", doc: docOneToken,
			send:       gw("/api/secure.json?access_token="+url.QueryEscape(tk.valid), nil),
			wantStatus: 403, wantBody: bodyRBACDenied},
		{name: "gateway: two Authorization headers, the second forged, are one joined value whose token is malformed", doc: docJoined,
			send: gw("/api/secure.json", func(t *testing.T) http.Header {
				return http.Header{"Authorization": {"Bearer " + tk.valid, "Bearer not-a-jwt"}}
			}), wantStatus: 401, wantBody: "Jwt signature is an invalid Base64url encoded"},
		{name: "gateway: two valid Authorization headers are refused as one malformed token", doc: docJoined,
			send: gw("/api/secure.json", func(t *testing.T) http.Header {
				return http.Header{"Authorization": {"Bearer " + tk.valid, "Bearer " + tk.valid}}
			}), wantStatus: 401, wantBody: bodyBadFormat},
		{name: "gateway: a lowercase bearer header before a Bearer one passes the gateway on the second and the backend refuses both", doc: docJoined + "; " + docOneToken,
			send: gw("/api/secure.json", func(t *testing.T) http.Header {
				return http.Header{"Authorization": {"bearer " + tk.valid, "Bearer " + tk.valid}}
			}), wantStatus: 400, wantJSON: invalidRequest},
		// ---- Gateway: only verified emails (issue 13: sign-up is open, so an unverified address proves nothing) ----
		{name: "gateway: a well-signed token whose email is not verified is denied", doc: docEmailVerified,
			send:       gwToken(func(t *testing.T) string { return signed(t, map[string]any{"email_verified": false}) }),
			wantStatus: 403, wantBody: bodyRBACDenied},
		{name: "gateway: a well-signed token without email_verified is denied", doc: docEmailVerified,
			send: gwToken(func(t *testing.T) string {
				c := tk.withClaims(nil)
				delete(c, "email_verified")
				return signLocally(t, c)
			}), wantStatus: 403, wantBody: bodyRBACDenied},
		{name: "gateway: a client's own x-jwt-claim-email-verified: true does not stand in for the claim", doc: docEmailVerified,
			send: gw("/api/secure.json", func(t *testing.T) http.Header {
				return http.Header{"Authorization": {"Bearer " + signed(t, map[string]any{"email_verified": false})},
					"X-Jwt-Claim-Email-Verified": {"true"}}
			}), wantStatus: 403, wantBody: bodyRBACDenied},
		// ---- Gateway: time ----
		{name: "gateway: nbf ten minutes ahead is not yet valid", doc: docClockSkew,
			send:       gwToken(func(t *testing.T) string { return signed(t, map[string]any{"nbf": now + 600}) }),
			wantStatus: 401, wantBody: "Jwt not yet valid"},
		{name: "gateway: nbf 90 s ahead is past the 60 s skew", doc: docClockSkew,
			send:       gwToken(func(t *testing.T) string { return signed(t, map[string]any{"nbf": now + 90}) }),
			wantStatus: 401, wantBody: "Jwt not yet valid"},
		{name: "gateway: exp 90 s ago is past the 60 s skew", doc: docClockSkew,
			send:       gwToken(func(t *testing.T) string { return signed(t, map[string]any{"exp": now - 90}) }),
			wantStatus: 401, wantBody: bodyExpired},
		{name: "gateway: exp 20 s ago is inside the skew and reaches the backend", doc: docClockSkew,
			send:       gwToken(func(t *testing.T) string { return signed(t, map[string]any{"exp": now - 20}) }),
			wantStatus: 200},
		{name: "gateway: iat an hour ahead passes Envoy but the backend refuses it", doc: docClockSkew,
			send: gwToken(func(t *testing.T) string {
				return signed(t, map[string]any{"iat": now + 3600, "exp": now + 7200, "auth_time": now})
			}), wantStatus: 401, wantJSON: unauth},
		{name: "gateway: a negative exp is malformed", doc: docJWTParse,
			send:       gwToken(func(t *testing.T) string { return signed(t, map[string]any{"exp": -1}) }),
			wantStatus: 401, wantBody: "Jwt payload [exp] field is not a positive 64 bit integer"},
		// ---- Gateway: spoofed claim headers ----
		{name: "gateway: a spoofed x-jwt-claim-sub without a token is still denied", doc: docOutputClaims,
			send: gw("/api/secure.json", func(t *testing.T) http.Header {
				return http.Header{"X-Jwt-Claim-Sub": {tk.uid}, "X-Jwt-Claim-Email": {"admin@acme.test"}}
			}), wantStatus: 403, wantBody: bodyRBACDenied},
		// ---- Gateway: header injection, CRLF and smuggling on a raw TLS connection ----
		{name: "gateway: a bare CR inside a header value is a bad request", doc: docSmuggling,
			send: smuggle(gwAddr, true, fmt.Sprintf(bareCR, gwName)), wantStatus: 400, wantBody: "400 Bad Request"},
		{name: "gateway: two Host headers are a bad request", doc: "RFC 9112 section 3.2 (a request with more than one Host is answered 400)",
			send: smuggle(gwAddr, true, fmt.Sprintf(twoHosts, gwName)), wantStatus: 400, wantBody: "400 Bad Request"},
		{name: "gateway: a NUL inside a header value is a bad request", doc: docSmuggling,
			send: smuggle(gwAddr, true, fmt.Sprintf(nulHeader, gwName)), wantStatus: 400, wantBody: body400},
		// Envoy answers Content-Length with Transfer-Encoding 400
		// (Http1ProtocolOptions.allow_chunked_length, default false). The
		// local gateway cannot see the conflict: net/http resolves it while
		// parsing (Transfer-Encoding wins, Content-Length is dropped) and
		// hands over a plain chunked request. It takes RFC 9112's other
		// road instead, which is as safe: the body is framed by its chunks,
		// the route answers (the backend's 405 for POST), and the
		// connection closes after that answer, so no byte after the body is
		// ever read as a request (internal/serve closeAfterChunkedRequest, which
		// every server of the project runs behind).
		{name: "gateway: Content-Length with Transfer-Encoding is framed by its chunks, answered once, and the connection closed", doc: docSmuggling + "; RFC 9112 section 6.1 (the server MUST close the connection after responding to such a request); https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/core/v3/protocol.proto (Http1ProtocolOptions.allow_chunked_length: Envoy answers 400 instead)",
			send: oneAnswerThenClose(gwAddr, true, fmt.Sprintf(clTE, gwName, gwName)), wantStatus: 405},
		{name: "gateway: a request smuggled after a CL+TE body is never answered, even one the policy lets through", doc: docSmuggling,
			sendSeq: conversation(gwAddr, true, fmt.Sprintf(strings.Replace(clTE, "GET /api/secure.json", "GET /api/healthz", 1), gwName, gwName)), wantSeq: []int{405}},
		{name: "gateway: two different Content-Lengths are refused", doc: docSmuggling,
			send: smuggle(gwAddr, true, fmt.Sprintf(clCL, gwName)), wantStatus: 400, wantBody: body400},
		{name: "gateway: an unknown transfer coding is not implemented", doc: docSmuggling,
			send: smuggle(gwAddr, true, fmt.Sprintf(teTE, gwName)), wantStatus: 501, wantBody: "Unsupported transfer encoding"},
		{name: "gateway: whitespace before the colon of Transfer-Encoding is refused", doc: docSmuggling,
			send: smuggle(gwAddr, true, fmt.Sprintf(teSpace, gwName)), wantStatus: 400, wantBody: "400 Bad Request: invalid header name"},
		// ---- Gateway: what Envoy refuses before any filter (issue 13 item 6) ----
		{name: "gateway: a # in the request line is Envoy's 400 with an empty body, not a %23 in the backend's path", doc: docEnvoyCodec,
			send:       smuggle(gwAddr, true, "GET /api/healthz#/../secure.json HTTP/1.1\r\nHost: "+gwName+"\r\nConnection: close\r\n\r\n"),
			wantStatus: 400, check: func(t *testing.T, got exchange) {
				if got.body != "" {
					t.Errorf("body %q; want Envoy's empty local reply", got.body)
				}
			}},
		{name: "gateway: 61 KiB of headers is Envoy's 431, under net/http's own limit", doc: docEnvoyCodec,
			send: gw("/api/healthz", func(t *testing.T) http.Header {
				return http.Header{"X-Filler": {strings.Repeat("a", 61<<10)}}
			}), wantStatus: 431, wantBody: "Request Header Fields Too Large"},
		{name: "gateway: an encoded CRLF in the path cannot inject a header", doc: docNormalization,
			send:       gw("/api/secure.json%0d%0aX-Jwt-Claim-Sub:%20admin", nil),
			wantStatus: 403, wantBody: bodyRBACDenied},
		{name: "gateway: a semicolon path parameter does not reach the health check", doc: docPathPractices,
			send: gw("/api/secure.json;/api/healthz", nil), wantStatus: 403, wantBody: bodyRBACDenied},
		{name: "gateway: a fragment-like %23 does not cut the path to the health check", doc: docNormalization,
			send: gw("/api/healthz%23/../secure.json", nil), wantStatus: 403, wantBody: bodyRBACDenied},

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

		// ---- Identity emulator ----
		{name: "emulator: an unknown email answers INVALID_LOGIN_CREDENTIALS (no enumeration)", doc: docEnumeration,
			send:       emu("accounts:signInWithPassword", signInBody("nobody-"+randomString(6)+"@example.com", "whatever-password")),
			wantStatus: 400, wantJSON: map[string]string{"error.message": "INVALID_LOGIN_CREDENTIALS"}},
		{name: "emulator: a wrong password answers the same INVALID_LOGIN_CREDENTIALS", doc: docEnumeration,
			send:       emu("accounts:signInWithPassword", signInBody(env.email, "wrong-"+randomString(6))),
			wantStatus: 400, wantJSON: map[string]string{"error.message": "INVALID_LOGIN_CREDENTIALS"}},
		{name: "emulator: a body over 64 KiB is refused", doc: docEmulatorBody,
			send:       emu("accounts:signInWithPassword", signInBody(env.email, strings.Repeat("p", 70<<10))),
			wantStatus: 413, wantJSON: map[string]string{"error.message": "Request payload size exceeds the limit: 65536 bytes.", "error.status": "INVALID_ARGUMENT"}},
		{name: "emulator: a JSON bomb nested 20,000 deep is refused", doc: docEmulatorBody,
			send:       emu("accounts:signInWithPassword", `{"email":`+nested(20000)+`}`),
			wantStatus: 400, wantJSON: map[string]string{"error.status": "INVALID_ARGUMENT"}},
		{name: "emulator: trailing data after the JSON object is refused", doc: docEmulatorBody,
			send:       emu("accounts:signInWithPassword", signInBody(env.email, "x")+`{"email":"other@example.com"}`),
			wantStatus: 400, wantJSON: map[string]string{"error.message": "Invalid JSON payload received. trailing data after the JSON object"}},
		{name: "emulator: an email with CRLF is not a valid email", doc: docEmulatorBody,
			send:       emu("accounts:signInWithPassword", signInBody("a@example.com\r\nBcc: b@example.com", "x")),
			wantStatus: 400, wantJSON: map[string]string{"error.message": "INVALID_EMAIL"}},
		{name: "emulator: a 128 KB header exceeds its header limit", doc: docGoHeaders,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodGet, st.IdentityURL+"/", http.Header{"X-Big": {big}}, "")
			}, wantStatus: 431, wantBody: body431},
		{name: "emulator: a request smuggled after a CL+TE body is never answered", doc: docSmuggling,
			sendSeq: conversation(identityHost, false, fmt.Sprintf(strings.NewReplacer(
				"POST /api/healthz", "POST /identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=k",
				"GET /api/secure.json", "GET /service_accounts/v1/jwk/securetoken@system.gserviceaccount.com").Replace(clTE), identityHost, identityHost)),
			wantSeq: []int{400}},
		{name: "emulator: two different Content-Lengths are refused", doc: docSmuggling,
			send:       smuggle(identityHost, false, fmt.Sprintf(strings.Replace(clCL, "/api/healthz", "/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=k", 1), "x")),
			wantStatus: 400},
	}
	if len(tests) < 60 {
		t.Fatalf("the table has %d attacks; issue 7 asks for at least 60", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log("follows", tt.doc)
			if tt.sendSeq != nil {
				seq, err := tt.sendSeq(t)
				if err != nil {
					t.Fatalf("sending: %v; want responses %v", err, tt.wantSeq)
				}
				var got []int
				for _, e := range seq {
					got = append(got, e.status)
					if strings.Contains(e.body, "Hello World") {
						t.Errorf("a smuggled request reached the secret: %q", e.body)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.wantSeq) {
					t.Errorf("the connection answered %v; want %v", got, tt.wantSeq)
				}
				return
			}
			got, err := tt.send(t)
			if err != nil {
				t.Fatalf("sending: %v; want %d", err, tt.wantStatus)
			}
			if got.status != tt.wantStatus {
				t.Fatalf("answered %v; want %d %q %v", got, tt.wantStatus, tt.wantBody, tt.wantJSON)
			}
			if tt.wantBody != "" && got.body != tt.wantBody {
				t.Errorf("body = %q; want exactly %q", got.body, tt.wantBody)
			}
			for path, want := range tt.wantJSON {
				if v := jsonAt(got.body, path); v != want {
					t.Errorf("JSON %s = %q; want %q (body %q)", path, v, want, got.body)
				}
			}
			if tt.wantStatus == http.StatusOK && !strings.Contains(got.body, `"uid":"`+tk.uid+`"`) {
				t.Errorf("a 200 must be the backend's answer for %s; got %q", tk.uid, got.body)
			}
			if tt.wantStatus != http.StatusOK && strings.Contains(got.body, "Hello World") {
				t.Errorf("a refusal carried the secret message: %q", got.body)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

// TestSpoofedClaimHeadersNeverReachTheBackendAsWritten puts a recording
// upstream behind a gateway of the test's own, so that what the backend
// would receive can be seen.
func TestSpoofedClaimHeadersNeverReachTheBackendAsWritten(t *testing.T) {
	tk := userTokens(t)
	got := make(chan http.Header, 8)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer upstream.Close()
	g := startOwnGateway(t, ownGatewayOptions{upstream: hostPort(t, upstream.URL)})
	tests := []struct {
		name   string
		header http.Header
		want   map[string]string // header → value the upstream must see ("" = absent)
	}{
		{name: "a spoofed x-jwt-claim-sub is replaced by the token's sub", header: http.Header{"X-Jwt-Claim-Sub": {"admin"}},
			want: map[string]string{"X-Jwt-Claim-Sub": tk.uid}},
		{name: "a spoofed x-jwt-claim-email in odd case is replaced by the token's email", header: http.Header{"X-JWT-CLAIM-EMAIL": {"admin@acme.test"}},
			want: map[string]string{"X-Jwt-Claim-Email": fmt.Sprint(tk.claims["email"])}},
		{name: "two spoofed x-jwt-claim-sub values leave only the token's one", header: http.Header{"X-Jwt-Claim-Sub": {"admin", "root"}},
			want: map[string]string{"X-Jwt-Claim-Sub": tk.uid}},
		{name: "a spoofed X-Forwarded-For is replaced by the real peer", header: http.Header{"X-Forwarded-For": {"10.0.0.1"}},
			want: map[string]string{"X-Forwarded-For": "127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log("follows", docOutputClaims)
			resp, err := g.get(t, "/api/secure.json", tk.valid, tt.header)
			if err != nil {
				t.Fatal(err)
			}
			if resp.status != http.StatusOK {
				t.Fatalf("answered %v; want the upstream's 200", resp)
			}
			upstreamSaw(t, got, tt.want)
		})
	}
	t.Run("claim headers a browser sends to the frontend do not reach the backend as written", func(t *testing.T) {
		st := requireLocal(t, "a frontend of its own")
		fe := startOwnFrontend(t, st.IdentityURL, g.url)
		resp, err := do(t, http.MethodGet, fe+"/api/secure.json", http.Header{
			"Authorization": {"Bearer " + tk.valid}, "X-Jwt-Claim-Sub": {"admin"}, "X-Jwt-Claim-Email": {"admin@acme.test"},
		}, "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.status != http.StatusOK {
			t.Fatalf("answered %v; want the upstream's 200 relayed", resp)
		}
		upstreamSaw(t, got, map[string]string{"X-Jwt-Claim-Sub": tk.uid, "X-Jwt-Claim-Email": fmt.Sprint(tk.claims["email"])})
	})
}

// upstreamSaw waits for the next request's headers the upstream recorded and
// checks that each header in want arrived exactly once, with that value.
func upstreamSaw(t *testing.T, got <-chan http.Header, want map[string]string) {
	t.Helper()
	var h http.Header
	select {
	case h = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream saw no request within 5 s")
	}
	for k, w := range want {
		if vs := h.Values(k); len(vs) != 1 || vs[0] != w {
			t.Errorf("upstream saw %s = %q; want exactly [%q]", k, vs, w)
		}
	}
}

// hmacWithPublicKey is the RS256→HS* key-confusion attack: the issuer's
// public key PEM used as an HMAC secret.
func hmacWithPublicKey(t *testing.T, tk tokens, alg jwa.SignatureAlgorithm, kid any) string {
	t.Helper()
	hdr := jws.NewHeaders()
	hdr.Set(jws.TypeKey, "JWT")
	if kid != nil {
		hdr.Set(jws.KeyIDKey, kid)
	}
	tok, err := jws.Sign([]byte(mustJSON(t, tk.claims)), jws.WithKey(alg, publicKeyPEM(t, tk), jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatalf("making an %s token: %v", alg, err)
	}
	return string(tok)
}

func noAttackerHits(t *testing.T, hits *atomic.Int64) {
	t.Helper()
	if n := hits.Load(); n != 0 {
		t.Errorf("the attacker's server was fetched %d times; a token's headers must never choose where keys come from", n)
	}
}

func wantHeader(name, want string) func(t *testing.T, got exchange) {
	return func(t *testing.T, got exchange) {
		t.Helper()
		if v := got.header.Get(name); v != want {
			t.Errorf("%s = %q; want %q", name, v, want)
		}
	}
}

func noSetCookie(name string) func(t *testing.T, got exchange) {
	return func(t *testing.T, got exchange) {
		t.Helper()
		for _, c := range got.header.Values("Set-Cookie") {
			if strings.HasPrefix(c, name+"=") || strings.HasPrefix(c, "__Host-"+name+"=") {
				t.Errorf("a refused request set a %s cookie: %q", name, c)
			}
		}
	}
}

func bodyHas(want string) func(t *testing.T, got exchange) {
	return func(t *testing.T, got exchange) {
		t.Helper()
		if !strings.Contains(got.body, want) {
			t.Errorf("body lacks %q: %.300q", want, got.body)
		}
	}
}

func both(a, b func(t *testing.T, got exchange)) func(t *testing.T, got exchange) {
	return func(t *testing.T, got exchange) { a(t, got); b(t, got) }
}

func noOffsiteLocation(t *testing.T, got exchange) {
	t.Helper()
	if loc := got.header.Get("Location"); strings.Contains(loc, "evil.example") {
		t.Errorf("Location = %q; an off-site redirect", loc)
	}
}

func encodeRaw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// csrfPair loads the start page once and returns the CSRF cookie it set
// and the token the same page carries (they pair, as in the browser).
func csrfPair(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := fetchAppConfig(&http.Client{Timeout: 10 * time.Second, Jar: jar}, env.frontendURL)
	if err != nil {
		t.Fatalf("reading the page's CSRF token: %v", err)
	}
	u, _ := url.Parse(env.frontendURL)
	for _, c := range jar.Cookies(u) {
		if c.Name == "csrf" || c.Name == "__Host-csrf" {
			return &http.Cookie{Name: c.Name, Value: c.Value}, cfg.CSRFToken
		}
	}
	t.Fatal("GET / set no CSRF cookie")
	return nil, ""
}

// do sends one request with Go's client (no redirects followed).
func do(t *testing.T, method, u string, h http.Header, body string) (exchange, error) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	// A fresh connection per request: net/http's header limit has a few KB
	// of slop on a reused one, and each row should stand alone.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		return exchange{}, err
	}
	defer resp.Body.Close()
	b, err := readAllLimited(resp.Body)
	return exchange{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

// rawDial opens a new connection to addr, with TLS and the frontend's
// certificate when useTLS, for writing raw HTTP/1.1 bytes: ALPN offers
// http/1.1 only, so that no server picks HTTP/2 for it.
func rawDial(t *testing.T, addr string, useTLS bool) (net.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if useTLS {
		cfg := clientTLS(t, env.clientCertDir, true)
		cfg.NextProtos = []string{"http/1.1"}
		return (&tls.Dialer{NetDialer: d, Config: cfg}).Dial("tcp", addr)
	}
	return d.Dial("tcp", addr)
}

// rawSend opens a new connection (rawDial) and writes raw bytes to it, all
// within 10 s; the caller reads the answers from the returned reader and
// closes the connection.
func rawSend(t *testing.T, addr string, useTLS bool, raw string) (net.Conn, *bufio.Reader, error) {
	t.Helper()
	conn, err := rawDial(t, addr, useTLS)
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, bufio.NewReader(conn), nil
}

// readExchange reads one response and its body (up to 64 KiB) from br.
func readExchange(br *bufio.Reader) (exchange, *http.Response, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return exchange{}, nil, err
	}
	defer resp.Body.Close()
	b, err := readAllLimited(resp.Body)
	return exchange{status: resp.StatusCode, header: resp.Header, body: string(b)}, resp, err
}

// rawConversation writes raw bytes over a new connection and reads every
// response until the server closes it (or 3 s of silence): a smuggled
// request would show as a response of its own.
func rawConversation(t *testing.T, addr string, useTLS bool, raw string) ([]exchange, error) {
	t.Helper()
	conn, br, err := rawSend(t, addr, useTLS, raw)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var out []exchange
	for {
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		got, _, err := readExchange(br)
		if err != nil && got.status == 0 {
			if len(out) == 0 {
				return nil, err
			}
			return out, nil
		}
		out = append(out, got)
	}
}

// rawOneAnswerThenClose writes raw bytes over a new connection and reads
// one response, which must announce Connection: close; it is an error if
// the server then answers again, or leaves the connection open for 3 s
// instead of closing it.
func rawOneAnswerThenClose(t *testing.T, addr string, useTLS bool, raw string) (exchange, error) {
	t.Helper()
	conn, br, err := rawSend(t, addr, useTLS, raw)
	if err != nil {
		return exchange{}, err
	}
	defer conn.Close()
	got, resp, err := readExchange(br)
	if err != nil {
		return got, err
	}
	if !resp.Close {
		return got, fmt.Errorf("the answer %d did not announce Connection: close", got.status)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if next, err := http.ReadResponse(br, nil); err == nil {
		return got, fmt.Errorf("after answering %d the server answered again, %d: a request after the body was read", got.status, next.StatusCode)
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return got, fmt.Errorf("after answering %d the server did not close the connection: %w", got.status, err)
	}
	return got, nil
}

// rawExchange writes raw bytes over a new connection (TLS with the
// frontend's certificate when useTLS) and reads one response.
func rawExchange(t *testing.T, addr string, useTLS bool, raw string) (exchange, error) {
	t.Helper()
	conn, br, err := rawSend(t, addr, useTLS, raw)
	if err != nil {
		return exchange{}, err
	}
	defer conn.Close()
	got, _, err := readExchange(br)
	return got, err
}

func readAllLimited(r io.Reader) ([]byte, error) { return io.ReadAll(io.LimitReader(r, 64<<10)) }

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("URL %q: %v", rawURL, err)
	}
	return u.Host
}

// jsonAt returns the string at a dotted path in a JSON body, or "".
func jsonAt(body, path string) string {
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return ""
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// TestSignInErrorsDoNotRevealWhichEmailsHaveAccounts compares the emulator's
// whole answers for an unknown email and a wrong password: any difference
// (status, body, a header) would let a caller probe for accounts.
func TestSignInErrorsDoNotRevealWhichEmailsHaveAccounts(t *testing.T) {
	st := requireLocal(t, "the local emulator's answers are compared byte for byte")
	email, _ := requireUser(t)
	t.Log("follows", docEnumeration)
	signIn := func(email, password string) exchange {
		t.Helper()
		got, err := do(t, http.MethodPost, st.IdentityURL+"/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=emulator-api-key",
			http.Header{"Content-Type": {"application/json"}},
			mustJSON(t, map[string]any{"email": email, "password": password, "returnSecureToken": true}))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	unknown := signIn("nobody-"+randomString(6)+"@example.com", "some-password-1")
	wrong := signIn(email, "some-password-1")
	if unknown.status != http.StatusBadRequest || jsonAt(unknown.body, "error.message") != "INVALID_LOGIN_CREDENTIALS" {
		t.Fatalf("unknown email answered %v; want 400 INVALID_LOGIN_CREDENTIALS", unknown)
	}
	if unknown.status != wrong.status || unknown.body != wrong.body {
		t.Errorf("the answers differ:\nunknown email:  %v\nwrong password: %v", unknown, wrong)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "Www-Authenticate", "Set-Cookie"} {
		if unknown.header.Get(h) != wrong.header.Get(h) {
			t.Errorf("header %s differs: unknown email %q, wrong password %q", h, unknown.header.Get(h), wrong.header.Get(h))
		}
	}
}
