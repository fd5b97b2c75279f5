package frontend

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	firebase "firebase.google.com/go/v4"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"

	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/identity"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

const testProject = "demo-acme"

// stack is the frontend wired to real collaborators on loopback: the
// Identity Platform emulator, the real Admin SDK (emulator mode) behind
// idtoken, and an mTLS server from a dev PKI standing in for the gateway.
type stack struct {
	t        testing.TB
	emulator *identity.Emulator
	admin    *auth.Client // the Admin SDK against the emulator: the frontend's Revoker
	gateway  *fakeGateway
	front    *httptest.Server
	logs     *logtest.Buffer
	cfg      Config
}

// fakeGateway answers GET /api/secure.json like the backend behind Istio,
// or, with the status the test sets, as Envoy refuses: its verdict text,
// a WWW-Authenticate naming the internal host, and its own headers. Like
// the gateway in MUTUAL mode it requires the frontend's client certificate.
type fakeGateway struct {
	url string

	mu        sync.Mutex
	status    int    // 0: answer as the backend would
	requests  int    // requests that reached it
	lastAuthz string // the Authorization header of the last request
	lastReqID string
}

func (g *fakeGateway) setStatus(code int) { g.mu.Lock(); g.status = code; g.mu.Unlock() }

func (g *fakeGateway) last() (authz, reqID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastAuthz, g.lastReqID
}

// count is how many requests have reached the gateway so far.
func (g *fakeGateway) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests
}

// What Envoy adds to its answers, which must not reach the browser.
const (
	envoyServiceTime = "X-Envoy-Upstream-Service-Time"
	envoyServer      = "istio-envoy"
)

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	status := g.status
	g.requests++
	g.lastAuthz, g.lastReqID = r.Header.Get("Authorization"), r.Header.Get("X-Request-Id")
	g.mu.Unlock()
	w.Header().Set("Server", envoyServer)
	w.Header().Set(envoyServiceTime, "1")
	switch {
	case r.URL.Path != "/api/secure.json":
		http.NotFound(w, r)
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://`+r.Host+`/api/secure.json", error="invalid_token"`)
		http.Error(w, "Jwt is expired", status)
	case status == http.StatusForbidden:
		http.Error(w, "RBAC: access denied", status)
	case status != 0:
		http.Error(w, "no healthy upstream", status)
	case !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "):
		http.Error(w, "RBAC: access denied", http.StatusForbidden)
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"message":"Hello World","uid":"u","email":"e"}`)
	}
}

func newStack(t testing.TB, mod ...func(*Config)) *stack {
	t.Helper()
	return newStackDeps(t, nil, mod...)
}

// newStackDeps is newStack with the frontend's Deps changed by deps.
func newStackDeps(t testing.TB, deps func(*Deps), mod ...func(*Config)) *stack {
	t.Helper()
	// The frontend's address comes first: the emulator answers browser
	// calls only from its configured origins, as devstack configures it.
	front := httptest.NewUnstartedServer(nil)
	t.Cleanup(front.Close)
	em, err := identity.New(identity.Config{ProjectID: testProject, StateDir: t.TempDir(), PasswordHashCost: 10,
		AllowedOrigins: []string{"http://" + front.Listener.Addr().String()}})
	if err != nil {
		t.Fatalf("identity.New: %v", err)
	}
	idp := httptest.NewServer(em.Handler())
	t.Cleanup(idp.Close)
	emuHost := strings.TrimPrefix(idp.URL, "http://")
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", emuHost)
	verifier, err := idtoken.New(context.Background(), idtoken.Config{ProjectID: testProject, EmulatorHost: emuHost})
	if err != nil {
		t.Fatalf("idtoken.New: %v", err)
	}

	bundle, err := pki.Ensure(pki.Config{Dir: t.TempDir(), GatewayHosts: []string{gatewayHost}})
	if err != nil {
		t.Fatalf("pki.Ensure: %v", err)
	}
	gwCreds, err := tlsdir.Open(tlsdir.Config{Dir: bundle.GatewayDir})
	if err != nil {
		t.Fatalf("tlsdir.Open(gateway): %v", err)
	}
	admin := adminClient(t)

	gw := &fakeGateway{}
	gw.url = startTLSServer(t, &http.Server{Handler: gw, TLSConfig: gwCreds.ServerConfig(tls.RequireAndVerifyClientCert)})
	clientCreds, err := tlsdir.Open(tlsdir.Config{Dir: bundle.FrontendDir})
	if err != nil {
		t.Fatalf("tlsdir.Open(frontend): %v", err)
	}

	cfg := Config{
		Addr:               "127.0.0.1:0",
		ProjectID:          testProject,
		FirebaseAPIKey:     "emulator-api-key",
		FirebaseAuthDomain: testProject + ".firebaseapp.com",
		AuthEmulatorHost:   emuHost,
		GatewayURL:         gw.url,
		GatewayServerName:  gatewayHost,
		ClientTLSDir:       bundle.FrontendDir,
		BackendTimeout:     5 * time.Second,
	}
	for _, m := range mod {
		m(&cfg)
	}
	logs := &logtest.Buffer{}
	d := Deps{
		Verifier:   verifier,
		Revoker:    admin,
		GatewayTLS: clientCreds,
		Logger:     logging.New(logs, slog.LevelInfo, testProject),
	}
	if deps != nil {
		deps(&d)
	}
	f, err := New(cfg, d)
	if err != nil {
		t.Fatalf("frontend.New: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	front.Config.Handler = f.Handler()
	front.Start()
	return &stack{t: t, emulator: em, admin: admin, gateway: gw, front: front, logs: logs, cfg: cfg}
}

// adminClient is the Admin SDK's client for the emulator that
// FIREBASE_AUTH_EMULATOR_HOST names at the time of the call.
func adminClient(t testing.TB) *auth.Client {
	t.Helper()
	app, err := firebase.NewApp(context.Background(), &firebase.Config{ProjectID: testProject})
	if err != nil {
		t.Fatalf("firebase.NewApp: %v", err)
	}
	c, err := app.Auth(context.Background())
	if err != nil {
		t.Fatalf("Firebase Auth client: %v", err)
	}
	return c
}

// unverifiedUser creates an account whose email is not verified yet, as
// sign-up does, and returns its uid and a fresh ID token.
func (s *stack) unverifiedUser(email string) (uid, token string) {
	s.t.Helper()
	u, err := s.admin.CreateUser(context.Background(), (&auth.UserToCreate{}).Email(email).Password("correct horse battery"))
	if err != nil {
		s.t.Fatalf("CreateUser: %v", err)
	}
	token, err = s.emulator.IDTokenFor(context.Background(), u.UID, time.Now())
	if err != nil {
		s.t.Fatalf("IDTokenFor: %v", err)
	}
	return u.UID, token
}

// user creates an account and returns its uid and a fresh ID token.
func (s *stack) user(email string) (uid, token string) {
	s.t.Helper()
	uid, err := s.emulator.EnsureUser(context.Background(), email, "correct horse battery")
	if err != nil {
		s.t.Fatalf("EnsureUser: %v", err)
	}
	token, err = s.emulator.IDTokenFor(context.Background(), uid, time.Now())
	if err != nil {
		s.t.Fatalf("IDTokenFor: %v", err)
	}
	return uid, token
}

// page GETs / (or path) with the cookies given and parses the HTML.
func (s *stack) get(path string, cookies ...*http.Cookie) (*http.Response, string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.front.URL+path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	return s.do(req)
}

func (s *stack) do(req *http.Request) (*http.Response, string) {
	s.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// csrf fetches the sign-in page and returns the CSRF cookie and token.
func (s *stack) csrf() (*http.Cookie, string) {
	s.t.Helper()
	resp, body := s.get("/")
	ck := cookieNamed(resp, "csrf")
	if ck == nil {
		s.t.Fatalf("GET / set no csrf cookie; cookies: %v", resp.Cookies())
	}
	doc := htmltest.Parse(s.t, body)
	var cfg struct {
		CSRFToken string `json:"csrfToken"`
	}
	if err := json.Unmarshal([]byte(htmltest.Text(htmltest.ByID(doc, "app-config"))), &cfg); err != nil {
		s.t.Fatalf("app-config is not JSON: %v", err)
	}
	return ck, cfg.CSRFToken
}

// postSession posts an ID token as the sign-in module does.
func (s *stack) postSession(idToken string, mod func(*http.Request)) *http.Response {
	s.t.Helper()
	ck, tok := s.csrf()
	body, _ := json.Marshal(map[string]string{"idToken": idToken})
	req, _ := http.NewRequest(http.MethodPost, s.front.URL+"/session", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", s.front.URL)
	req.Header.Set("X-CSRF-Token", tok)
	req.AddCookie(ck)
	if mod != nil {
		mod(req)
	}
	resp, _ := s.do(req)
	return resp
}

// signIn returns the session cookie for a fresh user.
func (s *stack) signIn(email string) (*http.Cookie, string) {
	s.t.Helper()
	_, token := s.user(email)
	resp := s.postSession(token, nil)
	ck := cookieNamed(resp, "session")
	if resp.StatusCode != http.StatusNoContent || ck == nil {
		s.t.Fatalf("POST /session with a good token: got %d and cookie %v, want 204 and a session cookie", resp.StatusCode, ck)
	}
	return ck, token
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
