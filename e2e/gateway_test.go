package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/acme/cloudrun-istio-gke/local/identity"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// What Envoy answers when the gateway refuses a request. The JWT bodies are
// jwt_verify_lib's status strings, which Envoy's jwt_authn filter sends as the
// local reply (401, or 403 for the audience):
// https://github.com/google/jwt_verify_lib/blob/master/src/status.cc
const (
	bodyRBACDenied = "RBAC: access denied"
	bodyExpired    = "Jwt is expired"
	bodyBadSig     = "Jwt verification fails"
	bodyBadAud     = "Audiences in Jwt are not allowed"
	bodyBadIss     = "Jwt issuer is not configured"
	bodyBadFormat  = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
	bodyBadAlg     = "Jwt header [alg] is not supported"
	bodyNoKey      = "Jwks doesn't have key to match kid or alg from Jwt"
)

// Documentation the rows below follow.
const (
	docJWTAuthn      = "https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/jwt_authn_filter"
	docVerifyOrder   = "https://github.com/envoyproxy/envoy/blob/main/source/extensions/filters/http/jwt_authn/authenticator.cc (parse, issuer, exp, aud, then signature)"
	docJWTParse      = "https://github.com/google/jwt_verify_lib/blob/master/src/jwt.cc (two dots, three non-empty sections; alg must be implemented)"
	docAudience403   = "https://github.com/envoyproxy/envoy/blob/main/source/extensions/filters/http/jwt_authn/filter.cc (JwtAudienceNotAllowed answers 403, every other failure 401; envoyproxy/envoy#7679)"
	docJWKSMatch     = "https://github.com/google/jwt_verify_lib/blob/master/src/verify.cc (a JWK whose alg differs from the JWT's is skipped)"
	docRequestAuthn  = "https://istio.io/latest/docs/reference/config/security/request_authentication/ (a request with an invalid token is rejected; one without a token is accepted)"
	docAuthzJWT      = "https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/ (no token: 403 RBAC: access denied)"
	docAuthzAllow    = "https://istio.io/latest/docs/reference/config/security/authorization-policy/ (ALLOW policies: a request that matches none is denied)"
	docNormalization = "https://istio.io/latest/docs/reference/config/security/normalization/ (default BASE: %2e and unreserved %HH decoded, dot segments resolved, backslash to slash; %2F and // kept)"
	docPathPractices = "https://istio.io/latest/docs/ops/best-practices/security/#understand-path-normalization-in-authorization-policy"
	docMutualTLS     = "https://istio.io/latest/docs/reference/config/networking/gateway/#ServerTLSSettings-TLSmode (MUTUAL: client certificate required and verified against caCertificates)"
)

// gatewayAddr is host:port of the gateway, for raw TLS connections.
func gatewayAddr(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(env.gatewayURL)
	if err != nil {
		t.Fatalf("gateway URL %q: %v", env.gatewayURL, err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return u.Host
}

// gatewayResponse is what came back for one request.
type gatewayResponse struct {
	status int
	header http.Header
	body   string
}

func (r gatewayResponse) String() string {
	return fmt.Sprintf("%d %q (www-authenticate %q)", r.status, r.body, r.header.Get("Www-Authenticate"))
}

// sendRaw writes one HTTP/1.1 request byte for byte over a new TLS
// connection, so that paths reach the gateway exactly as written (Go's
// client would clean or re-escape some of them), and reads the answer.
func sendRaw(t *testing.T, cfg *tls.Config, path string, header http.Header) (gatewayResponse, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", gatewayAddr(t))
	if err != nil {
		return gatewayResponse{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", path, env.gatewayServerName)
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&req, "%s: %s\r\n", k, v)
		}
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return gatewayResponse{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return gatewayResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return gatewayResponse{}, fmt.Errorf("reading the body: %w", err)
	}
	return gatewayResponse{status: resp.StatusCode, header: resp.Header, body: string(body)}, nil
}

// tlsRefusal connects with cfg and returns how the gateway refused the
// connection, or nil if it accepted it. In TLS 1.2 the refusal fails the
// handshake itself. In TLS 1.3 the client finishes its side before the server
// has checked the client's certificate, so the server's alert arrives in
// place of the first read; an accepted connection instead waits, silent, for
// a request, and the read times out.
func tlsRefusal(t *testing.T, cfg *tls.Config) error {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", gatewayAddr(t))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("the gateway sent data before any request")
	}
	return err
}

// refusedByTLS reports whether err is the server refusing the connection
// with a TLS alert, as opposed to, say, nothing listening.
func refusedByTLS(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

func TestGatewayRequiresTheFrontendsClientCertificate(t *testing.T) {
	requireGateway(t)
	foreign := func(t *testing.T) []tls.Certificate {
		// A certificate exactly like the frontend's (same SPIFFE URI SAN,
		// clientAuth) but issued by another dev CA.
		b, err := pki.Ensure(pki.Config{Dir: t.TempDir(), GatewayHosts: []string{env.gatewayServerName}})
		if err != nil {
			t.Fatalf("making a foreign PKI: %v", err)
		}
		c, err := tls.LoadX509KeyPair(b.FrontendDir+"/tls.crt", b.FrontendDir+"/tls.key")
		if err != nil {
			t.Fatalf("loading the foreign client certificate: %v", err)
		}
		return []tls.Certificate{c}
	}
	tests := []struct {
		name        string
		maxVersion  uint16
		certificate func(t *testing.T) []tls.Certificate // nil: none
		wantRefused bool
	}{
		{name: "without a client certificate, a TLS 1.3 connection is refused", maxVersion: tls.VersionTLS13, wantRefused: true},
		{name: "without a client certificate, a TLS 1.2 handshake fails", maxVersion: tls.VersionTLS12, wantRefused: true},
		{name: "a client certificate from another CA is refused over TLS 1.3", maxVersion: tls.VersionTLS13, certificate: foreign, wantRefused: true},
		{name: "a client certificate from another CA fails the TLS 1.2 handshake", maxVersion: tls.VersionTLS12, certificate: foreign, wantRefused: true},
		{name: "the frontend's own certificate is accepted over TLS 1.3", maxVersion: tls.VersionTLS13, certificate: func(t *testing.T) []tls.Certificate {
			return clientTLS(t, env.clientCertDir, true).Certificates
		}},
		{name: "the frontend's own certificate is accepted over TLS 1.2", maxVersion: tls.VersionTLS12, certificate: func(t *testing.T) []tls.Certificate {
			return clientTLS(t, env.clientCertDir, true).Certificates
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log("follows", docMutualTLS)
			cfg := clientTLS(t, env.clientCertDir, false)
			cfg.MaxVersion = tt.maxVersion
			if tt.certificate != nil {
				cfg.Certificates = tt.certificate(t)
			}
			if !tt.wantRefused {
				resp, err := sendRaw(t, cfg, "/api/healthz", nil)
				if err != nil {
					t.Fatalf("GET /api/healthz: %v; want 200", err)
				}
				if resp.status != http.StatusOK {
					t.Fatalf("GET /api/healthz answered %v; want 200", resp)
				}
				return
			}
			err := tlsRefusal(t, cfg)
			switch {
			case err == nil:
				t.Fatal("the gateway accepted the connection; want it refused with a TLS alert")
			case !refusedByTLS(err):
				t.Fatalf("got %v; want the gateway to refuse the handshake with a TLS alert (remote error: tls: ...)", err)
			}
			t.Logf("refused as expected: %v", err)
		})
	}
}

// tokens are the ID tokens the JWT cases send: a valid one, and variants that
// differ from it in exactly one way.
type tokens struct {
	valid   string
	uid     string
	header  map[string]any // of the valid token: alg, kid, typ
	claims  map[string]any // of the valid token
	payload string         // base64url of the valid token's payload
}

var (
	tokensOnce sync.Once
	tokensVal  tokens
	tokensErr  error
)

// userTokens signs the test user in, over the same REST API the browser
// uses, and keeps the token for every case of the run.
func userTokens(t testing.TB) tokens {
	t.Helper()
	email, password := requireUser(t)
	ic := newIdentityClient(t)
	tokensOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := ic.signIn(ctx, email, password)
		if err != nil {
			tokensErr = fmt.Errorf("signing the test user in: %w", err)
			return
		}
		parts := strings.Split(res.IDToken, ".")
		if len(parts) != 3 {
			tokensErr = fmt.Errorf("the ID token has %d sections", len(parts))
			return
		}
		tk := tokens{valid: res.IDToken, uid: res.LocalID, payload: parts[1]}
		if tokensErr = decodeSegment(parts[0], &tk.header); tokensErr != nil {
			return
		}
		if tokensErr = decodeSegment(parts[1], &tk.claims); tokensErr != nil {
			return
		}
		tokensVal = tk
	})
	if tokensErr != nil {
		t.Fatal(tokensErr)
	}
	return tokensVal
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return fmt.Errorf("decoding a token segment: %w", err)
	}
	return json.Unmarshal(b, v)
}

func encodeSegment(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// withClaims is a copy of the valid token's claims with changes applied.
func (tk tokens) withClaims(changes map[string]any) map[string]any {
	c := make(map[string]any, len(tk.claims))
	for k, v := range tk.claims {
		c[k] = v
	}
	for k, v := range changes {
		c[k] = v
	}
	return c
}

// signLocally signs claims with the local emulator's current key: a token
// that is well signed but wrong in another way.
func signLocally(t *testing.T, claims map[string]any) string {
	t.Helper()
	st := requireLocal(t, "signing a token needs the local emulator's private key")
	tok, err := st.Emulator.SignClaims(claims)
	if err != nil {
		t.Fatalf("SignClaims: %v", err)
	}
	noteSecret(tok)
	return tok
}

// publicKeyPEM is the PEM of the RSA public key the valid token was signed
// with, from the issuer's published JWKS: the "secret" of the classic
// RS256→HS256 key-confusion attack.
func publicKeyPEM(t *testing.T, tk tokens) []byte {
	t.Helper()
	jwksURL := "https://www.googleapis.com" + identity.JWKSPath
	if c := pageConfig(t); c.EmulatorURL != "" {
		jwksURL = strings.TrimRight(c.EmulatorURL, "/") + identity.JWKSPath
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	set, err := jwk.Fetch(ctx, jwksURL)
	if err != nil {
		t.Fatalf("fetching the JWKS %s: %v", jwksURL, err)
	}
	kid, _ := tk.header["kid"].(string)
	key, ok := set.LookupKeyID(kid)
	if !ok {
		t.Fatalf("the JWKS %s has no key %q", jwksURL, kid)
	}
	var pub any
	if err := jwk.Export(key, &pub); err != nil {
		t.Fatalf("exporting JWK %q: %v", kid, err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("encoding JWK %q: %v", kid, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestGatewayChecksTheUsersToken(t *testing.T) {
	requireGateway(t)
	tests := []struct {
		name  string
		doc   string
		path  string
		token func(t *testing.T, tk tokens) string // nil: no Authorization header
		// wantStatus and wantBody are the gateway's answer; a 200 is the
		// backend's JSON with the secret message for this user.
		wantStatus int
		wantBody   string
		// challenge: the answer carries Envoy's
		// www-authenticate: Bearer realm="<original URL>", error="invalid_token"
		challenge bool
	}{
		{
			name: "a valid ID token from a signed-in user reaches the backend", doc: docRequestAuthn,
			path: "/api/secure.json", token: func(t *testing.T, tk tokens) string { return tk.valid },
			wantStatus: http.StatusOK,
		},
		{
			name: "no token is denied by the authorization policy", doc: docAuthzJWT,
			path: "/api/secure.json", wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied,
		},
		{
			name: "an expired token is refused", doc: docJWTAuthn,
			path: "/api/secure.json", token: func(t *testing.T, tk tokens) string {
				st := requireLocal(t, "an expired token needs the local emulator's private key")
				tok, err := st.Emulator.IDTokenFor(context.Background(), tk.uid, time.Now().Add(-2*time.Hour))
				if err != nil {
					t.Fatalf("IDTokenFor: %v", err)
				}
				noteSecret(tok)
				return tok
			},
			wantStatus: http.StatusUnauthorized, wantBody: bodyExpired, challenge: true,
		},
		{
			name: "a token whose payload was changed after signing is refused", doc: docVerifyOrder,
			path: "/api/secure.json", token: func(t *testing.T, tk tokens) string {
				parts := strings.Split(tk.valid, ".")
				parts[1] = encodeSegment(t, tk.withClaims(map[string]any{"email": "mallory@example.com"}))
				return strings.Join(parts, ".")
			},
			wantStatus: http.StatusUnauthorized, wantBody: bodyBadSig, challenge: true,
		},
		{
			// Envoy answers 403, not 401, for this one failure
			// (envoyproxy/envoy#7679): the token is authentic but not
			// meant for this API.
			name: "a well-signed token for another audience is forbidden", doc: docAudience403,
			path: "/api/secure.json", token: func(t *testing.T, tk tokens) string {
				return signLocally(t, tk.withClaims(map[string]any{"aud": "another-project"}))
			},
			wantStatus: http.StatusForbidden, wantBody: bodyBadAud, challenge: true,
		},
		{
			name: "a well-signed token from another issuer is refused", doc: docVerifyOrder,
			path: "/api/secure.json", token: func(t *testing.T, tk tokens) string {
				return signLocally(t, tk.withClaims(map[string]any{"iss": "https://securetoken.google.com/another-project"}))
			},
			wantStatus: http.StatusUnauthorized, wantBody: bodyBadIss, challenge: true,
		},
		{
			name: "an unsigned alg none token is refused", doc: docJWTParse,
			path: "/api/secure.json", token: func(t *testing.T, tk tokens) string {
				tok, err := jws.Sign([]byte(mustJSON(t, tk.claims)), jws.WithInsecureNoSignature())
				if err != nil {
					t.Fatalf("making an alg none token: %v", err)
				}
				return string(tok)
			},
			wantStatus: http.StatusUnauthorized, wantBody: bodyBadFormat, challenge: true,
		},
		{
			name: "an alg none token carrying the valid token's signature is refused", doc: docJWTParse,
			path: "/api/secure.json", token: func(t *testing.T, tk tokens) string {
				parts := strings.Split(tk.valid, ".")
				parts[0] = encodeSegment(t, map[string]any{"alg": "none", "typ": "JWT", "kid": tk.header["kid"]})
				return strings.Join(parts, ".")
			},
			wantStatus: http.StatusUnauthorized, wantBody: bodyBadAlg, challenge: true,
		},
		{
			name: "an HS256 token keyed with the issuer's public key is refused", doc: docJWKSMatch,
			path: "/api/secure.json", token: func(t *testing.T, tk tokens) string {
				hdr := jws.NewHeaders()
				if err := hdr.Set(jws.KeyIDKey, tk.header["kid"]); err != nil {
					t.Fatal(err)
				}
				if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
					t.Fatal(err)
				}
				tok, err := jws.Sign([]byte(mustJSON(t, tk.claims)),
					jws.WithKey(jwa.HS256(), publicKeyPEM(t, tk), jws.WithProtectedHeaders(hdr)))
				if err != nil {
					t.Fatalf("making an HS256 token: %v", err)
				}
				return string(tok)
			},
			wantStatus: http.StatusUnauthorized, wantBody: bodyNoKey, challenge: true,
		},
		{
			name: "a bearer value that is not a JWT is refused", doc: docJWTParse,
			path: "/api/secure.json", token: func(t *testing.T, tk tokens) string { return "not-a-jwt" },
			wantStatus: http.StatusUnauthorized, wantBody: bodyBadFormat, challenge: true,
		},
		{
			name: "the health check needs no token", doc: docAuthzAllow,
			path: "/api/healthz", wantStatus: http.StatusOK,
		},
		{
			name: "an invalid token is refused even on the open health check", doc: docRequestAuthn,
			path: "/api/healthz", token: func(t *testing.T, tk tokens) string {
				parts := strings.Split(tk.valid, ".")
				parts[1] = encodeSegment(t, tk.withClaims(map[string]any{"sub": "someone-else"}))
				return strings.Join(parts, ".")
			},
			wantStatus: http.StatusUnauthorized, wantBody: bodyBadSig, challenge: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log("follows", tt.doc)
			header := http.Header{}
			var tk tokens
			if tt.token != nil || (tt.wantStatus == http.StatusOK && tt.path == "/api/secure.json") {
				tk = userTokens(t)
			}
			if tt.token != nil {
				header.Set("Authorization", "Bearer "+tt.token(t, tk))
			}
			resp, err := sendRaw(t, clientTLS(t, env.clientCertDir, true), tt.path, header)
			if err != nil {
				t.Fatalf("GET %s: %v", tt.path, err)
			}
			if resp.status != tt.wantStatus {
				t.Fatalf("GET %s answered %v; want %d %q", tt.path, resp, tt.wantStatus, tt.wantBody)
			}
			switch {
			case tt.wantStatus == http.StatusOK && tt.path == "/api/secure.json":
				checkSecret(t, resp, tk)
			case tt.wantStatus == http.StatusOK:
				// The backend's health answer: nothing more to hold it to.
			default:
				if resp.body != tt.wantBody {
					t.Errorf("body = %q; want Envoy's %q", resp.body, tt.wantBody)
				}
			}
			if tt.challenge {
				ch := resp.header.Get("Www-Authenticate")
				if !strings.HasPrefix(ch, `Bearer realm="`) || !strings.HasSuffix(ch, `error="invalid_token"`) {
					t.Errorf(`www-authenticate = %q; want Bearer realm="…", error="invalid_token"`, ch)
				}
			}
		})
	}
}

// checkSecret checks the backend's answer for the signed-in user.
func checkSecret(t *testing.T, resp gatewayResponse, tk tokens) {
	t.Helper()
	var got struct {
		Message string `json:"message"`
		UID     string `json:"uid"`
		Email   string `json:"email"`
	}
	if err := json.Unmarshal([]byte(resp.body), &got); err != nil {
		t.Fatalf("the backend's answer %q is not JSON: %v", resp.body, err)
	}
	if got.Message != "Hello World" || got.UID != tk.uid || got.Email != tk.claims["email"] {
		t.Errorf("backend answered %+v; want message Hello World for uid %s, email %v", got, tk.uid, tk.claims["email"])
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGatewayPathTricksDoNotBorrowTheHealthChecksOpenness(t *testing.T) {
	requireGateway(t)
	// Every request presents the frontend's client certificate (MUTUAL needs
	// one at the handshake) and no token: only /api/healthz itself is open.
	tests := []struct {
		name       string
		path       string
		doc        string
		wantStatus int
		wantBody   string // "" means not checked (a 400 from the HTTP codec)
	}{
		{name: "the health check itself is open", path: "/api/healthz", doc: docAuthzAllow, wantStatus: http.StatusOK},
		{name: "dot-dot out of the health check is resolved before the policy", path: "/api/healthz/../secure.json", doc: docNormalization, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "percent-encoded dot-dot is decoded and resolved", path: "/api/healthz/%2e%2e/secure.json", doc: docNormalization, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "upper-case percent-encoded dot-dot is decoded and resolved", path: "/api/healthz/%2E%2E/secure.json", doc: docNormalization, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "single dots are resolved too", path: "/api/./healthz/./../secure.json", doc: docNormalization, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "a percent-encoded letter is decoded before matching", path: "/api/%73ecure.json", doc: docNormalization, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "backslashes become slashes before dot-dot is resolved", path: `/api/healthz\..\secure.json`, doc: docNormalization, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "a double slash before api matches no allow rule", path: "//api/secure.json", doc: docPathPractices, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "a double slash before the health check is not the health check", path: "//api/healthz", doc: docPathPractices, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "an encoded slash is kept, so the path is not the health check", path: "/api/healthz%2F..%2Fsecure.json", doc: docNormalization, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "a lower-case encoded slash is kept too", path: "/api/healthz%2f..%2fsecure.json", doc: docNormalization, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "dot-dot with an encoded slash stays inside the path", path: "/api/healthz/..%2Fsecure.json", doc: docNormalization, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "a health check prefix is not the health check", path: "/api/healthz/secure.json", doc: docAuthzAllow, wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied},
		{name: "an encoded NUL is rejected outright", path: "/api/healthz%00/../secure.json", doc: docNormalization, wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Log("follows", tt.doc)
			resp, err := sendRaw(t, clientTLS(t, env.clientCertDir, true), tt.path, nil)
			if err != nil {
				t.Fatalf("GET %s: %v", tt.path, err)
			}
			if resp.status != tt.wantStatus {
				t.Errorf("GET %s answered %v; want %d %q", tt.path, resp, tt.wantStatus, tt.wantBody)
			}
			if tt.wantBody != "" && resp.body != tt.wantBody {
				t.Errorf("GET %s: body %q; want the gateway's own %q", tt.path, resp.body, tt.wantBody)
			}
			// Whatever the status, the secret must not have come back.
			if tt.path != "/api/healthz" && (resp.status == http.StatusOK || strings.Contains(resp.body, "Hello World")) {
				t.Errorf("GET %s without a token reached the backend: %v", tt.path, resp)
			}
		})
	}
}
