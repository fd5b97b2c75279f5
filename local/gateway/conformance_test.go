package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/local/identity"
)

// docEmailVerified is what the email-verified rows follow: istio/ copies the
// boolean claim into a header (Envoy writes it "true"/"false") and requires
// "true" there, since Istio matches only string claims.
const docEmailVerified = "https://istio.io/latest/docs/reference/config/security/conditions/ (request.auth.claims: string or list of string only; request.headers); " +
	"envoyproxy/envoy jwt_authn authenticator.cc addJWTClaimToHeader (a bool claim becomes \"true\" or \"false\")"

// docMachineRule is what the machine-caller rows follow: the third ALLOW rule
// of istio/ needs a Google-issued request principal, the email claim on the
// allowlist, and the machine caller's certificate principal, all in one rule.
const docMachineRule = "https://istio.io/latest/docs/reference/config/security/authorization-policy/ (fields of one rule are ANDed; rules are ORed); " +
	"https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/ (request.auth.claims on string claims)"

// TestConformance runs requests through the gateway serving the repository's
// istio/ (rendered for demo-acme) with real mTLS and real signed tokens, and
// checks Istio's answer: status, body and headers. Each row cites the Istio
// or Envoy documentation it follows.
func TestConformance(t *testing.T) {
	s := newStack(t, stackOptions{})
	valid := s.token(t)
	expired, err := s.idp.IDTokenFor(context.Background(), s.uid, time.Now().Add(-3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	sign := func(claims map[string]any) string {
		base := map[string]any{"iss": "https://securetoken.google.com/" + projectID, "aud": projectID, "sub": s.uid,
			"iat": now, "exp": now + 600, "auth_time": now}
		for k, v := range claims {
			base[k] = v
		}
		tok, err := s.idp.SignClaims(base)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	otherIssuer := sign(map[string]any{"iss": "https://securetoken.google.com/someone-else"})
	unverified := sign(map[string]any{"email": "ceo@acme.test", "email_verified": false})
	noEmailVerified := sign(map[string]any{"email": "ceo@acme.test"})
	verifiedAsString := sign(map[string]any{"email": "ceo@acme.test", "email_verified": "true"})
	otherAudience := sign(map[string]any{"aud": "someone-else"})
	// A key the gateway's JWKS does not have: another emulator's.
	stranger, err := identity.New(identity.Config{ProjectID: projectID, StateDir: filepath.Join(t.TempDir(), "other"), PasswordHashCost: 10})
	if err != nil {
		t.Fatal(err)
	}
	unknownKid, err := stranger.SignClaims(map[string]any{"iss": "https://securetoken.google.com/" + projectID, "aud": projectID, "sub": "x", "iat": now, "exp": now + 600})
	if err != nil {
		t.Fatal(err)
	}
	badSignature := valid[:len(valid)-4] + flip(valid[len(valid)-4:])
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	machine := s.serviceAccountToken(t, reporter, apiAudience, time.Time{})
	machineOtherAudience := s.serviceAccountToken(t, reporter, "https://other.example", time.Time{})
	notAllowed := s.serviceAccountToken(t, intruder, apiAudience, time.Time{})
	machineExpired := s.serviceAccountToken(t, reporter, apiAudience, time.Now().Add(-2*time.Hour))
	machineUnverified := s.resignGoogle(t, reporter, apiAudience, func(c map[string]any) { c["email_verified"] = false })
	// IAM's generateIdToken without includeEmail: no email to match.
	machineNoEmail := s.resignGoogle(t, reporter, apiAudience, func(c map[string]any) { delete(c, "email"); delete(c, "email_verified") })
	machineClient := s.clientWith(t, s.pki.machine)
	t.Cleanup(machineClient.CloseIdleConnections)
	const (
		realmSecure   = `Bearer realm="https://api.internal.example/api/secure.json", error="invalid_token"`
		frontendPrinc = "acme.internal/ns/frontend/sa/frontend"
	)

	tests := []struct {
		name       string
		doc        string // the documentation the row follows
		method     string
		path       string
		header     http.Header
		wantStatus int
		wantBody   string // exact, for the gateway's own answers; "" skips
		wantHeader map[string]string
		wantPath   string       // the path the backend received, for 200s
		client     *http.Client // nil: the frontend's client certificate
	}{
		{
			name: "healthz is open without credentials", doc: "https://istio.io/latest/docs/reference/config/security/authorization-policy/ (ALLOW rule with only to.operation.paths)",
			path: "/api/healthz", wantStatus: 200, wantPath: "/api/healthz",
			wantHeader: map[string]string{"Server": "istio-envoy"},
		},
		{
			name: "a valid token and the frontend certificate reach the backend", doc: "https://istio.io/latest/docs/tasks/security/authentication/authn-policy/#end-user-authentication",
			path: "/api/secure.json", header: bearer(valid), wantStatus: 200, wantPath: "/api/secure.json",
		},
		{
			name: "a service account on the allowlist with the machine caller's certificate reaches the backend", doc: docMachineRule,
			path: "/api/secure.json", header: bearer(machine), client: machineClient, wantStatus: 200, wantPath: "/api/secure.json",
		},
		{
			name: "a service-account token over the frontend's certificate does not pass the user rule", doc: docMachineRule,
			path: "/api/secure.json", header: bearer(machine), wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "a user's token over the machine caller's certificate does not pass the machine rule", doc: docMachineRule,
			path: "/api/secure.json", header: bearer(valid), client: machineClient, wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "a service account not on the allowlist is denied by authorization", doc: docMachineRule,
			path: "/api/secure.json", header: bearer(notAllowed), client: machineClient, wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "an allowlisted service account whose email_verified is false is denied", doc: docMachineRule + "; " + docEmailVerified,
			path: "/api/secure.json", header: bearer(machineUnverified), client: machineClient, wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "a service-account token without an email claim is denied", doc: docMachineRule,
			path: "/api/secure.json", header: bearer(machineNoEmail), client: machineClient, wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "a service-account token for another audience gets 403 from authentication", doc: "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter (JwtAudienceNotAllowed maps to 403)",
			path: "/api/secure.json", header: bearer(machineOtherAudience), client: machineClient, wantStatus: 403, wantBody: "Audiences in Jwt are not allowed",
		},
		{
			name: "an expired service-account token gets 401", doc: "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter (jwt_verify_lib status JwtExpired)",
			path: "/api/secure.json", header: bearer(machineExpired), client: machineClient, wantStatus: 401, wantBody: "Jwt is expired",
		},
		{
			name: "the machine caller's certificate without a token is denied", doc: docMachineRule,
			path: "/api/secure.json", client: machineClient, wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "healthz is open to the machine caller", doc: "https://istio.io/latest/docs/reference/config/security/authorization-policy/ (ALLOW rule with only to.operation.paths)",
			path: "/api/healthz", client: machineClient, wantStatus: 200, wantPath: "/api/healthz",
		},
		{
			name: "a valid token whose email is not verified is denied by authorization", doc: docEmailVerified,
			path: "/api/secure.json", header: bearer(unverified), wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "a valid token without email_verified is denied", doc: docEmailVerified,
			path: "/api/secure.json", header: bearer(noEmailVerified), wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "an unverified user's own x-jwt-claim-email-verified: true is removed before authorization", doc: docEmailVerified + "; https://istio.io/latest/docs/reference/config/security/jwt/#ClaimToHeader",
			path: "/api/secure.json", header: http.Header{"Authorization": {"Bearer " + unverified}, "X-Jwt-Claim-Email-Verified": {"true"}},
			wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "the string \"true\" in email_verified passes, as Envoy writes a string claim as it is", doc: docEmailVerified,
			path: "/api/secure.json", header: bearer(verifiedAsString), wantStatus: 200, wantPath: "/api/secure.json",
		},
		{
			name: "healthz stays open to a user whose email is not verified", doc: docEmailVerified,
			path: "/api/healthz", header: bearer(unverified), wantStatus: 200, wantPath: "/api/healthz",
		},
		{
			name: "no token is refused by authorization, not authentication", doc: "https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/ (403 RBAC: access denied without a request principal)",
			path: "/api/secure.json", wantStatus: 403, wantBody: "RBAC: access denied", wantHeader: map[string]string{"Content-Type": "text/plain"},
		},
		{
			name: "an expired token gets 401 with Envoy's body and a bearer challenge", doc: "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter (jwt_verify_lib status JwtExpired)",
			path: "/api/secure.json", header: bearer(expired), wantStatus: 401, wantBody: "Jwt is expired", wantHeader: map[string]string{"Www-Authenticate": realmSecure},
		},
		{
			name: "a token from another issuer gets 401", doc: "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter (JwtUnknownIssuer)",
			path: "/api/secure.json", header: bearer(otherIssuer), wantStatus: 401, wantBody: "Jwt issuer is not configured", wantHeader: map[string]string{"Www-Authenticate": realmSecure},
		},
		{
			name: "a token for another audience gets 403", doc: "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter (JwtAudienceNotAllowed maps to 403)",
			path: "/api/secure.json", header: bearer(otherAudience), wantStatus: 403, wantBody: "Audiences in Jwt are not allowed",
		},
		{
			name: "a token signed by a key not in the JWKS gets 401", doc: "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter (JwksKidAlgMismatch)",
			path: "/api/secure.json", header: bearer(unknownKid), wantStatus: 401, wantBody: "Jwks doesn't have key to match kid or alg from Jwt",
		},
		{
			name: "a token with a broken signature gets 401", doc: "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter (JwtVerificationFail)",
			path: "/api/secure.json", header: bearer(badSignature), wantStatus: 401, wantBody: "Jwt verification fails",
		},
		{
			name: "a bad token is refused even on the open healthz path", doc: "https://istio.io/latest/docs/reference/config/security/request_authentication/ (invalid tokens are rejected)",
			path: "/api/healthz", header: bearer(expired), wantStatus: 401, wantBody: "Jwt is expired",
		},
		{
			name: "dot-dot after healthz cannot borrow its openness", doc: "https://istio.io/latest/docs/reference/config/security/normalization/ (BASE: /a/../b is /b)",
			path: "/api/healthz/../secure.json", wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "percent-encoded dot-dot after healthz cannot either", doc: "https://istio.io/latest/docs/reference/config/security/normalization/ (%2e is decoded under BASE)",
			path: "/api/healthz/%2E%2e/secure.json", wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "backslash dot-dot after healthz cannot either", doc: "https://istio.io/latest/docs/ops/best-practices/security/#understand-path-normalization-in-authorization-policy (BASE turns \\ into /)",
			path: `/api/healthz\..\secure.json`, wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "the backend receives the normalized path", doc: "https://istio.io/latest/docs/reference/config/security/normalization/ (the normalized path is sent to the backend)",
			path: "/api/x/../healthz", wantStatus: 200, wantPath: "/api/healthz",
		},
		{
			name: "a NUL in the path is a bad request", doc: "https://istio.io/latest/docs/reference/config/security/normalization/ (%00 is always rejected with 400)",
			path: "/api/%00", wantStatus: 400, wantBody: "", wantHeader: map[string]string{"Server": "istio-envoy"},
		},
		{
			name: "paths outside /api/ are denied even with credentials", doc: "https://istio.io/latest/docs/concepts/security/#allow-nothing-deny-all-and-allow-all-policy (a request matching no ALLOW rule is denied)",
			path: "/admin", header: bearer(valid), wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "an authorized request for a host no VirtualService serves gets 404", doc: "https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#config-access-log-format-response-flags (NR: no route)",
			path: "/api/healthz", header: http.Header{"Host": {"other.example"}}, wantStatus: 404, wantBody: "",
		},
		{
			name: "the port in the Host header does not stop routing", doc: "https://istio.io/latest/docs/reference/config/networking/virtual-service/#VirtualService (hosts; Istio adds host:* domains)",
			path: "/api/healthz", header: http.Header{"Host": {"api.internal.example:8443"}}, wantStatus: 200, wantPath: "/api/healthz",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			client := s.client
			if tt.client != nil {
				client = tt.client
			}
			got, err := s.do(t, client, newRequest(t, method, tt.path, tt.header))
			if err != nil {
				t.Fatalf("%s %s: %v", method, tt.path, err)
			}
			if got.status != tt.wantStatus {
				t.Fatalf("%s %s: status %d (body %q), want %d [%s]", method, tt.path, got.status, got.body, tt.wantStatus, tt.doc)
			}
			if tt.wantBody != "" || tt.wantStatus == 404 || tt.wantStatus == 400 {
				if got.body != tt.wantBody {
					t.Errorf("%s %s: body %q, want %q [%s]", method, tt.path, got.body, tt.wantBody, tt.doc)
				}
			}
			for k, v := range tt.wantHeader {
				if got.header.Get(k) != v {
					t.Errorf("%s %s: header %s %q, want %q [%s]", method, tt.path, k, got.header.Get(k), v, tt.doc)
				}
			}
			if tt.wantPath != "" {
				var e echoed
				if err := json.Unmarshal([]byte(got.body), &e); err != nil {
					t.Fatalf("backend echo: %v in %q", err, got.body)
				}
				if e.Path != tt.wantPath {
					t.Errorf("backend received path %q, want %q [%s]", e.Path, tt.wantPath, tt.doc)
				}
			}
		})
	}
}

// flip changes a base64url string so that it decodes to different bytes.
func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

func TestUpstreamSeesWhatIstioSendsIt(t *testing.T) {
	s := newStack(t, stackOptions{})
	tok := s.token(t)
	tests := []struct {
		name   string
		header http.Header
		check  func(t *testing.T, e echoed)
	}{
		{
			name:   "the original token is forwarded (forwardOriginalToken: true)",
			header: http.Header{"Authorization": {"Bearer " + tok}},
			check: func(t *testing.T, e echoed) {
				if got := e.Header.Get("Authorization"); got != "Bearer "+tok {
					t.Errorf("Authorization upstream: got %.20q..., want the original bearer token", got)
				}
			},
		},
		{
			name:   "verified claims are copied to the configured headers (outputClaimToHeaders)",
			header: http.Header{"Authorization": {"Bearer " + tok}},
			check: func(t *testing.T, e echoed) {
				if got := e.Header.Get("X-Jwt-Claim-Sub"); got != s.uid {
					t.Errorf("x-jwt-claim-sub: got %q, want %q", got, s.uid)
				}
				if got := e.Header.Get("X-Jwt-Claim-Email"); got != "ada@example.com" {
					t.Errorf("x-jwt-claim-email: got %q, want %q", got, "ada@example.com")
				}
			},
		},
		{
			name:   "claim headers a client sends are stripped before the gateway sets its own",
			header: http.Header{"Authorization": {"Bearer " + tok}, "X-Jwt-Claim-Sub": {"admin"}, "X-Jwt-Claim-Email": {"root@example.com"}},
			check: func(t *testing.T, e echoed) {
				if got := e.Header.Values("X-Jwt-Claim-Sub"); len(got) != 1 || got[0] != s.uid {
					t.Errorf("x-jwt-claim-sub: got %q, want only [%q]", got, s.uid)
				}
			},
		},
		{
			name:   "claim headers a client sends without a token are stripped too",
			header: http.Header{"X-Jwt-Claim-Sub": {"admin"}},
			check: func(t *testing.T, e echoed) {
				if got := e.Header.Values("X-Jwt-Claim-Sub"); len(got) != 0 {
					t.Errorf("x-jwt-claim-sub: got %q, want none", got)
				}
			},
		},
		{
			name:   "a request id is generated when the client sends none",
			header: http.Header{},
			check: func(t *testing.T, e echoed) {
				if got := e.Header.Get("X-Request-Id"); len(got) != 36 {
					t.Errorf("x-request-id: got %q, want a UUID", got)
				}
			},
		},
		{
			name:   "an internal client's request id is kept (Envoy keeps x-request-id from internal addresses)",
			header: http.Header{"X-Request-Id": {"abc-123"}},
			check: func(t *testing.T, e echoed) {
				if got := e.Header.Get("X-Request-Id"); got != "abc-123" {
					t.Errorf("x-request-id: got %q, want %q", got, "abc-123")
				}
			},
		},
		{
			name:   "the trace goes on to the backend in a span of the gateway's own",
			header: http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
			check: func(t *testing.T, e echoed) {
				got := e.Header.Get("Traceparent")
				if !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || strings.Contains(got, "00f067aa0ba902b7") {
					t.Errorf("traceparent upstream: got %q, want trace 4bf92f3577b34da6a3ce929d0e0e4736 with a new span id", got)
				}
			},
		},
		{
			name:   "x-forwarded-for is the client's address, not what the client claims",
			header: http.Header{"X-Forwarded-For": {"203.0.113.9"}},
			check: func(t *testing.T, e echoed) {
				if got := e.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
					t.Errorf("x-forwarded-for: got %q, want %q", got, "127.0.0.1")
				}
				if got := e.Header.Get("X-Forwarded-Proto"); got != "https" {
					t.Errorf("x-forwarded-proto: got %q, want https", got)
				}
			},
		},
		{
			name:   "the authority is kept",
			header: http.Header{},
			check: func(t *testing.T, e echoed) {
				if e.Host != gatewayHost {
					t.Errorf("Host upstream: got %q, want %q", e.Host, gatewayHost)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.do(t, s.client, newRequest(t, "GET", "/api/healthz?x=1", tt.header))
			if err != nil || got.status != 200 {
				t.Fatalf("GET /api/healthz: status %d, err %v, body %q; want 200", got.status, err, got.body)
			}
			var e echoed
			if err := json.Unmarshal([]byte(got.body), &e); err != nil {
				t.Fatal(err)
			}
			if e.Query != "x=1" {
				t.Errorf("query upstream: got %q, want %q", e.Query, "x=1")
			}
			tt.check(t, e)
		})
	}
}

func TestClientsWithoutTheFrontendCertificateGetNoHandshake(t *testing.T) {
	// https://istio.io/latest/docs/tasks/traffic-management/ingress/secure-ingress/#configure-a-mutual-tls-ingress-gateway
	s := newStack(t, stackOptions{})
	foreign := devPKI(t)
	for _, tt := range []struct {
		name string
		dir  string
	}{
		{"a client certificate from another CA", foreign.FrontendDir},
		{"the gateway's own certificate presented as a client's", s.pki.gateway},
	} {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			c := s.clientWith(t, tt.dir)
			// Trust the gateway regardless, so only the client side is tested.
			ours, _ := openDir(t, s.pki.frontend).ClientConfig(gatewayHost)
			c.Transport.(*http.Transport).TLSClientConfig.RootCAs = ours.RootCAs
			if got, err := s.do(t, c, newRequest(t, "GET", "/api/healthz", nil)); err == nil {
				t.Fatalf("GET /api/healthz: status %d, want a failed handshake", got.status)
			}
		})
	}
}

func TestAccessLogHasOneJSONLinePerRequestWithoutSecrets(t *testing.T) {
	s := newStack(t, stackOptions{})
	tok := s.token(t)
	if _, err := s.do(t, s.client, newRequest(t, "GET", "/api/secure.json?code=zzz", http.Header{"Authorization": {"Bearer " + tok}})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.do(t, s.client, newRequest(t, "GET", "/api/healthz/../secure.json", nil)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(s.log.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("access log: got %d lines, want 2:\n%s", len(lines), s.log.String())
	}
	type line struct {
		Component, RequestID, Reason, Principal, RequestPrincipal, NormalizedPath string
		HTTPRequest                                                               struct {
			RequestMethod, RequestURL, Latency string
			Status                             int
		}
	}
	var first, second line
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first.HTTPRequest.RequestMethod != "GET" || first.NormalizedPath != "/api/secure.json" || first.HTTPRequest.Status != 200 ||
		first.Principal != "acme.internal/ns/frontend/sa/frontend" || first.RequestPrincipal != "https://securetoken.google.com/demo-acme/"+s.uid ||
		first.Reason == "" || first.HTTPRequest.Latency == "" || first.Component != "gateway" || first.RequestID == "" {
		t.Errorf("first access log line %s: want GET /api/secure.json 200 with both principals, a reason, a latency, the component and a request id", lines[0])
	}
	if !strings.HasSuffix(first.HTTPRequest.RequestURL, "/api/secure.json?code=REDACTED") {
		t.Errorf("first access log line %s: want the query's code redacted in requestUrl", lines[0])
	}
	if second.HTTPRequest.Status != 403 || second.NormalizedPath != "/api/secure.json" || second.Reason == "" ||
		!strings.HasSuffix(second.HTTPRequest.RequestURL, "/api/healthz/../secure.json") {
		t.Errorf("second access log line %s: want the path as sent and normalized, 403 and the denial's reason", lines[1])
	}
	if strings.Contains(s.log.String(), tok) || strings.Contains(s.log.String(), "zzz") {
		t.Errorf("access log holds a token:\n%s", s.log.String())
	}
}
