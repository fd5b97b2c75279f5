package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/local/stack"
)

// Flags that point the suite at a deployed environment instead of the local
// stack. Without -frontend-url the local stack is started and these are
// ignored.
var (
	flagFrontendURL       = flag.String("frontend-url", "", "run against this deployed frontend (https://...) instead of starting the local stack")
	flagGatewayURL        = flag.String("gateway-url", "", "deployed: the gateway's address (https://IP[:port]); the gateway tests skip without it")
	flagGatewayServerName = flag.String("gateway-server-name", "api.internal.example", "deployed: the gateway's TLS server name and Host")
	flagClientCertDir     = flag.String("client-cert-dir", "", "deployed: the frontend's client certificate directory (tls.crt, tls.key, ca.crt)")
	flagEmail             = flag.String("email", "", "deployed: an existing test user's email; the sign-in tests skip without it")
	flagPassword          = flag.String("password", "", "deployed: that user's password")
)

// target is what the suite runs against: the local stack, or a deployed
// environment described by the flags.
type target struct {
	frontendURL       string
	gatewayURL        string // "" when the gateway is out of reach (deployed, no -gateway-url)
	gatewayServerName string
	clientCertDir     string // tls.crt, tls.key, ca.crt of the frontend's client identity
	email, password   string // an existing user; "" when none was given
	local             *stack.Stack
	logs              *logtest.Buffer // the local stack's logs; nil when deployed
}

// env is set once by TestMain, before any test runs, and only read after.
var env target

// secrets collects every password and token the tests handle, so that
// TestMain can check that none of them reached the stack's logs.
var secrets = struct {
	sync.Mutex
	values []string
}{}

func noteSecret(s string) {
	if s == "" {
		return
	}
	secrets.Lock()
	defer secrets.Unlock()
	secrets.values = append(secrets.values, s)
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if *flagFrontendURL != "" {
		env = target{
			frontendURL:       strings.TrimRight(*flagFrontendURL, "/"),
			gatewayURL:        strings.TrimRight(*flagGatewayURL, "/"),
			gatewayServerName: *flagGatewayServerName,
			clientCertDir:     *flagClientCertDir,
			email:             *flagEmail,
			password:          *flagPassword,
		}
		if env.gatewayURL != "" && env.clientCertDir == "" {
			fmt.Fprintln(os.Stderr, "e2e: -gateway-url needs -client-cert-dir (the gateway demands a client certificate)")
			return 2
		}
		noteSecret(env.password)
		return m.Run()
	}

	// The local stack, once for the whole binary: it sets
	// FIREBASE_AUTH_EMULATOR_HOST in the process environment, so two stacks
	// cannot run side by side in one process.
	stateDir, err := os.MkdirTemp("", "e2e-devstack-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: state dir:", err)
		return 1
	}
	defer os.RemoveAll(stateDir)
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	logs := &logtest.Buffer{}
	password := randomString(12)
	noteSecret(password)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := time.Now()
	lns, err := stack.Listen(ctx, stack.Config{
		StateDir:     stateDir,
		ProjectID:    "demo-acme",
		IstioDir:     filepath.Join(root, "istio"),
		IdentityAddr: "127.0.0.1:0",
		GoogleAddr:   "127.0.0.1:0",
		BackendAddr:  "127.0.0.1:0",
		GatewayAddr:  "127.0.0.1:0",
		FrontendAddr: "127.0.0.1:0",
		APIKeysAddr:  "127.0.0.1:0",
		DemoEmail:    "e2e-demo@example.com",
		DemoPassword: password,
		// A service account the policy does not list (e2e/machine_test.go).
		ExtraServiceAccounts: []string{intruderAccount},
		// As devstack logs: Cloud Logging's shape, with each request's
		// trace, request id and component on its lines.
		Logger: logging.New(logs, slog.LevelDebug, "demo-acme"),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: binding the local stack: %v\n", err)
		return 1
	}
	// The Admin SDK reads only the environment: TestMain owns this process,
	// and every test here shares the one stack.
	os.Setenv(idtoken.EmulatorHostEnv, lns.AuthEmulatorHost())
	st, err := stack.Start(ctx, lns)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: starting the local stack: %v\nits logs:\n%s", err, logs.String())
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: local stack ready in %v: frontend %s, gateway %s (%s), identity %s\n",
		time.Since(started).Round(time.Millisecond), st.FrontendURL, st.GatewayURL, st.GatewayServerName, st.IdentityURL)
	env = target{
		frontendURL:       st.FrontendURL,
		gatewayURL:        st.GatewayURL,
		gatewayServerName: st.GatewayServerName,
		clientCertDir:     filepath.Join(st.PKIDir, "frontend"),
		email:             st.DemoEmail,
		password:          st.DemoPassword,
		local:             st,
		logs:              logs,
	}
	// The gateway and the backend serve verified emails only (issue 13).
	if err := verifyEmailOf(st.DemoEmail); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	code := m.Run()

	cancel()
	if err := st.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the local stack did not shut down cleanly:", err)
		code = 1
	}
	if leaked := leakedSecrets(logs.String()); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: the stack's logs contain %d secret(s) the tests used (passwords or tokens), e.g. one starting %.12q…\n", len(leaked), leaked[0])
		code = 1
	}
	if code != 0 {
		if err := writeOutput("stack-log.json", []byte(logs.String())); err == nil {
			fmt.Fprintln(os.Stderr, "e2e: the local stack's logs are in e2e/testoutput/stack-log.json")
		}
	}
	return code
}

// leakedSecrets returns the secrets the tests noted that appear in logs.
func leakedSecrets(logs string) []string {
	secrets.Lock()
	defer secrets.Unlock()
	var leaked []string
	for _, s := range secrets.values {
		if strings.Contains(logs, s) {
			leaked = append(leaked, s)
		}
	}
	return leaked
}

// repoRoot finds the module root from the package directory, where go test
// runs the test binary.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run the tests with go test")
		}
		dir = parent
	}
}

// outputDir is where screenshots and logs go: e2e/testoutput, git-ignored.
const outputDir = "testoutput"

func writeOutput(name string, data []byte) error {
	if err := os.MkdirAll(outputDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(outputDir, name), data, 0o644)
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// requireLocal skips a test that needs the local stack's internals.
func requireLocal(t testing.TB, why string) *stack.Stack {
	t.Helper()
	if env.local == nil {
		t.Skipf("skipped against a deployed environment: %s", why)
	}
	return env.local
}

// requireUser skips a test that needs an existing user when none was given.
func requireUser(t testing.TB) (email, password string) {
	t.Helper()
	if env.email == "" || env.password == "" {
		t.Skip("skipped: no test user; pass -email and -password")
	}
	return env.email, env.password
}

// requireGateway skips a test that talks to the gateway when it is out of
// reach (a deployed gateway sits behind an internal load balancer).
func requireGateway(t testing.TB) {
	t.Helper()
	if env.gatewayURL == "" {
		t.Skip("skipped: the gateway is not reachable from here; pass -gateway-url and -client-cert-dir from inside the VPC")
	}
}

// clientTLS is the TLS configuration the frontend uses to reach the gateway:
// the gateway's CA from ca.crt and, when withCert, the client certificate.
func clientTLS(t testing.TB, certDir string, withCert bool) *tls.Config {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(certDir, "ca.crt"))
	if err != nil {
		t.Fatalf("reading the gateway CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("%s holds no PEM certificate", filepath.Join(certDir, "ca.crt"))
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		ServerName: env.gatewayServerName,
	}
	if withCert {
		cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
		if err != nil {
			t.Fatalf("loading the client certificate from %s: %v", certDir, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// appConfig is what the frontend's page tells the sign-in module: the
// Firebase web configuration (public by design) and, locally, the emulator.
type appConfig struct {
	APIKey      string `json:"apiKey"`
	ProjectID   string `json:"projectId"`
	EmulatorURL string `json:"emulatorUrl"`
	CSRFToken   string `json:"csrfToken"` // pairs with the CSRF cookie of the same response
}

var (
	appConfigOnce sync.Once
	appConfigVal  appConfig
	appConfigErr  error
)

// pageConfig reads the app-config JSON from the frontend's start page, so
// the tests learn the project and the identity endpoint the same way the
// browser does, locally and deployed.
func pageConfig(t testing.TB) appConfig {
	t.Helper()
	appConfigOnce.Do(func() {
		appConfigVal, appConfigErr = fetchAppConfig(&http.Client{Timeout: 10 * time.Second}, env.frontendURL)
	})
	if appConfigErr != nil {
		t.Fatalf("reading the app-config of the frontend's page: %v", appConfigErr)
	}
	return appConfigVal
}

func fetchAppConfig(hc *http.Client, frontendURL string) (appConfig, error) {
	resp, err := hc.Get(frontendURL + "/")
	if err != nil {
		return appConfig{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return appConfig{}, fmt.Errorf("GET / answered %s", resp.Status)
	}
	doc, err := html.Parse(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return appConfig{}, err
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "script" || attr(n, "id") != "app-config" || n.FirstChild == nil {
			continue
		}
		var c appConfig
		if err := json.Unmarshal([]byte(n.FirstChild.Data), &c); err != nil {
			return appConfig{}, fmt.Errorf("decoding #app-config: %w", err)
		}
		if c.APIKey == "" || c.ProjectID == "" {
			return appConfig{}, fmt.Errorf("#app-config lacks apiKey or projectId: %+v", c)
		}
		return c, nil
	}
	return appConfig{}, errors.New("the page has no <script id=app-config>")
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// identityClient calls the Identity Toolkit REST API the way the Firebase JS
// SDK does: Google's endpoint when deployed, the emulator locally.
type identityClient struct {
	base   string // .../identitytoolkit.googleapis.com/v1
	apiKey string
	hc     *http.Client
}

func newIdentityClient(t testing.TB) identityClient {
	c := pageConfig(t)
	base := "https://identitytoolkit.googleapis.com/v1"
	if c.EmulatorURL != "" {
		base = strings.TrimRight(c.EmulatorURL, "/") + "/identitytoolkit.googleapis.com/v1"
	}
	return identityClient{base: base, apiKey: c.APIKey, hc: &http.Client{Timeout: 10 * time.Second}}
}

type signInResult struct {
	IDToken string `json:"idToken"`
	LocalID string `json:"localId"`
}

// signIn is accounts:signInWithPassword: it returns a fresh ID token.
func (c identityClient) signIn(ctx context.Context, email, password string) (signInResult, error) {
	var res signInResult
	err := c.call(ctx, "accounts:signInWithPassword", map[string]any{
		"email": email, "password": password, "returnSecureToken": true,
	}, &res)
	noteSecret(res.IDToken)
	return res, err
}

// deleteAccount is accounts:delete for the user the token belongs to.
func (c identityClient) deleteAccount(ctx context.Context, idToken string) error {
	return c.call(ctx, "accounts:delete", map[string]any{"idToken": idToken}, nil)
}

func (c identityClient) call(ctx context.Context, method string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	u := c.base + "/" + method + "?key=" + url.QueryEscape(c.apiKey)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", method, resp.Status, data)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}
