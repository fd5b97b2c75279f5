package backend_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/local/google"
)

const (
	apiAudience = "https://api.internal.example"
	reporter    = "reporter@demo-acme.iam.gserviceaccount.com"
	intruder    = "intruder@demo-acme.iam.gserviceaccount.com"
)

// googleStandIn is local/google on loopback: the signer of workloads' ID
// tokens and the keys the backend checks them against.
type googleStandIn struct {
	g     *google.Google
	state string
	srv   *httptest.Server
}

func startGoogle(t *testing.T) *googleStandIn {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	state := filepath.Join(t.TempDir(), "google")
	g, err := google.New(google.Config{ProjectID: project, StateDir: state, URL: "http://" + srv.Listener.Addr().String(),
		ServiceAccounts: []string{reporter, intruder}})
	if err != nil {
		t.Fatalf("google.New: %v", err)
	}
	srv.Config.Handler = g.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return &googleStandIn{g: g, state: state, srv: srv}
}

// token signs an ID token for email and audience issued at iat (zero: now).
func (gs *googleStandIn) token(t *testing.T, email, audience string, iat time.Time) string {
	t.Helper()
	g := gs.g
	if !iat.IsZero() {
		var err error
		g, err = google.New(google.Config{ProjectID: project, StateDir: gs.state, URL: "http://127.0.0.1:1",
			ServiceAccounts: []string{reporter, intruder}, Now: func() time.Time { return iat }})
		if err != nil {
			t.Fatal(err)
		}
	}
	tok, err := g.SignIDToken(email, audience)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// withClaims is a token for email and audience whose claims edit changes
// before the stand-in signs them: a token Google's keys verify that Google
// would never issue.
func (gs *googleStandIn) withClaims(t *testing.T, email, audience string, edit func(map[string]any)) string {
	t.Helper()
	tok, err := gs.g.SignIDTokenWith(email, audience, edit)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// es256 re-signs tok's claims with a fresh P-256 key and alg ES256: the
// validator would look such a token's key up in IAP's key set, on Google.
func es256(t *testing.T, tok string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.Sign(msg.Payload(), jws.WithKey(jwa.ES256(), key))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func machineBackend(t *testing.T, st *stack, gs *googleStandIn, callers ...string) (*httptest.Server, *logtest.Buffer) {
	t.Helper()
	cfg := testConfig()
	cfg.MachineCallers, cfg.MachineAudience, cfg.GoogleCertsURL = callers, apiAudience, gs.g.CertsURL()
	logs := &logtest.Buffer{}
	ts := httptest.NewServer(mustNew(t, cfg, st.verifier, logging.New(logs, slog.LevelDebug, project)).Handler())
	t.Cleanup(ts.Close)
	return ts, logs
}

func TestAWorkloadCallsWithItsGoogleIDToken(t *testing.T) {
	st := startStack(t)
	gs := startGoogle(t)
	ts, logs := machineBackend(t, st, gs, reporter)
	uid, user := st.signIn(t, "alice@example.com", 0)
	valid := gs.token(t, reporter, apiAudience, time.Time{})

	unauthenticated := map[string]any{"error": "unauthenticated", "message": "A valid ID token is required."}
	notAllowed := map[string]any{"error": "caller_not_allowed", "message": "This service account may not call the API."}
	tests := []struct {
		name       string
		token      string
		wantStatus int
		wantBody   map[string]any
	}{
		{"a service account on the allowlist is answered by email", valid,
			200, map[string]any{"message": "Hello World", "caller": map[string]any{"kind": "service-account", "email": reporter}}},
		{"a user is still answered as before, and named as a user", user, 200, aliceAnswer(uid)},
		{"a service account not on the allowlist is forbidden", gs.token(t, intruder, apiAudience, time.Time{}), 403, notAllowed},
		{"a token for another audience is refused", gs.token(t, reporter, "https://other.example", time.Time{}), 401, unauthenticated},
		{"an expired token is refused", gs.token(t, reporter, apiAudience, time.Now().Add(-2*time.Hour)), 401, unauthenticated},
		{"a token Google's keys verify but another issuer names is refused: the validator does not check iss",
			gs.withClaims(t, reporter, apiAudience, func(c map[string]any) { c["iss"] = "https://accounts.example.com" }), 401, unauthenticated},
		{"a token without an email is refused: there is nothing to match the allowlist against",
			gs.withClaims(t, reporter, apiAudience, func(c map[string]any) { delete(c, "email"); delete(c, "email_verified") }), 401, unauthenticated},
		{"a token whose email is not verified is forbidden",
			gs.withClaims(t, reporter, apiAudience, func(c map[string]any) { c["email_verified"] = false }), 403, notAllowed},
		{"a token with a broken signature is refused", valid[:len(valid)-6] + "AAAAAA", 401, unauthenticated},
		{"an ES256 token is refused without fetching IAP's keys from Google", es256(t, valid), 401, unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := get(t, "GET", ts.URL+"/api/secure.json", bearer(tt.token))
			if a.status != tt.wantStatus || !equalJSON(a.body, tt.wantBody) {
				t.Errorf("got %d %v, want %d %v", a.status, a.body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	t.Run("the access log names the service account and never holds its token", func(t *testing.T) {
		var named bool
		for _, l := range logLines(t, logs) {
			req, _ := l["httpRequest"].(map[string]any)
			if l["message"] == "request" && l["serviceAccount"] == reporter && req["status"] == float64(200) &&
				strings.HasPrefix(fmt.Sprint(l["requestPrincipal"]), "https://accounts.google.com/") {
				named = true
			}
		}
		if !named {
			t.Errorf("no access line with serviceAccount %s, a Google request principal and status 200:\n%s", reporter, logs.String())
		}
		if s := logs.String(); strings.Contains(s, valid) {
			t.Error("the log holds a service account's ID token")
		}
	})
}

func TestWithoutAnAllowlistNoWorkloadMayCall(t *testing.T) {
	st := startStack(t)
	gs := startGoogle(t)
	_, ts, _ := newBackend(t, st.verifier) // no MachineCallers
	a := get(t, "GET", ts.URL+"/api/secure.json", bearer(gs.token(t, reporter, apiAudience, time.Time{})))
	if a.status != http.StatusUnauthorized {
		t.Errorf("got %d %v, want 401: without an allowlist a Google ID token is just not a user's", a.status, a.body)
	}
}
