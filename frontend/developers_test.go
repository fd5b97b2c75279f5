package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/net/html"
	"google.golang.org/grpc"

	"github.com/acme/cloudrun-istio-gke/apikeys"
	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/gateway"
	"github.com/acme/cloudrun-istio-gke/local/identity"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// devStack is the frontend in front of the real chain the developers' page
// uses: the local gateway enforcing istio/ as written (mTLS, the JWT rules,
// the VirtualService's route to the decision service), and a real
// apikeys.Service with its in-memory store. Every component logs into one
// buffer, so a test can say what never reaches any log.
type devStack struct {
	*stack
	keys    *apikeys.Service
	keysSrv *httptest.Server // the decision service's HTTP server
}

// apikeysDestination is the VirtualService destination of the management
// route in istio/.
const apikeysDestination = "apikeys.api.svc.cluster.local:80"

func newDevStack(t *testing.T, deps ...func(*Deps)) *devStack {
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
	logs := &logtest.Buffer{}
	logger := logging.New(logs, slog.LevelDebug, testProject)

	catalog, err := apikeys.LoadCatalog(filepath.Join("..", "deploy", "kubernetes", "apikeys", "products.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	store := apikeys.NewMemoryStore()
	t.Cleanup(func() { store.Close() })
	keys, err := apikeys.New(apikeys.Config{Catalog: catalog, Store: store, Verifier: verifier, Logger: logger.With("component", "apikeys")})
	if err != nil {
		t.Fatalf("apikeys.New: %v", err)
	}
	keysSrv := httptest.NewServer(keys.Handler())
	t.Cleanup(keysSrv.Close)
	// The backend is not what these tests are about: the route to it must
	// simply not be where management calls end up.
	backendSrv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(backendSrv.Close)

	bundle, err := pki.Ensure(pki.Config{Dir: t.TempDir(), GatewayHosts: []string{gatewayHost}})
	if err != nil {
		t.Fatalf("pki.Ensure: %v", err)
	}
	rs, err := gateway.Load(filepath.Join("..", "istio"), testProject)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's CUSTOM policy asks the same decision service over gRPC,
	// as the install file's extension provider says.
	mesh, err := gateway.LoadMeshConfig(filepath.Join("..", "deploy", "istio", "operator.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcSrv := grpc.NewServer()
	keys.Register(grpcSrv)
	go grpcSrv.Serve(grpcLn)
	t.Cleanup(grpcSrv.Stop)
	gcfg, err := gateway.LocalConfig(rs, gateway.Local{CredentialDir: bundle.GatewayDir,
		Upstream: mustURL(t, backendSrv.URL).Host, JWKS: gateway.KeysAt(rs, idp.URL), Logger: logger.With("component", "gateway"),
		MeshConfig: mesh, ExtAuthz: grpcLn.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gcfg.Upstreams[apikeysDestination]; !ok {
		t.Fatalf("istio/ routes nowhere to %s; destinations: %v", apikeysDestination, gcfg.Upstreams)
	}
	gcfg.Upstreams[apikeysDestination] = mustURL(t, keysSrv.URL).Host
	gw, err := gateway.New(gcfg)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	gwURL := startTLSServer(t, &http.Server{Handler: gw.Handler(), TLSConfig: gw.TLSConfig()})

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
		GatewayURL:         gwURL,
		GatewayServerName:  gatewayHost,
		ClientTLSDir:       bundle.FrontendDir,
		BackendTimeout:     5 * time.Second,
	}
	admin := adminClient(t)
	d := Deps{Verifier: verifier, Revoker: admin, GatewayTLS: clientCreds, Logger: logger.With("component", "frontend")}
	for _, m := range deps {
		m(&d)
	}
	f, err := New(cfg, d)
	if err != nil {
		t.Fatalf("frontend.New: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	front.Config.Handler = f.Handler()
	front.Start()
	return &devStack{stack: &stack{t: t, emulator: em, admin: admin, front: front, logs: logs, cfg: cfg}, keys: keys, keysSrv: keysSrv}
}

// developer signs a fresh, verified user in and returns their session.
func (s *devStack) developer(email string) *http.Cookie {
	s.t.Helper()
	ck, _ := s.signIn(email)
	return ck
}

// post submits a form as the browser does: same origin, with the page's
// CSRF cookie and token.
func (s *devStack) post(path string, session *http.Cookie, form url.Values) (*http.Response, string) {
	s.t.Helper()
	ck, tok := s.csrf()
	form.Set("csrf", tok)
	req, _ := http.NewRequest(http.MethodPost, s.front.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.front.URL)
	req.AddCookie(ck)
	if session != nil {
		req.AddCookie(session)
	}
	return s.do(req)
}

// createApp creates an app through the page and returns its id and key as
// the page shows them.
func (s *devStack) createApp(session *http.Cookie, name string, products ...string) (id, key string) {
	s.t.Helper()
	resp, body := s.post("/developers/apps", session, url.Values{"name": {name}, "product": products})
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("POST /developers/apps: got %d, want 201; page: %s", resp.StatusCode, pageText(s.t, body))
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		s.t.Errorf("the page with the new key has Cache-Control %q; want no-store, so no cache keeps the key", got)
	}
	doc := htmltest.Parse(s.t, body)
	key = htmltest.Text(htmltest.ByID(doc, "new-key-value"))
	card := htmltest.Find(doc, func(n *html.Node) bool {
		return n.Data == "article" && strings.Contains(htmltest.Text(n), name)
	})
	id = strings.TrimPrefix(htmltest.Attr(card, "id"), "app-")
	if key == "" || id == "" {
		s.t.Fatalf("the answer to creating %q shows key %q and app id %q; want both", name, key, id)
	}
	return id, key
}

// call asks the decision service about one API request with key, as the
// gateway does for a partner call, and reports whether it was allowed.
func (s *devStack) call(key string) bool {
	s.t.Helper()
	resp, err := s.keys.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: http.MethodGet, Path: "/api/secure.json", Host: gatewayHost,
			Headers: map[string]string{"x-api-key": key},
		}},
	}})
	if err != nil {
		s.t.Fatalf("Check: %v", err)
	}
	return resp.GetStatus().GetCode() == 0
}

func pageText(t testing.TB, body string) string {
	return htmltest.Text(htmltest.ByID(htmltest.Parse(t, body), "content"))
}

func TestDevelopersPageManagesAppsThroughTheGateway(t *testing.T) {
	s := newDevStack(t)
	session := s.developer("ada@example.com")

	t.Run("a visitor who is not signed in is sent to the start page", func(t *testing.T) {
		resp, _ := s.get("/developers")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("GET /developers signed out: got %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("a new developer sees no apps and the products to pick from", func(t *testing.T) {
		resp, body := s.get("/developers", session)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /developers: got %d, want 200; page: %s", resp.StatusCode, pageText(t, body))
		}
		doc := htmltest.Parse(t, body)
		if htmltest.ByID(doc, "no-apps") == nil {
			t.Errorf("page %q: want the no-apps message", pageText(t, body))
		}
		for _, p := range []string{"secure-message", "reports"} {
			box := htmltest.Find(doc, func(n *html.Node) bool {
				return n.Data == "input" && htmltest.Attr(n, "name") == "product" && htmltest.Attr(n, "value") == p
			})
			if box == nil {
				t.Errorf("the create form offers no checkbox for product %s", p)
			}
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q: want no-store", got)
		}
	})

	var appID, key string
	t.Run("creating an app shows its key once, and the key works", func(t *testing.T) {
		appID, key = s.createApp(session, "Partner portal", "secure-message")
		if !strings.HasPrefix(appID, "app_") {
			t.Errorf("app id %q: want the service's app_ id", appID)
		}
		if !s.call(key) {
			t.Errorf("the key shown on the page was refused by the decision service")
		}
		_, body := s.get("/developers", session)
		if strings.Contains(body, key) || htmltest.ByID(htmltest.Parse(t, body), "new-key") != nil {
			t.Errorf("the key is shown again on a later visit; want it only in the answer to creating the app")
		}
		if !strings.Contains(pageText(t, body), "Partner portal") {
			t.Errorf("page %q: want the new app listed", pageText(t, body))
		}
	})
	t.Run("usage of the last hour and day and the quota left are shown", func(t *testing.T) {
		for range 3 {
			if !s.call(key) {
				t.Fatal("a call within quota was refused")
			}
		}
		s.call("not-a-key") // unknown keys belong to no app: not in its usage
		_, body := s.get("/developers", session)
		doc := htmltest.Parse(t, body)
		card := htmltest.ByID(doc, "app-"+appID)
		text := htmltest.Text(card)
		// Four calls in all: the one above and these three.
		for _, want := range []string{
			"4 requests in the last hour: 4 allowed, 0 refused",
			"4 requests in the last 24 hours: 4 allowed, 0 refused",
			"6 of 10", "996 of 1,000",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("app card %q: want %q", text, want)
			}
		}
		charts := findAll(card, func(n *html.Node) bool { return n.Data == "svg" })
		if len(charts) != 2 {
			t.Fatalf("app card has %d charts, want 2 (last hour, last day)", len(charts))
		}
		for _, c := range charts {
			if htmltest.Attr(c, "role") != "img" || htmltest.Attr(c, "aria-labelledby") == "" {
				t.Errorf("chart: want role=img labelled by its title and description")
			}
			if bars := findAll(c, func(n *html.Node) bool { return htmltest.Attr(n, "class") == "bar-allowed" }); len(bars) != 1 {
				t.Errorf("chart has %d allowed bars, want 1 (all four calls in one bucket)", len(bars))
			}
		}
	})
	t.Run("a form that is incomplete is explained and nothing is created", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			form url.Values
			want string
		}{
			{"no name", url.Values{"name": {"  "}, "product": {"reports"}}, "Give the app a name"},
			{"no product", url.Values{"name": {"Reports bot"}}, "Pick at least one product"},
			{"an unknown product", url.Values{"name": {"Reports bot"}, "product": {"admin"}}, "Pick products from the list"},
		} {
			resp, body := s.post("/developers/apps", session, tc.form)
			msg := htmltest.Text(htmltest.ByID(htmltest.Parse(t, body), "create-app-error"))
			if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(msg, tc.want) {
				t.Errorf("%s: got %d %q, want 422 saying %q", tc.name, resp.StatusCode, msg, tc.want)
			}
		}
		_, body := s.get("/developers", session)
		if n := len(findAll(htmltest.Parse(t, body), func(n *html.Node) bool { return n.Data == "article" })); n != 1 {
			t.Errorf("%d apps listed after refused forms, want 1", n)
		}
	})
	t.Run("a form without the page's CSRF token is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, s.front.URL+"/developers/apps/"+appID+"/revoke", nil)
		req.Header.Set("Origin", s.front.URL)
		req.AddCookie(session)
		resp, _ := s.do(req)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("revoke without CSRF: got %d, want 403", resp.StatusCode)
		}
		if !s.call(key) {
			t.Errorf("the key stopped working after a refused revoke")
		}
	})
	t.Run("revoking the key makes the next call fail and the page says so", func(t *testing.T) {
		resp, _ := s.post("/developers/apps/"+appID+"/revoke", session, url.Values{})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/developers?revoked="+appID {
			t.Fatalf("POST revoke: got %d to %q, want 303 to /developers?revoked=%s", resp.StatusCode, resp.Header.Get("Location"), appID)
		}
		if s.call(key) {
			t.Errorf("the revoked key was still accepted")
		}
		_, body := s.get(resp.Header.Get("Location"), session)
		doc := htmltest.Parse(t, body)
		card := htmltest.Text(htmltest.ByID(doc, "app-"+appID))
		if !strings.Contains(card, "Revoked") || !strings.Contains(pageText(t, body), "The key of Partner portal is revoked") {
			t.Errorf("page %q: want the app marked revoked and the notice", pageText(t, body))
		}
		form := htmltest.Find(htmltest.ByID(doc, "app-"+appID), func(n *html.Node) bool { return n.Data == "form" })
		if form != nil {
			t.Errorf("a revoked app still offers to revoke it")
		}
	})
	t.Run("the key never reaches a log", func(t *testing.T) {
		if strings.Contains(s.logs.String(), key) {
			t.Errorf("the logs contain the API key")
		}
		if !strings.Contains(s.logs.String(), appID) {
			t.Errorf("the logs never name app %s; the log buffer is not the one the components write to", appID)
		}
	})
}

func TestOneDeveloperCannotSeeOrRevokeAnothersApp(t *testing.T) {
	s := newDevStack(t)
	ada := s.developer("ada@example.com")
	bob := s.developer("bob@example.com")
	adaApp, adaKey := s.createApp(ada, "Ada's secret tool", "secure-message")

	tests := []struct {
		name string
		path string
	}{
		{"revoking another user's app by its id", "/developers/apps/" + adaApp + "/revoke"},
		{"revoking an id that reaches for another path", "/developers/apps/..%2F..%2Fsecure.json/revoke"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is answered as no such app", func(t *testing.T) {
			resp, body := s.post(tt.path, bob, url.Values{})
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "There is no such app among yours.") {
				t.Errorf("POST %s as bob: got %d %q, want 404 saying there is no such app", tt.path, resp.StatusCode, pageText(t, body))
			}
			if !s.call(adaKey) {
				t.Errorf("ada's key stopped working after bob's attempt")
			}
		})
	}
	t.Run("another user's page lists none of ada's apps", func(t *testing.T) {
		_, body := s.get("/developers", bob)
		if strings.Contains(body, adaApp) || strings.Contains(body, "Ada&#39;s secret tool") || strings.Contains(body, "Ada's secret tool") {
			t.Errorf("bob's page shows ada's app: %s", pageText(t, body))
		}
	})
	t.Run("the gateway route to the service checks the user too: usage of another's app is no such app", func(t *testing.T) {
		_, bobToken := s.user("bob@example.com")
		gc, err := NewGatewayClient(s.cfg.GatewayURL, gatewayHost, 5*time.Second, mustClientTLS(t, s.cfg.ClientTLSDir))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(gc.Close)
		if _, err := gc.Usage(context.Background(), adaApp, "1h", bobToken); !isNoSuchApp(err) {
			t.Errorf("bob reading ada's usage: got %v, want ErrNoSuchApp", err)
		}
		if _, err := gc.RevokeApp(context.Background(), adaApp, bobToken); !isNoSuchApp(err) {
			t.Errorf("bob revoking ada's app: got %v, want ErrNoSuchApp", err)
		}
	})
}

func mustClientTLS(t *testing.T, dir string) *tlsdir.Dir {
	t.Helper()
	d, err := tlsdir.Open(tlsdir.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func isNoSuchApp(err error) bool { return err != nil && errors.Is(err, ErrNoSuchApp) }

// findAll returns every node under n that matches, in document order.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	if n == nil {
		return nil
	}
	for c := range n.Descendants() {
		if match(c) {
			out = append(out, c)
		}
	}
	return out
}

func TestDevelopersPageFailuresAreExplainedInTheFrontendsWords(t *testing.T) {
	s := newDevStack(t)
	session := s.developer("ada@example.com")

	t.Run("an account whose email is not verified is sent to the start page, which asks to verify it", func(t *testing.T) {
		_, token := s.unverifiedUser("new@example.com")
		resp := s.postSession(token, nil)
		ck := cookieNamed(resp, "session")
		if ck == nil {
			t.Fatalf("POST /session for an unverified account: %d and no cookie", resp.StatusCode)
		}
		if resp, _ := s.get("/developers", ck); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("GET /developers unverified: got %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("with the decision service down, the page says so with a request id and none of the gateway's words", func(t *testing.T) {
		s.keysSrv.Close()
		resp, body := s.get("/developers", session)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET /developers with the service down: got %d, want 503", resp.StatusCode)
		}
		alert := htmltest.Find(htmltest.Parse(t, body), func(n *html.Node) bool { return htmltest.Attr(n, "role") == "alert" })
		text := htmltest.Text(alert)
		id := resp.Header.Get("X-Request-Id")
		if !strings.Contains(text, "We could not load your apps.") || id == "" || !strings.Contains(text, "Request id: "+id) {
			t.Errorf("alert %q: want the page's own message and request id %q", text, id)
		}
		for _, envoy := range []string{"upstream connect error", "no healthy upstream", "envoy", "apikeys.api"} {
			if strings.Contains(strings.ToLower(body), strings.ToLower(envoy)) {
				t.Errorf("the page shows the gateway's %q", envoy)
			}
		}
		resp, body = s.post("/developers/apps", session, url.Values{"name": {"Bot"}, "product": {"reports"}})
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "We could not load your apps.") {
			t.Errorf("POST /developers/apps with the service down: got %d, want 503 with the page's message", resp.StatusCode)
		}
	})
}

// The management client turns each answer the gateway or the service can
// give into the error the page branches on. A 404 only means "no such app"
// when the service says so: a gateway without the route answers 404 too.
func TestManagementAnswersBecomeErrors(t *testing.T) {
	bundle := ensurePKI(t, time.Now())
	gwCreds, err := tlsdir.Open(tlsdir.Config{Dir: bundle.GatewayDir})
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		status int
		body   string
	}
	var got struct{ method, path, query, ctype, body string }
	gwURL := startTLSServer(t, &http.Server{
		TLSConfig: gwCreds.ServerConfig(tls.RequireAndVerifyClientCert),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got.method, got.path, got.query, got.ctype, got.body = r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(b)
			w.WriteHeader(answer.status)
			io.WriteString(w, answer.body)
		}),
	})
	gc, err := NewGatewayClient(gwURL, gatewayHost, 5*time.Second, mustClientTLS(t, bundle.FrontendDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gc.Close)

	tests := []struct {
		name     string
		status   int
		body     string
		want     error
		wantCode string
	}{
		{"the service's answer is decoded", 201, `{"app":{"id":"app_1","name":"Bot"},"key":"k"}`, nil, ""},
		{"a token the gateway refuses is unauthorized", 401, "Jwt is expired", ErrUnauthorized, ""},
		{"a gateway policy denial is forbidden", 403, "RBAC: access denied", ErrForbidden, ""},
		{"the service's not_found is no such app", 404, `{"error":"not_found","message":"No such app."}`, ErrNoSuchApp, ""},
		{"a 404 without the service's code (no route) is unavailable", 404, "", ErrUnavailable, ""},
		{"a refused form is refused with the service's code", 400, `{"error":"bad_request","message":"Pick at least one product."}`, ErrAppRefused, "bad_request"},
		{"too many apps is refused with its code", 409, `{"error":"too_many_apps","message":"..."}`, ErrAppRefused, "too_many_apps"},
		{"no healthy upstream is unavailable", 503, "no healthy upstream", ErrUnavailable, ""},
		{"a 2xx that is not JSON is unavailable", 201, "<html>", ErrUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer.status, answer.body = tt.status, tt.body
			created, err := gc.CreateApp(context.Background(), "Bot", []string{"reports"}, "a-token")
			if got.method != http.MethodPost || got.path != "/api/apikeys/v1/apps" || got.ctype != "application/json" ||
				got.body != `{"name":"Bot","products":["reports"]}` {
				t.Errorf("the gateway got %s %s (%s) %s; want POST /api/apikeys/v1/apps with the JSON app", got.method, got.path, got.ctype, got.body)
			}
			if tt.want == nil {
				if err != nil || created.Key != "k" || created.App.ID != "app_1" {
					t.Fatalf("CreateApp: got %+v, %v; want app_1 and its key", created, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("CreateApp: got %v, want an error wrapping %v", err, tt.want)
			}
			var code string
			if ae, ok := errors.AsType[*APIError](err); ok {
				code = ae.Code
			}
			if code != tt.wantCode {
				t.Errorf("the service's error code: got %q, want %q", code, tt.wantCode)
			}
		})
	}
	t.Run("usage asks for the window in the query", func(t *testing.T) {
		answer.status, answer.body = 200, `{"minutes":[],"quota":[]}`
		if _, err := gc.Usage(context.Background(), "app_1", "24h", "a-token"); err != nil {
			t.Fatal(err)
		}
		if got.path != "/api/apikeys/v1/apps/app_1/usage" || got.query != "window=24h" {
			t.Errorf("the gateway got %s?%s, want /api/apikeys/v1/apps/app_1/usage?window=24h", got.path, got.query)
		}
	})
}

// unavailableVerifier cannot check tokens at all, as when Identity
// Platform's keys cannot be fetched.
type unavailableVerifier struct{}

func (unavailableVerifier) Verify(context.Context, string) (*auth.Token, error) {
	return nil, errors.New("fetching the signing keys: connection refused")
}

func TestDevelopersPageWhenSignInCannotBeChecked(t *testing.T) {
	s := newDevStack(t, func(d *Deps) { d.Verifier = unavailableVerifier{} })
	session := &http.Cookie{Name: "session", Value: bindSession(s.sessionKey(), "a-token")}
	for _, tc := range []struct{ method, path string }{{http.MethodGet, "/developers"}, {http.MethodPost, "/developers/apps"}} {
		t.Run(tc.method+" "+tc.path+" answers 503, not a sign-in redirect", func(t *testing.T) {
			var resp *http.Response
			var body string
			if tc.method == http.MethodGet {
				resp, body = s.get(tc.path, session)
			} else {
				resp, body = s.post(tc.path, session, url.Values{"name": {"Bot"}, "product": {"reports"}})
			}
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "We could not check your sign-in right now.") {
				t.Errorf("got %d %q, want 503 saying the sign-in could not be checked", resp.StatusCode, pageText(t, body))
			}
		})
	}
}
