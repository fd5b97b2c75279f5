package apikeys

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

const project = "demo-acme"

// mgmt is the service with a real verifier against the identity emulator,
// its HTTP API on loopback, and its gRPC check.
type mgmt struct {
	svc    *Service
	logs   *logtest.Buffer
	http   *httptest.Server
	check  func(t *testing.T, key string) int
	tokens map[string]string // user → ID token
	uids   map[string]string
}

func startMgmt(t *testing.T, users ...string) *mgmt {
	t.Helper()
	em, err := identity.New(identity.Config{ProjectID: project, StateDir: t.TempDir(), PasswordHashCost: 10})
	if err != nil {
		t.Fatal(err)
	}
	emSrv := httptest.NewServer(em.Handler())
	t.Cleanup(emSrv.Close)
	host := emSrv.Listener.Addr().String()
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", host)
	v, err := idtoken.New(context.Background(), idtoken.Config{ProjectID: project, EmulatorHost: host})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	s, err := New(Config{Catalog: testCatalog(t, 100, 1000), Store: NewMemoryStore(), Verifier: v,
		Logger: logging.New(logs, slog.LevelDebug, project)})
	if err != nil {
		t.Fatal(err)
	}
	m := &mgmt{logs: logs, svc: s, http: httptest.NewServer(s.Handler()), tokens: map[string]string{}, uids: map[string]string{}}
	t.Cleanup(m.http.Close)
	_, client := startGRPC(t, s)
	m.check = func(t *testing.T, key string) int {
		t.Helper()
		r, err := client.Check(context.Background(), checkRequest("GET", "/api/secure.json", map[string]string{"x-api-key": key}))
		if err != nil {
			t.Fatal(err)
		}
		if d := r.GetDeniedResponse(); d != nil {
			return int(d.GetStatus().GetCode())
		}
		return 200
	}
	for _, u := range users {
		uid, err := em.EnsureUser(context.Background(), u+"@example.com", "correct horse battery staple")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := em.IDTokenFor(context.Background(), uid, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m.tokens[u], m.uids[u] = tok, uid
	}
	return m
}

// call makes a management request as user ("" for none) and decodes the
// JSON answer into out when it is not nil.
func (m *mgmt) call(t *testing.T, user, method, path string, body any, out any) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, m.http.URL+ManagementPrefix+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok, ok := m.tokens[user]; ok {
		req.Header.Set("Authorization", "Bearer "+tok)
	} else if user != "" {
		req.Header.Set("Authorization", "Bearer "+user) // a token that is not one
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return resp
}

func TestManagementAPI(t *testing.T) {
	m := startMgmt(t, "alice", "bob")
	var created CreatedApp
	resp := m.call(t, "alice", "POST", "/apps", CreateAppRequest{Name: "Alice's dashboard", Products: []string{"secure-message"}}, &created)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: got %d, want 201", resp.StatusCode)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the answer with the key may be cached: Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	appID, key := created.App.ID, created.Key

	t.Run("the key shown once works at once", func(t *testing.T) {
		if got := m.check(t, key); got != 200 {
			t.Fatalf("check with the new key: got %d, want 200", got)
		}
	})
	t.Run("the owner lists the app, without its key", func(t *testing.T) {
		var list struct{ Apps []json.RawMessage }
		if resp := m.call(t, "alice", "GET", "/apps", nil, &list); resp.StatusCode != 200 || len(list.Apps) != 1 {
			t.Fatalf("got %d with %d apps, want 200 with 1", resp.StatusCode, len(list.Apps))
		}
		if s := string(list.Apps[0]); !strings.Contains(s, appID) || strings.Contains(s, key) ||
			strings.Contains(s, hashKey(key).String()) {
			t.Errorf("listed app %s: want its id, neither the key nor its hash", s)
		}
	})
	t.Run("another user does not see it", func(t *testing.T) {
		var list struct{ Apps []AppView }
		if resp := m.call(t, "bob", "GET", "/apps", nil, &list); resp.StatusCode != 200 || len(list.Apps) != 0 {
			t.Fatalf("bob's list: got %d with %v, want 200 and nothing", resp.StatusCode, list.Apps)
		}
	})
	for _, tt := range []struct{ method, path string }{
		{"GET", "/apps/" + appID},
		{"GET", "/apps/" + appID + "/usage"},
		{"POST", "/apps/" + appID + "/revoke"},
	} {
		t.Run("another user gets 404 for "+tt.method+" "+strings.Replace(tt.path, appID, "{id}", 1), func(t *testing.T) {
			if resp := m.call(t, "bob", tt.method, tt.path, nil, nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("got %d, want 404 as for an app that does not exist", resp.StatusCode)
			}
			if got := m.check(t, key); got != 200 {
				t.Fatalf("alice's key after bob's attempt: got %d, want 200", got)
			}
		})
	}
	for _, user := range []string{"", "not-a-token"} {
		t.Run("a caller without a valid ID token gets 401 ("+user+")", func(t *testing.T) {
			if resp := m.call(t, user, "GET", "/apps", nil, nil); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("got %d, want 401", resp.StatusCode)
			}
		})
	}
	t.Run("a signed-in user reads the products to pick from", func(t *testing.T) {
		var list struct{ Products []Product }
		if resp := m.call(t, "bob", "GET", "/products", nil, &list); resp.StatusCode != 200 || len(list.Products) != 2 ||
			list.Products[0].ID != "secure-message" || list.Products[0].Quota.PerMinute != 100 {
			t.Fatalf("got %d, %+v; want 200 and the catalog's two products", resp.StatusCode, list.Products)
		}
	})
	t.Run("an unknown product is refused", func(t *testing.T) {
		resp := m.call(t, "alice", "POST", "/apps", CreateAppRequest{Name: "x", Products: []string{"nope"}}, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("got %d, want 400", resp.StatusCode)
		}
	})
	t.Run("usage shows the checks by status, and the quota left", func(t *testing.T) {
		var u UsageView
		if resp := m.call(t, "alice", "GET", "/apps/"+appID+"/usage?window=1h", nil, &u); resp.StatusCode != 200 {
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
		var ok int64
		for _, mn := range u.Minutes {
			ok += mn.ByStatus["200"]
		}
		// One check above, and one after each of bob's three attempts.
		if ok != 4 {
			t.Errorf("allowed requests in usage: got %d, want 4 (%+v)", ok, u.Minutes)
		}
		if len(u.Quota) != 1 || u.Quota[0].Product != "secure-message" || u.Quota[0].RemainingMinute != 96 {
			t.Errorf("quota: got %+v, want secure-message with 96 of 100 left this minute", u.Quota)
		}
	})
	t.Run("the owner revokes, and the key stops working on the next request", func(t *testing.T) {
		var v AppView
		if resp := m.call(t, "alice", "POST", "/apps/"+appID+"/revoke", nil, &v); resp.StatusCode != 200 || v.Active {
			t.Fatalf("revoke: got %d, %+v; want 200 and inactive", resp.StatusCode, v)
		}
		if got := m.check(t, key); got != http.StatusUnauthorized {
			t.Fatalf("check after revocation: got %d, want 401", got)
		}
	})
	t.Run("neither keys nor tokens reach the log", func(t *testing.T) {
		log := m.logs.String()
		if !strings.Contains(log, appID) {
			t.Fatalf("the log does not even name the app: %s", log)
		}
		// The shared access line, naming the user as every hop does.
		if !strings.Contains(log, `"component":"apikeys"`) || !strings.Contains(log, `"requestPrincipal":"https://securetoken.google.com/`+project+"/"+m.uids["alice"]+`"`) {
			t.Errorf("no access line of component apikeys with alice as requestPrincipal: %s", log)
		}
		for name, secret := range map[string]string{"the key": key, "alice's token": m.tokens["alice"], "bob's token": m.tokens["bob"]} {
			if strings.Contains(log, secret) {
				t.Errorf("the log contains %s", name)
			}
		}
	})
	t.Run("metrics count the outcomes", func(t *testing.T) {
		srv := httptest.NewServer(m.svc.MetricsHandler())
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, want := range []string{
			`apikeys_checks_total{outcome="allowed",product="secure-message"} 4`,
			`apikeys_checks_total{outcome="revoked",product=""} 1`,
			`apikeys_check_duration_seconds_count 5`,
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
}
