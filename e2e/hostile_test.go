package e2e

// The hostile-input tests: one per server attacked, each in its own file
// (hostile_gateway_test.go, hostile_backend_test.go,
// hostile_frontend_test.go, hostile_emulator_test.go), its rows built from
// one shared fixture (newHostileFixture) and run by runAttacks. A new row
// goes in the table of the server it attacks.

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

	"github.com/acme/cloudrun-istio-gke/local/stack"
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

// Raw requests the smuggling and header rows write, the Host (twice in clTE)
// to be filled in.
const (
	clTE      = "POST /api/healthz HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/secure.json HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
	clCL      = "POST /api/healthz HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"
	teTE      = "POST /api/healthz HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
	teSpace   = "POST /api/healthz HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
	bareCR    = "GET /api/healthz HTTP/1.1\r\nHost: %s\r\nX-A: a\rX-Injected: b\r\n\r\n"
	twoHosts  = "GET /api/healthz HTTP/1.1\r\nHost: %s\r\nHost: evil.example\r\n\r\n"
	nulHeader = "GET /api/healthz HTTP/1.1\r\nHost: %s\r\nX-A: a\x00b\r\n\r\n"
	// net/http's own refusals, written before any handler runs (the local
	// gateway's codec is net/http's too; Envoy's wording differs).
	body400 = "400 Bad Request"
	body431 = "431 Request Header Fields Too Large"
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

// hitCounter counts the requests the attacker's key server answered; a copy
// shares the count, so that every table can name it.
type hitCounter struct{ *atomic.Int64 }

// hostileFixture is what the rows of every hostile table are built from: the
// test user's tokens, ways to alter and re-sign them, an attacker's key server,
// and senders for each server. Each field is named as the rows name it.
type hostileFixture struct {
	st                 *stack.Stack
	tk                 tokens
	attackerKey        *ecdsa.PrivateKey
	attackerHits       hitCounter
	attacker           *httptest.Server
	attackerSigned     func(t *testing.T, extra map[string]any, claims map[string]any) string
	withHeader         func(t *testing.T, h map[string]any) string
	withPayload        func(t *testing.T, payload string) string
	now                int64
	signed             func(t *testing.T, changes map[string]any) string
	bearer             func(tok string) http.Header
	gw                 func(path string, h func(t *testing.T) http.Header) func(t *testing.T) (exchange, error)
	gwToken            func(tok func(t *testing.T) string) func(t *testing.T) (exchange, error)
	backendHost        string
	frontendHost       string
	identityHost       string
	be                 func(tok func(t *testing.T) string, h http.Header) func(t *testing.T) (exchange, error)
	big                string
	nested             func(depth int) string
	signInBody         func(email, password string) string
	emu                func(method, body string) func(t *testing.T) (exchange, error)
	origin             string
	session            func(path string, body func(t *testing.T) string, change func(h http.Header, cookie *http.Cookie, token *string)) func(t *testing.T) (exchange, error)
	idTokenBody        func(tok func(t *testing.T) string) func(t *testing.T) string
	conversation       func(host string, useTLS bool, raw string) func(t *testing.T) ([]exchange, error)
	oneAnswerThenClose func(host string, useTLS bool, raw string) func(t *testing.T) (exchange, error)
	smuggle            func(host string, useTLS bool, head string) func(t *testing.T) (exchange, error)
	gwAddr             string
	gwName             string
	unauth             map[string]string
	invalidRequest     map[string]string
}

// newHostileFixture needs the local stack: the rows craft tokens with the
// local emulator's key and reach every server directly.
func newHostileFixture(t *testing.T) *hostileFixture {
	st := requireLocal(t, "the hostile table crafts tokens with the local emulator's key and reaches every server directly")
	tk := userTokens(t)

	// An attacker's own key and JWKS, to sign tokens whose headers point at it.
	attackerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attackerHits := hitCounter{new(atomic.Int64)}
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		pub, _ := jwk.Import(attackerKey.Public())
		set := jwk.NewSet()
		set.AddKey(pub)
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(attacker.Close)
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
	gwName := env.gatewayServerName
	unauth := map[string]string{"error": "unauthenticated"}
	invalidRequest := map[string]string{"error": "invalid_request"}

	return &hostileFixture{
		st:                 st,
		tk:                 tk,
		attackerKey:        attackerKey,
		attackerHits:       attackerHits,
		attacker:           attacker,
		attackerSigned:     attackerSigned,
		withHeader:         withHeader,
		withPayload:        withPayload,
		now:                now,
		signed:             signed,
		bearer:             bearer,
		gw:                 gw,
		gwToken:            gwToken,
		backendHost:        backendHost,
		frontendHost:       frontendHost,
		identityHost:       identityHost,
		be:                 be,
		big:                big,
		nested:             nested,
		signInBody:         signInBody,
		emu:                emu,
		origin:             origin,
		session:            session,
		idTokenBody:        idTokenBody,
		conversation:       conversation,
		oneAnswerThenClose: oneAnswerThenClose,
		smuggle:            smuggle,
		gwAddr:             gwAddr,
		gwName:             gwName,
		unauth:             unauth,
		invalidRequest:     invalidRequest,
	}
}

// TestHostileTablesHoldAtLeast60Attacks keeps the tables, together, as large
// as issue 7 asks.
func TestHostileTablesHoldAtLeast60Attacks(t *testing.T) {
	h := newHostileFixture(t)
	n := len(gatewayAttacks(h)) + len(backendAttacks(h)) + len(frontendAttacks(h)) + len(emulatorAttacks(h))
	if n < 60 {
		t.Fatalf("the tables have %d attacks; issue 7 asks for at least 60", n)
	}
}

// runAttacks sends each attack and checks that it met exactly its refusal;
// a 200 must be the backend's answer for tk's user.
func runAttacks(t *testing.T, tk tokens, tests []attack) {
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

func noAttackerHits(t *testing.T, hits *hitCounter) {
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
