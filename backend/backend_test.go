package backend_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/acme/cloudrun-istio-gke/backend"
	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

const project = "demo-acme"

// stack is a real identity emulator on loopback and a verifier for it.
type stack struct {
	em       *identity.Emulator
	verifier *idtoken.Firebase
	host     string       // the emulator's host:port
	admin    *auth.Client // the Admin SDK, as an operator uses it
}

func startStack(t testing.TB) *stack {
	t.Helper()
	return startStackAt(t, nil)
}

// startStackAt runs the emulator on the clock now (nil: the real one).
func startStackAt(t testing.TB, now func() time.Time) *stack {
	t.Helper()
	em, err := identity.New(identity.Config{ProjectID: project, StateDir: t.TempDir(), PasswordHashCost: 10, Now: now})
	if err != nil {
		t.Fatalf("starting the identity emulator: %v", err)
	}
	srv := httptest.NewServer(em.Handler())
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", host)
	v, err := idtoken.New(context.Background(), idtoken.Config{ProjectID: project, EmulatorHost: host})
	if err != nil {
		t.Fatalf("idtoken.New: %v", err)
	}
	app, err := firebase.NewApp(context.Background(), &firebase.Config{ProjectID: project})
	if err != nil {
		t.Fatalf("firebase.NewApp: %v", err)
	}
	admin, err := app.Auth(context.Background())
	if err != nil {
		t.Fatalf("app.Auth: %v", err)
	}
	return &stack{em: em, verifier: v, host: host, admin: admin}
}

// signIn returns a user's uid and a token issued age ago; the user's email is
// verified, as the API requires. The clock is read after the user exists:
// the emulator, like Identity Platform, refuses tokens issued before the
// account's validSince second.
func (s *stack) signIn(t testing.TB, email string, age time.Duration) (uid, token string) {
	t.Helper()
	return s.signInAs(t, email, age, true)
}

func (s *stack) signInAs(t testing.TB, email string, age time.Duration, emailVerified bool) (uid, token string) {
	t.Helper()
	uid, err := s.em.EnsureUser(context.Background(), email, "correct horse battery staple")
	if err != nil {
		t.Fatalf("EnsureUser: %v", err)
	}
	// Set either way: EnsureUser seeds users verified, as devstack's demo user.
	if _, err := s.admin.UpdateUser(context.Background(), uid, (&auth.UserToUpdate{}).EmailVerified(emailVerified)); err != nil {
		t.Fatalf("setting %s's email_verified to %v with the Admin SDK: %v", email, emailVerified, err)
	}
	token, err = s.em.IDTokenFor(context.Background(), uid, time.Now().Add(-age))
	if err != nil {
		t.Fatalf("IDTokenFor: %v", err)
	}
	return uid, token
}

// logLines parses the JSON log lines written so far.
func logLines(t *testing.T, b *logtest.Buffer) []map[string]any {
	t.Helper()
	lines, err := b.JSONLines()
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func testConfig() backend.Config {
	return backend.Config{Addr: "127.0.0.1:0", ProjectID: project, Grace: 5 * time.Second, RevocationCheck: idtoken.DefaultRevocationCheck}
}

// mustNew is backend.New for a config the test knows to be valid.
func mustNew(t testing.TB, cfg backend.Config, v idtoken.Verifier, log *slog.Logger) *backend.Server {
	t.Helper()
	b, err := backend.New(cfg, backend.Deps{Verifier: v, Logger: log})
	if err != nil {
		t.Fatalf("backend.New: %v", err)
	}
	return b
}

func newBackend(t *testing.T, v idtoken.Verifier) (*backend.Server, *httptest.Server, *logtest.Buffer) {
	t.Helper()
	logs := &logtest.Buffer{}
	b := mustNew(t, testConfig(), v, logging.New(logs, slog.LevelDebug, project))
	ts := httptest.NewServer(b.Handler())
	t.Cleanup(ts.Close)
	return b, ts, logs
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func get(t *testing.T, method, url string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, url, raw)
		}
	}
	return a
}

// aliceAnswer is /api/secure.json's answer to the user alice@example.com: the
// caller, and the uid and email at the top level that existing clients read.
func aliceAnswer(uid string) map[string]any {
	return map[string]any{"message": "Hello World", "uid": uid, "email": "alice@example.com",
		"caller": map[string]any{"kind": "user", "uid": uid, "email": "alice@example.com"}}
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func TestAPI(t *testing.T) {
	st := startStack(t)
	_, ts, logs := newBackend(t, st.verifier)
	uid, valid := st.signIn(t, "alice@example.com", 0)
	_, expired := st.signIn(t, "bob@example.com", 2*time.Hour)
	_, unverified := st.signInAs(t, "ceo@acme.test", 0, false)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The valid token's header and claims, signed with a key not the emulator's.
	msg, err := jws.Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := jws.Sign(msg.Payload(), jws.WithKey(jwa.RS256(), otherKey, jws.WithProtectedHeaders(msg.Signatures()[0].ProtectedHeaders())))
	if err != nil {
		t.Fatal(err)
	}

	unauthenticated := map[string]any{"error": "unauthenticated", "message": "A valid ID token is required."}
	invalidRequest := map[string]any{"error": "invalid_request",
		"message": "Send the ID token once, in a single Authorization: Bearer header, and never in the query string."}
	tests := []struct {
		name       string
		method     string
		path       string
		header     http.Header
		wantStatus int
		wantBody   map[string]any
		wantHeader map[string]string
	}{
		{"health answers without credentials", "GET", "/api/healthz", nil,
			200, map[string]any{"status": "ok"}, nil},
		{"the secure message greets the user whose token verifies", "GET", "/api/secure.json", bearer(valid),
			200, aliceAnswer(uid),
			map[string]string{"Cache-Control": "no-store", "Content-Type": "application/json"}},
		{"the bearer scheme is case-insensitive", "GET", "/api/secure.json",
			http.Header{"Authorization": {"bearer " + valid}},
			200, aliceAnswer(uid), nil},
		{"no token is refused with a bearer challenge", "GET", "/api/secure.json", nil,
			401, unauthenticated, map[string]string{"WWW-Authenticate": `Bearer realm="api"`}},
		{"another scheme is refused", "GET", "/api/secure.json",
			http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}}, 401, unauthenticated, nil},
		{"an empty bearer token is refused", "GET", "/api/secure.json",
			http.Header{"Authorization": {"Bearer "}}, 401, unauthenticated, nil},
		{"an expired token is refused like any other", "GET", "/api/secure.json", bearer(expired),
			401, unauthenticated,
			map[string]string{"WWW-Authenticate": `Bearer realm="api", error="invalid_token"`}},
		{"a forged token is refused like any other", "GET", "/api/secure.json", bearer(string(forged)),
			401, unauthenticated, nil},
		{"garbage is refused like any other", "GET", "/api/secure.json", bearer("garbage"),
			401, unauthenticated, nil},
		{"a valid token whose email is not verified is forbidden, with a body that says why", "GET", "/api/secure.json", bearer(unverified),
			403, map[string]any{"error": "email_not_verified",
				"message": "Verify your email address first: follow the link in the email you were sent, then sign in again."}, nil},
		// RFC 6750 sections 2 and 3.1: one method, one token; anything more is invalid_request.
		{"two Authorization headers are refused, even both valid", "GET", "/api/secure.json",
			http.Header{"Authorization": {"Bearer " + valid, "Bearer " + valid}}, 400, invalidRequest,
			map[string]string{"WWW-Authenticate": `Bearer realm="api", error="invalid_request"`}},
		{"a lowercase bearer header before the gateway's Bearer one is refused", "GET", "/api/secure.json",
			http.Header{"Authorization": {"bearer " + valid, "Bearer " + string(forged)}}, 400, invalidRequest, nil},
		{"a valid header with an access_token query parameter is refused", "GET", "/api/secure.json?access_token=x", bearer(valid),
			400, invalidRequest, nil},
		{"an access_token parameter with an escaped name is refused", "GET", "/api/secure.json?a=1&access%5Ftoken=x", bearer(valid),
			400, invalidRequest, nil},
		{"an access_token parameter whose value is bad escaping is refused", "GET", "/api/secure.json?access_token=%zz", bearer(valid),
			400, invalidRequest, nil},
		{"a token only in the query is refused as a second method, not ignored", "GET", "/api/secure.json?access_token=" + valid, nil,
			400, invalidRequest, nil},
		{"another query parameter is harmless", "GET", "/api/secure.json?x_access_token=1", bearer(valid),
			200, aliceAnswer(uid), nil},
		{"an unknown path is a JSON 404", "GET", "/api/nothing", bearer(valid),
			404, map[string]any{"error": "not_found", "message": "No such resource."}, nil},
		{"a write to the secure message is a JSON 405", "POST", "/api/secure.json", bearer(valid),
			405, map[string]any{"error": "method_not_allowed", "message": "Method not allowed."}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := get(t, tt.method, ts.URL+tt.path, tt.header)
			if a.status != tt.wantStatus {
				t.Errorf("status %d, want %d (body %v)", a.status, tt.wantStatus, a.body)
			}
			if !equalJSON(a.body, tt.wantBody) {
				t.Errorf("body %v, want %v", a.body, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if got := a.header.Get(k); got != v {
					t.Errorf("header %s: %q, want %q", k, got, v)
				}
			}
			if got := a.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
		})
	}

	t.Run("no token reaches the logs", func(t *testing.T) {
		out := logs.String()
		for name, tok := range map[string]string{"valid": valid, "expired": expired, "forged": string(forged), "unverified": unverified} {
			// The signature alone is enough to replay nothing, but a log
			// must not even hold a token's signed part.
			parts := strings.Split(tok, ".")
			if strings.Contains(out, parts[1]) || strings.Contains(out, parts[2]) {
				t.Errorf("the %s token appears in the logs:\n%s", name, out)
			}
		}
	})
}

// TestASignedOutUserIsRefusedWithinTheRevocationBound shows the promise the
// backend makes (Config.RevocationCheck, 30 s by default): once a user's
// tokens are revoked, as sign-out does, the token they hold is refused no
// later than the bound, although it is valid for most of an hour more. The
// backend's clock is a fake one; the emulator runs ten minutes behind the
// Admin SDK, so that the revocation, stamped by the SDK's clock, postdates
// the token without the test sleeping.
func TestASignedOutUserIsRefusedWithinTheRevocationBound(t *testing.T) {
	const bound = idtoken.DefaultRevocationCheck
	st := startStackAt(t, func() time.Time { return time.Now().Add(-10 * time.Minute) })
	clock := clocktest.New(time.Now())
	v, err := idtoken.New(t.Context(), idtoken.Config{ProjectID: project, EmulatorHost: st.host,
		Now: clock.Now, RevocationCheck: bound})
	if err != nil {
		t.Fatal(err)
	}
	_, ts, _ := newBackend(t, v)
	uid, tok := st.signIn(t, "alice@example.com", 10*time.Minute)
	served := aliceAnswer(uid)
	refused := map[string]any{"error": "unauthenticated", "message": "A valid ID token is required."}

	steps := []struct {
		name       string
		do         func(t *testing.T)
		wantStatus int
		wantBody   map[string]any
	}{
		{"before sign-out the user is served", nil, 200, served},
		{"sign-out revokes the user's tokens", func(t *testing.T) {
			if err := st.admin.RevokeRefreshTokens(t.Context(), uid); err != nil {
				t.Fatal(err)
			}
		}, 200, served},
		{"just inside the bound the earlier check still stands", func(*testing.T) { clock.Advance(bound - time.Second) }, 200, served},
		{"at the bound the token is refused", func(*testing.T) { clock.Advance(time.Second) }, 401, refused},
		{"and stays refused", func(*testing.T) { clock.Advance(time.Hour) }, 401, refused},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.do != nil {
				s.do(t)
			}
			a := get(t, "GET", ts.URL+"/api/secure.json", bearer(tok))
			if a.status != s.wantStatus || !equalJSON(a.body, s.wantBody) {
				t.Fatalf("got %d %v; want %d %v", a.status, a.body, s.wantStatus, s.wantBody)
			}
		})
	}
}

// equalJSON compares decoded JSON objects.
func equalJSON(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestEveryRequestIsLoggedWithItsIDAndTrace(t *testing.T) {
	st := startStack(t)
	_, ts, logs := newBackend(t, st.verifier)
	uid, tok := st.signIn(t, "alice@example.com", 0)

	tests := []struct {
		name         string
		path         string
		header       http.Header
		wantID       string // "" means a fresh one is expected
		wantTrace    string
		wantUID      string
		wantAnswer   int
		wantSeverity string
	}{
		{"an incoming request id, as Envoy sets it, is kept", "/api/secure.json",
			http.Header{"X-Request-Id": {"0b5b2a3c-9c1e-4a43-8d2f-7d3f0a1e2b3c"},
				"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
			"0b5b2a3c-9c1e-4a43-8d2f-7d3f0a1e2b3c", "projects/demo-acme/traces/4bf92f3577b34da6a3ce929d0e0e4736",
			"", 401, "INFO"},
		{"a request without an id gets a fresh one", "/api/secure.json",
			http.Header{"Authorization": {"Bearer " + tok},
				"X-Cloud-Trace-Context": {"105445aa7843bc8bf206b12000100000/1;o=1"}},
			"", "projects/demo-acme/traces/105445aa7843bc8bf206b12000100000", uid, 200, "INFO"},
		{"an id with spaces is replaced", "/api/healthz",
			http.Header{"X-Request-Id": {"forged id with spaces"}}, "", "", "", 200,
			"DEBUG"}, // a healthy probe answer is logged below the default level
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			before := len(logLines(t, logs))
			a := get(t, "GET", ts.URL+path, tt.header)
			if a.status != tt.wantAnswer {
				t.Fatalf("status %d, want %d", a.status, tt.wantAnswer)
			}
			id := a.header.Get("X-Request-Id")
			if tt.wantID != "" && id != tt.wantID {
				t.Errorf("X-Request-Id answered %q, want the incoming %q", id, tt.wantID)
			}
			if tt.wantID == "" && (len(id) < 16 || id == tt.header.Get("X-Request-Id")) {
				t.Errorf("X-Request-Id answered %q, want a freshly generated id", id)
			}
			lines := logLines(t, logs)[before:]
			var access map[string]any
			for _, l := range lines {
				if l["requestId"] != id {
					t.Errorf("log line without the request id %q: %v", id, l)
				}
				if l["message"] == "request" {
					access = l
				}
			}
			if access == nil {
				t.Fatalf("no access log line among %v", lines)
			}
			want := map[string]any{"severity": tt.wantSeverity, "component": "backend"}
			if tt.wantTrace != "" {
				want["logging.googleapis.com/trace"] = tt.wantTrace
			}
			if tt.wantUID != "" {
				// Istio's request.auth.principal: issuer/subject.
				want["requestPrincipal"] = "https://securetoken.google.com/" + project + "/" + tt.wantUID
			}
			for k, v := range want {
				if access[k] != v {
					t.Errorf("access log %s = %v, want %v (line %v)", k, access[k], v, access)
				}
			}
			hr, _ := access["httpRequest"].(map[string]any)
			wantHR := map[string]any{"requestMethod": "GET", "requestUrl": ts.URL + path, "status": float64(tt.wantAnswer)}
			for k, v := range wantHR {
				if hr[k] != v {
					t.Errorf("access log httpRequest.%s = %v, want %v (line %v)", k, hr[k], v, access)
				}
			}
		})
	}
}

func TestAVerifierThatCannotCheckAnswers503(t *testing.T) {
	st := startStack(t)
	_, tok := st.signIn(t, "alice@example.com", 0)
	// A verifier whose emulator is gone: its keys cannot be fetched.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", down.Listener.Addr().String())
	v, err := idtoken.New(t.Context(), idtoken.Config{ProjectID: project,
		EmulatorHost: down.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	_, ts, logs := newBackend(t, v)

	a := get(t, "GET", ts.URL+"/api/secure.json", bearer(tok))
	want := map[string]any{"error": "unavailable", "message": "The request could not be authenticated right now; try again."}
	if a.status != 503 || !equalJSON(a.body, want) {
		t.Fatalf("got %d %v, want 503 %v", a.status, a.body, want)
	}
	found := false
	for _, l := range logLines(t, logs) {
		if l["severity"] == "ERROR" && strings.Contains(l["error"].(string), "JWKS") {
			found = true
		}
	}
	if !found {
		t.Errorf("no ERROR line naming the JWKS failure in the logs:\n%s", logs.String())
	}
}

// panickingVerifier stands for a bug anywhere below a handler.
type panickingVerifier struct{}

func (panickingVerifier) Verify(context.Context, string) (*auth.Token, error) {
	panic("verifier bug")
}

func TestAPanicIsAJSON500LoggedWithItsStack(t *testing.T) {
	_, ts, logs := newBackend(t, panickingVerifier{})
	a := get(t, "GET", ts.URL+"/api/secure.json", bearer("x.y.z"))
	want := map[string]any{"error": "internal", "message": "Internal error."}
	if a.status != 500 || !equalJSON(a.body, want) {
		t.Fatalf("got %d %v, want 500 %v", a.status, a.body, want)
	}
	var logged bool
	for _, l := range logLines(t, logs) {
		// In the message, with its stack, where Error Reporting finds it.
		msg, _ := l["message"].(string)
		if l["severity"] == "ERROR" && strings.Contains(msg, "verifier bug") && strings.Contains(msg, "goroutine") {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no ERROR line with the panic and its stack:\n%s", logs.String())
	}
	// The server survives: the next request is served.
	if a := get(t, "GET", ts.URL+"/api/healthz", nil); a.status != 200 {
		t.Errorf("health after a panic: %d, want 200", a.status)
	}
}

// gatedVerifier holds each verification until released, to keep a request
// in flight while the server shuts down.
type gatedVerifier struct {
	idtoken.Verifier
	started chan struct{}
	release chan struct{}
}

func (g gatedVerifier) Verify(ctx context.Context, tok string) (*auth.Token, error) {
	g.started <- struct{}{}
	<-g.release
	return g.Verifier.Verify(ctx, tok)
}

func TestShutdownFailsReadinessAndFinishesInFlightRequests(t *testing.T) {
	st := startStack(t)
	uid, tok := st.signIn(t, "alice@example.com", 0)
	gate := gatedVerifier{Verifier: st.verifier, started: make(chan struct{}), release: make(chan struct{})}
	logs := &logtest.Buffer{}
	log := logging.New(logs, slog.LevelDebug, project)
	b := mustNew(t, testConfig(), gate, log)
	ln, err := serve.Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	// As cmd/backend serves it.
	go func() {
		served <- serve.Run(ctx, serve.Options{Name: "backend", Handler: b.Handler(), Listener: ln, Logger: log,
			Grace: testConfig().Grace, OnShutdown: b.BeginDrain})
	}()

	inflight := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/secure.json", nil)
		req.Header = bearer(tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- answer{status: -1, body: map[string]any{"error": err.Error()}}
			return
		}
		defer resp.Body.Close()
		a := answer{status: resp.StatusCode}
		json.NewDecoder(resp.Body).Decode(&a.body)
		inflight <- a
	}()

	<-gate.started
	cancel() // what SIGTERM does to the context cmd/backend passes in

	// Readiness fails as soon as shutdown has begun. The listener is closing,
	// so ask the handler directly, as a kubelet with a kept-alive connection
	// would see it.
	<-b.ShutdownBegan()
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "shutting down") {
		t.Errorf("readiness during shutdown: got %d %s, want 503 shutting down", rec.Code, rec.Body)
	}

	close(gate.release)
	a := <-inflight
	want := aliceAnswer(uid)
	if a.status != 200 || !equalJSON(a.body, want) {
		t.Fatalf("in-flight request during shutdown: got %d %v, want 200 %v", a.status, a.body, want)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after a graceful shutdown: %v, want nil", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/api/healthz"); err == nil {
		t.Errorf("the server still accepts connections after shutdown")
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    backend.Config
		wantErr string
	}{
		{"PORT makes the backend listen on every interface, as Cloud Run and GKE expect",
			nil, map[string]string{"PORT": "8080", "GOOGLE_CLOUD_PROJECT": "demo-acme"},
			backend.Config{Addr: ":8080", ProjectID: "demo-acme", Grace: 8 * time.Second, RevocationCheck: 30 * time.Second}, ""},
		{"without PORT the backend stays on loopback",
			[]string{"-project", "demo-acme"}, nil,
			backend.Config{Addr: backend.DefaultAddr, ProjectID: "demo-acme", Grace: 8 * time.Second, RevocationCheck: 30 * time.Second}, ""},
		{"flags win over the environment",
			[]string{"-project", "flag-project", "-log-level", "DEBUG", "-addr", "127.0.0.1:9000"},
			map[string]string{"GOOGLE_CLOUD_PROJECT": "env-project", "LOG_LEVEL": "ERROR", "PORT": "8080"},
			backend.Config{Addr: "127.0.0.1:9000", ProjectID: "flag-project", LogLevel: slog.LevelDebug, Grace: 8 * time.Second, RevocationCheck: 30 * time.Second}, ""},
		{"the emulator host comes from the variable the SDK reads",
			[]string{"-project", "demo-acme"}, map[string]string{"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099"},
			backend.Config{Addr: backend.DefaultAddr, ProjectID: "demo-acme", AuthEmulatorHost: "127.0.0.1:9099", Grace: 8 * time.Second, RevocationCheck: 30 * time.Second}, ""},
		{"the revocation check period can be set", []string{"-project", "p"}, map[string]string{"REVOCATION_CHECK": "10s"},
			backend.Config{Addr: backend.DefaultAddr, ProjectID: "p", Grace: 8 * time.Second, RevocationCheck: 10 * time.Second}, ""},
		{"a revocation check of zero is refused", []string{"-project", "p", "-revocation-check", "0s"}, nil, backend.Config{}, "RevocationCheck 0s must be positive"},
		{"a missing project is named", nil, nil, backend.Config{}, "ProjectID is required"},
		{"a bad address is named", []string{"-project", "p", "-addr", "nowhere"}, nil, backend.Config{}, `Addr "nowhere"`},
		{"a bad log level is named", []string{"-project", "p"}, map[string]string{"LOG_LEVEL": "LOUD"}, backend.Config{}, "LOG_LEVEL"},
		{"the machine allowlist and audience come from the environment",
			[]string{"-project", "p"}, map[string]string{"MACHINE_CALLERS": "reporter@p.iam.gserviceaccount.com, auditor@p.iam.gserviceaccount.com", "API_AUDIENCE": "https://api.internal.example"},
			backend.Config{Addr: backend.DefaultAddr, ProjectID: "p", Grace: 8 * time.Second, RevocationCheck: 30 * time.Second,
				MachineCallers: []string{"reporter@p.iam.gserviceaccount.com", "auditor@p.iam.gserviceaccount.com"}, MachineAudience: "https://api.internal.example"}, ""},
		{"an allowlist without an audience is refused", []string{"-project", "p", "-machine-callers", "reporter@p.iam.gserviceaccount.com"}, nil, backend.Config{}, "MachineAudience is required"},
		{"a person on the machine allowlist is refused", []string{"-project", "p", "-machine-callers", "ada@example.com", "-machine-audience", "x"}, nil, backend.Config{}, `"ada@example.com" is not a service account's email`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := backend.ParseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseConfig: got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseConfig: got (%+v, %v), want (%+v, nil)", got, err, tt.want)
			}
		})
	}
}

func TestConfigPrintsEveryFieldAndNoSecret(t *testing.T) {
	var buf bytes.Buffer
	cfg := backend.Config{Addr: ":8080", ProjectID: "demo-acme", AuthEmulatorHost: "127.0.0.1:9099", Grace: time.Second, Drain: 3 * time.Second, RevocationCheck: 30 * time.Second,
		MachineCallers: []string{"reporter@demo-acme.iam.gserviceaccount.com"}, MachineAudience: "https://api.internal.example", GoogleCertsURL: "http://127.0.0.1:9300/certs"}
	logging.New(&buf, slog.LevelInfo, "").Info("config", "config", cfg)
	var line struct{ Config map[string]string }
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"addr": ":8080", "projectId": "demo-acme",
		"tokenVerification": "emulator at 127.0.0.1:9099", "logLevel": "INFO", "grace": "1s", "drain": "3s", "revocationCheck": "30s",
		"machineCallers": "reporter@demo-acme.iam.gserviceaccount.com", "machineAudience": "https://api.internal.example", "googleCertsUrl": "http://127.0.0.1:9300/certs"}
	if !equalStrings(line.Config, want) {
		t.Fatalf("config logged as %v, want %v", line.Config, want)
	}
}

func equalStrings(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// BenchmarkSecureJSON measures GET /api/secure.json through the handler with
// the real verifier against the real emulator, as a repeat request of one
// user costs: the token and the user's revocation state from their caches.
func BenchmarkSecureJSON(b *testing.B) {
	st := startStack(b)
	_, tok := st.signIn(b, "alice@example.com", 0)
	// As cmd/backend builds it: with the revocation check, whose per-user
	// lookup is made once here, the benchmark being shorter than 30 s.
	v, err := idtoken.New(b.Context(), idtoken.Config{ProjectID: project, EmulatorHost: st.host,
		RevocationCheck: idtoken.DefaultRevocationCheck})
	if err != nil {
		b.Fatal(err)
	}
	srv := mustNew(b, testConfig(), v, slog.New(slog.DiscardHandler))
	h := srv.Handler()
	req := httptest.NewRequest("GET", "/api/secure.json", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
