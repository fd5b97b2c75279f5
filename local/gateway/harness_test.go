package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"google.golang.org/grpc"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/acme/cloudrun-istio-gke/apikeys"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/acme/cloudrun-istio-gke/local/google"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

const (
	projectID  = "demo-acme"
	googleJWKS = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
	// googleCerts is the second jwtRule's jwksUri: Google's ID-token keys.
	googleCerts = "https://www.googleapis.com/oauth2/v3/certs"
	// apiAudience is API_AUDIENCE in istio/project.env.
	apiAudience = "https://api.internal.example"
	// reporter is on the machine rule's allowlist; intruder is a service
	// account of the same project that is not.
	reporter   = "reporter@" + projectID + ".iam.gserviceaccount.com"
	intruder   = "intruder@" + projectID + ".iam.gserviceaccount.com"
	backendDst = "backend.api.svc.cluster.local:80"
	// apikeysDst is where istio/ routes the API-key management API.
	apikeysDst = "apikeys.api.svc.cluster.local:80"
)

// everyDestination maps every VirtualService destination in istio/ to addr:
// these tests have one upstream.
func everyDestination(addr string) map[string]string {
	return map[string]string{backendDst: addr, apikeysDst: addr}
}

// stack is the gateway between a real frontend client certificate, the
// Identity Platform emulator signing real tokens, and an upstream.
type stack struct {
	idp         *identity.Emulator
	uid         string
	google      *google.Google // signs service accounts' Google ID tokens
	googleState string         // its state dir, for a second stand-in with another clock
	gw          *Gateway
	addr        string
	pki         *pkiDirs
	client      *http.Client    // presents the frontend's certificate, SNI api.internal.example
	log         *logtest.Buffer // the access log
	upstream    *recorder
	stop        func() // shuts the gateway down and waits for Run; idempotent
	// keys is the API-key decision service the CUSTOM policy asks, with
	// its store, on loopback gRPC.
	keys     *apikeys.Service
	keyStore *apikeys.MemoryStore
}

type pkiDirs struct{ gateway, frontend, machine string }

// recorder is the upstream: it answers with what it received, as JSON.
type recorder struct {
	mu   sync.Mutex
	last *http.Request
}

type echoed struct {
	Path   string      `json:"path"`
	Query  string      `json:"query"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/slow" {
		<-r.Context().Done() // until the gateway gives up on it
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(echoed{Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Host: r.Host, Header: r.Header})
}

type stackOptions struct {
	istioDir string       // default: the repository's istio/
	upstream http.Handler // default: a recorder
	// upstreamFor, when set, builds the upstream once the emulator runs
	// (the real backend needs its address).
	upstreamFor func(t testing.TB, idpHost string) http.Handler
	upstreams   map[string]string // default: backendDst -> the upstream
	// discardAccessLog encodes the access log as always but keeps none of
	// it, for benchmarks: a buffer growing by a line per request would be
	// measured as the gateway's cost.
	discardAccessLog bool
	// extAuthzAddr, when set, is where the gateway looks for the decision
	// service instead of the one the stack starts (a dead port: the
	// provider down).
	extAuthzAddr string
	// keysNow is the decision service's clock; nil means time.Now.
	keysNow func() time.Time
	// productsFile replaces the repository's API products.
	productsFile string
	// mesh, when set, changes this stack's copy of the mesh config.
	mesh func(*meshv1alpha1.MeshConfig)
}

func newStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	s := &stack{log: &logtest.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())

	idp, err := identity.New(identity.Config{ProjectID: projectID, StateDir: filepath.Join(t.TempDir(), "identity"), PasswordHashCost: 10})
	if err != nil {
		t.Fatalf("identity.New: %v", err)
	}
	s.idp = idp
	if s.uid, err = idp.EnsureUser(ctx, "ada@example.com", "correct horse battery"); err != nil {
		t.Fatalf("EnsureUser: %v", err)
	}
	idpSrv := httptest.NewServer(idp.Handler())
	googleSrv := httptest.NewUnstartedServer(nil)
	s.googleState = filepath.Join(t.TempDir(), "google")
	s.google, err = google.New(google.Config{ProjectID: projectID, StateDir: s.googleState,
		URL: "http://" + googleSrv.Listener.Addr().String(), ServiceAccounts: []string{reporter, intruder}})
	if err != nil {
		t.Fatalf("google.New: %v", err)
	}
	googleSrv.Config.Handler = s.google.Handler()
	googleSrv.Start()
	// istio/ lets only verified emails through, as Identity Platform's
	// users are after they follow the link they were sent.
	verifyEmail(t, idpSrv.URL, s.uid)

	if o.upstreamFor != nil {
		o.upstream = o.upstreamFor(t, idpSrv.Listener.Addr().String())
	}
	if o.upstream == nil {
		s.upstream = &recorder{}
		o.upstream = s.upstream
	}
	up := httptest.NewServer(o.upstream)
	if o.upstreams == nil {
		o.upstreams = everyDestination(up.Listener.Addr().String())
	}
	if o.istioDir == "" {
		o.istioDir = istioDir
	}

	if o.extAuthzAddr == "" {
		o.extAuthzAddr = s.startKeys(t, o.keysNow, o.productsFile)
	}

	b := devPKI(t)
	s.pki = &pkiDirs{gateway: b.GatewayDir, frontend: b.FrontendDir, machine: b.MachineDir}
	rs, err := Load(o.istioDir, projectID)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	mc := meshConfig(t)
	if o.mesh != nil {
		o.mesh(mc)
	}
	var accessLog io.Writer = s.log
	if o.discardAccessLog {
		accessLog = io.Discard
	}
	s.gw, err = New(Config{
		Resources:    rs,
		Credentials:  map[string]string{"api-gateway-mtls": b.GatewayDir},
		Upstreams:    o.upstreams,
		JWKSOverride: map[string]string{googleJWKS: idpSrv.URL + identity.JWKSPath, googleCerts: s.google.CertsURL()},
		HTTPClient:   &http.Client{Timeout: 5 * time.Second},
		Logger:       slog.New(slog.DiscardHandler),
		AccessLog:    logging.New(accessLog, slog.LevelInfo, projectID),
		MeshConfig:   mc,
		ExtAuthz:     map[string]string{apikeysService: o.extAuthzAddr},
	})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- serveGateway(ctx, s.gw, ln) }()
	s.client = s.clientWith(t, s.pki.frontend)
	s.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
	t.Cleanup(func() {
		s.stop()
		s.client.CloseIdleConnections()
		up.Close()
		idpSrv.Close()
		googleSrv.Close()
	})
	return s
}

// clientWith dials the gateway with the client certificate in dir, sending
// SNI api.internal.example as the frontend does.
func (s *stack) clientWith(t testing.TB, dir string) *http.Client {
	cfg, err := openDir(t, dir).ClientConfig(gatewayHost)
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{}
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   cfg,
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, s.addr)
			},
		},
		Timeout: 10 * time.Second,
	}
}

// token mints a fresh ID token for the stack's user.
func (s *stack) token(t testing.TB) string {
	t.Helper()
	tok, err := s.idp.IDTokenFor(context.Background(), s.uid, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// serviceAccountToken signs a Google ID token for the service account email
// and audience, issued at issuedAt, with the stand-in's keys.
func (s *stack) serviceAccountToken(t testing.TB, email, audience string, issuedAt time.Time) string {
	t.Helper()
	g := s.google
	if !issuedAt.IsZero() {
		// A second stand-in on the same keys with a clock of its own.
		var err error
		if g, err = google.New(google.Config{ProjectID: projectID, StateDir: s.googleState, URL: "http://127.0.0.1:1",
			ServiceAccounts: []string{reporter, intruder}, Now: func() time.Time { return issuedAt }}); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := g.SignIDToken(email, audience)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// resignGoogle is a Google ID token for email and audience whose claims edit
// changes before the stand-in signs them: a token the gateway's Google keys
// verify but that Google would not issue, for the policy's own checks.
func (s *stack) resignGoogle(t testing.TB, email, audience string, edit func(map[string]any)) string {
	t.Helper()
	tok, err := s.google.SignIDTokenWith(email, audience, edit)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *stack) do(t testing.TB, client *http.Client, req *http.Request) (response, error) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}, err
}

func newRequest(t testing.TB, method, path string, header http.Header) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+gatewayHost+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Opaque keeps the path exactly as written (../, %2e, //).
	p, q, _ := strings.Cut(path, "?")
	req.URL.Opaque = p
	req.URL.RawQuery = q
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	return req
}

func discardSlog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// verifyEmail marks uid's email verified through the emulator's admin API,
// the call the Admin SDK's UpdateUser(...).EmailVerified(true) makes.
func verifyEmail(t testing.TB, idpURL, uid string) {
	t.Helper()
	body := strings.NewReader(`{"localId":"` + uid + `","emailVerified":true}`)
	req, err := http.NewRequest(http.MethodPost, idpURL+"/identitytoolkit.googleapis.com/v1/projects/"+projectID+"/accounts:update", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer owner")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("verifying the email of %s: %v", uid, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("verifying the email of %s: %d %s", uid, resp.StatusCode, b)
	}
}

// apikeysService is the provider's service:port in deploy/istio/operator.yaml.
const apikeysService = "apikeys.api.svc.cluster.local:9191"

// meshConfig is the repository's mesh config, from the Istio install file.
func meshConfig(t testing.TB) *meshv1alpha1.MeshConfig {
	t.Helper()
	mc, err := LoadMeshConfig("../../deploy/istio/operator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// startKeys runs the real decision service with the repository's products
// and an in-memory store on loopback gRPC, and returns its address.
func (s *stack) startKeys(t testing.TB, now func() time.Time, products string) string {
	t.Helper()
	if products == "" {
		products = "../../deploy/kubernetes/apikeys/products.yaml"
	}
	cat, err := apikeys.LoadCatalog(products)
	if err != nil {
		t.Fatal(err)
	}
	s.keyStore = apikeys.NewMemoryStore()
	s.keys, err = apikeys.New(apikeys.Config{Catalog: cat, Store: s.keyStore, Verifier: signsNobodyIn{}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.keys.Register(g)
	served := make(chan struct{})
	go func() { defer close(served); g.Serve(ln) }()
	t.Cleanup(func() {
		g.Stop()
		<-served
		s.keyStore.Close()
	})
	return ln.Addr().String()
}

// newApp creates an app for products and returns its id and key.
func (s *stack) newApp(t testing.TB, products ...string) (id, key string) {
	t.Helper()
	app, key, err := s.keys.CreateApp(context.Background(), s.uid, "partner "+t.Name(), products)
	if err != nil {
		t.Fatal(err)
	}
	return app.ID, key
}

// signsNobodyIn is the decision service's token verifier here: the gateway's
// tests use only its check, never its management API.
type signsNobodyIn struct{}

func (signsNobodyIn) Verify(context.Context, string) (*auth.Token, error) {
	return nil, fmt.Errorf("%w: the gateway's tests sign nobody in to the management API", idtoken.ErrInvalidToken)
}

// serveGateway serves gw on ln until ctx ends, as local/stack does.
func serveGateway(ctx context.Context, gw *Gateway, ln net.Listener) error {
	err := serve.Run(ctx, serve.Options{Name: "gateway", Handler: gw.Handler(), Listener: gw.Listener(ln)})
	return errors.Join(err, gw.Close())
}
