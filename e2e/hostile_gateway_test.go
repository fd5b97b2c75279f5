package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// TestHostileInputIsRefusedByTheGateway sends the gateway forged and altered
// tokens, oversized and malformed requests, and smuggling attempts on raw TLS
// connections; each must meet exactly the refusal Envoy and Istio give.
func TestHostileInputIsRefusedByTheGateway(t *testing.T) {
	h := newHostileFixture(t)
	runAttacks(t, h.tk, gatewayAttacks(h))
}

// gatewayAttacks are the rows against the gateway, over mutual TLS with the
// frontend's certificate.
func gatewayAttacks(h *hostileFixture) []attack {
	// The fixture, under the names its rows use.
	tk, attackerHits, attacker, attackerSigned, withHeader, withPayload := h.tk, h.attackerHits, h.attacker, h.attackerSigned, h.withHeader, h.withPayload
	now, signed, bearer, gw, gwToken := h.now, h.signed, h.bearer, h.gw, h.gwToken
	big, nested, conversation, oneAnswerThenClose, smuggle, gwAddr := h.big, h.nested, h.conversation, h.oneAnswerThenClose, h.smuggle, h.gwAddr
	gwName, unauth, invalidRequest, attackerKey := h.gwName, h.unauth, h.invalidRequest, h.attackerKey
	return []attack{
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
