package stack

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/apiclient"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

// testConfig is a stack on free loopback ports in a fresh state dir.
func testConfig(t *testing.T) Config {
	return Config{
		StateDir: t.TempDir(), IstioDir: filepath.Join("..", "..", "istio"),
		IdentityAddr: "127.0.0.1:0", GoogleAddr: "127.0.0.1:0", BackendAddr: "127.0.0.1:0", GatewayAddr: "127.0.0.1:0", FrontendAddr: "127.0.0.1:0",
		APIKeysAddr: "127.0.0.1:0",
	}
}

// start starts a stack as cmd/devstack does: bind, tell the Admin SDK where
// the emulator is (t.Setenv, the test owning its process), then Start.
func start(ctx context.Context, t *testing.T, cfg Config) (*Stack, error) {
	t.Helper()
	l, err := Listen(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t.Setenv(idtoken.EmulatorHostEnv, l.AuthEmulatorHost())
	return Start(ctx, l)
}

// gatewayClient presents the frontend's dev certificate, as the frontend does.
func gatewayClient(t *testing.T, s *Stack) *http.Client {
	dir := filepath.Join(s.PKIDir, "frontend")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: s.GatewayServerName,
	}}}
}

func get(t *testing.T, c *http.Client, url, host, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestStartWiresTheWholeFlowAndShutsDownCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, err := start(ctx, t, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	uid, err := s.Emulator.EnsureUser(ctx, s.DemoEmail, s.DemoPassword)
	if err != nil {
		t.Fatal(err)
	}
	token, err := s.Emulator.IDTokenFor(ctx, uid, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := gatewayClient(t, s)
	tests := []struct {
		name, path, token string
		status            int
		body              string
	}{
		{"health is open", "/api/healthz", "", 200, ""},
		{"the secret needs a token", "/api/secure.json", "", 403, "RBAC: access denied"},
		{"the demo user's token gets the secret", "/api/secure.json", token, 200, `"message":"Hello World"`},
		// The developers' page's route reaches the decision service, not the backend.
		{"the demo user's apps come from the decision service", "/api/apikeys/v1/apps", token, 200, `"Demo partner"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, c, s.GatewayURL+tt.path, s.GatewayServerName, tt.token)
			if status != tt.status || !strings.Contains(body, tt.body) {
				t.Errorf("GET %s through the gateway: %d %q, want %d containing %q", tt.path, status, body, tt.status, tt.body)
			}
		})
	}
	if status, _ := get(t, http.DefaultClient, s.FrontendURL+"/healthz", "", ""); status != 200 {
		t.Errorf("frontend /healthz: %d, want 200", status)
	}

	cancel()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait after shutdown: %v, want nil", err)
		}
	case <-time.After(serve.DefaultGrace + 2*time.Second):
		t.Fatal("the stack did not shut down within its grace period")
	}
}

func TestStartStopsWithOneClearLine(t *testing.T) {
	busy, err := serve.Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	// The real istio/ with one misspelt field.
	brokenIstio := t.TempDir()
	if err := os.CopyFS(brokenIstio, os.DirFS(filepath.Join("..", "..", "istio"))); err != nil {
		t.Fatal(err)
	}
	gw := filepath.Join(brokenIstio, "gateway.yaml")
	b, _ := os.ReadFile(gw)
	os.WriteFile(gw, bytes.Replace(b, []byte("credentialName:"), []byte("credentialNam:"), 1), 0o644)

	unwritable := filepath.Join(t.TempDir(), "file")
	os.WriteFile(unwritable, nil, 0o600)

	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"a busy port names the component and address", func(c *Config) { c.GatewayAddr = busy.Addr().String() },
			"gateway: listening on " + busy.Addr().String()},
		{"a broken istio/ file names the file", func(c *Config) { c.IstioDir = brokenIstio }, "gateway.yaml"},
		{"an unusable state dir names it", func(c *Config) { c.StateDir = filepath.Join(unwritable, "state") }, unwritable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			tt.modify(&cfg)
			s, err := start(t.Context(), t, cfg)
			if err == nil {
				t.Fatalf("Start succeeded (%+v), want an error containing %q", s, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Count(err.Error(), "\n") > 3 {
				t.Errorf("Start: %q, want a short error containing %q", err, tt.want)
			}
		})
	}
	t.Run("an environment that sends the Admin SDK elsewhere is refused, naming both", func(t *testing.T) {
		l, err := Listen(t.Context(), testConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv(idtoken.EmulatorHostEnv, "127.0.0.1:1")
		_, err = Start(t.Context(), l)
		if err == nil || !strings.Contains(err.Error(), idtoken.EmulatorHostEnv) || !strings.Contains(err.Error(), l.AuthEmulatorHost()) {
			t.Fatalf("Start = %v; want a refusal naming %s and the emulator's address %s", err, idtoken.EmulatorHostEnv, l.AuthEmulatorHost())
		}
		// Nothing is left bound: the same address can be taken again.
		ln, err := serve.Listen(t.Context(), l.AuthEmulatorHost())
		if err != nil {
			t.Fatalf("the emulator's port is still held after a failed Start: %v", err)
		}
		ln.Close()
	})
}

func TestPrintSummaryListsEveryComponentThenTheDemoUser(t *testing.T) {
	s := &Stack{IdentityURL: "http://i", GoogleURL: "http://127.0.0.1:9300", BackendURL: "http://b", GatewayURL: "https://g", FrontendURL: "http://f",
		GatewayServerName: "api.internal.example", DemoEmail: "d@x", DemoPassword: "pw",
		MachineAccount: "reporter@p.iam.gserviceaccount.com", MachineKeyFile: ".devstack/keys/reporter.json",
		MachineTLSDir: ".devstack/pki/apiclient", MachineAudience: "https://api.internal.example",
		LocalDifferences: []string{"issuer https://accounts.google.com: jwksUri https://google/certs → http://127.0.0.1:9300/certs"}}
	var buf bytes.Buffer
	s.PrintSummary(&buf)
	for _, want := range []string{"identity  http://i", "google    http://127.0.0.1:9300", "backend   http://b", "gateway   https://g", "frontend  http://f",
		"local     issuer https://accounts.google.com: jwksUri https://google/certs → http://127.0.0.1:9300/certs",
		"apiclient .devstack/pki/apiclient as reporter@p.iam.gserviceaccount.com (key file: GOOGLE_APPLICATION_CREDENTIALS=.devstack/keys/reporter.json)",
		"call API  GCE_METADATA_HOST=127.0.0.1:9300 go run ./cmd/apiclient -url https://g/api/secure.json -audience https://api.internal.example -server-name api.internal.example -client-tls-dir .devstack/pki/apiclient\n",
		"demo user d@x / pw"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestParseFlagsTakesTheEnvironmentAndRefusesStrays(t *testing.T) {
	cfg, _, err := ParseFlags([]string{"-frontend-addr", "127.0.0.1:9000"}, func(k string) string {
		return map[string]string{"DEMO_EMAIL": "me@acme.test"}[k]
	}, io.Discard)
	if err != nil || cfg.DemoEmail != "me@acme.test" || cfg.FrontendAddr != "127.0.0.1:9000" || cfg.GatewayAddr != Defaults.GatewayAddr {
		t.Errorf("ParseFlags: %+v, %v", cfg, err)
	}
	if _, _, err := ParseFlags([]string{"-nope"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("ParseFlags accepted an unknown flag")
	}
	if _, _, err := ParseFlags([]string{"-h"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("ParseFlags -h: %v, want flag.ErrHelp", err)
	}
}

// lockedBuffer is an Outbox the test reads while handlers write to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestTheDemoUserIsVerifiedAndVerificationLinksArePrinted(t *testing.T) {
	var out lockedBuffer
	cfg := testConfig(t)
	cfg.Outbox = &out
	s, err := start(t.Context(), t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Wait() })

	demo := post(t, s.IdentityURL+"/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=k",
		map[string]any{"email": s.DemoEmail, "password": s.DemoPassword, "returnSecureToken": true})
	look := post(t, s.IdentityURL+"/identitytoolkit.googleapis.com/v1/accounts:lookup?key=k", map[string]any{"idToken": demo["idToken"]})
	if users, _ := look["users"].([]any); len(users) != 1 || users[0].(map[string]any)["emailVerified"] != true {
		t.Fatalf("the demo user = %v; want emailVerified true", look)
	}

	up := post(t, s.IdentityURL+"/identitytoolkit.googleapis.com/v1/accounts:signUp?key=k",
		map[string]any{"email": "new@acme.test", "password": "a new password", "returnSecureToken": true})
	post(t, s.IdentityURL+"/identitytoolkit.googleapis.com/v1/accounts:sendOobCode?key=k",
		map[string]any{"requestType": "VERIFY_EMAIL", "idToken": up["idToken"]})
	line := out.String()
	want := "email     to verify the email of new@acme.test, open " + s.IdentityURL + "/emulator/action?"
	if !strings.HasPrefix(line, want) || !strings.Contains(line, "mode=verifyEmail") || !strings.Contains(line, "oobCode=") {
		t.Fatalf("outbox = %q; want a line starting %q with mode=verifyEmail and the oobCode", line, want)
	}
}

func post(t *testing.T, url string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST %s = %d %v (%v); want 200", url, resp.StatusCode, out, err)
	}
	return out
}

func TestListenAddressesBeyondLoopbackNeedTheFlag(t *testing.T) {
	tests := []struct {
		name, addr  string
		allow       bool
		wantErr     string
		wantWarning string
	}{
		{"an IPv4 loopback address is taken silently", "127.0.0.1:9099", false, "", ""},
		{"another 127/8 address is taken silently", "127.0.0.2:9099", false, "", ""},
		{"the IPv6 loopback address is taken silently", "[::1]:9099", false, "", ""},
		{"localhost is taken silently", "localhost:9099", false, "", ""},
		{"every interface is refused without the flag", "0.0.0.0:9099", false, "-allow-non-loopback", ""},
		{"an empty host (every interface) is refused without the flag", ":9099", false, "every interface", ""},
		{"a LAN address is refused without the flag", "192.168.1.10:9099", false, "-allow-non-loopback", ""},
		{"every interface with the flag is taken with a warning", "0.0.0.0:9099", true, "", "identity listens on every interface"},
		{"a LAN address with the flag is taken with a warning", "192.168.1.10:9099", true, "", "beyond loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := checkBind("identity", tt.addr, tt.allow)
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("checkBind(%s) = %v; want an error containing %q", tt.addr, err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("checkBind(%s) = %v; want it accepted", tt.addr, err)
			case !strings.Contains(w, tt.wantWarning) || (tt.wantWarning == "" && w != ""):
				t.Fatalf("checkBind(%s) warning = %q; want %q", tt.addr, w, tt.wantWarning)
			}
		})
	}
	t.Run("Listen refuses a non-loopback identity address before binding anything", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.IdentityAddr = "0.0.0.0:0"
		if _, err := Listen(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "identity address 0.0.0.0:0") {
			t.Fatalf("Listen = %v; want a refusal naming the identity address", err)
		}
	})
	t.Run("the summary prints the warnings", func(t *testing.T) {
		var buf bytes.Buffer
		(&Stack{Warnings: []string{"identity listens on every interface"}}).PrintSummary(&buf)
		if !strings.Contains(buf.String(), "WARNING   identity listens on every interface") {
			t.Fatalf("summary = %q; want the warning line", buf.String())
		}
	})
}

// The machine caller devstack provisions — its client certificate, its key
// file, the audience from istio/ — reaches the backend through the gateway,
// with the unmodified Google auth library behind cmd/apiclient.
func TestTheMachineCallerReachesTheAPIWithWhatTheStackProvisions(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, err := start(ctx, t, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); s.Wait() }()
	if want := "reporter@demo-acme.iam.gserviceaccount.com"; s.MachineAccount != want {
		t.Errorf("MachineAccount = %q, want %q from istio/'s allowlist", s.MachineAccount, want)
	}
	if fi, err := os.Stat(s.MachineKeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v, mode %v; want it written 0600", s.MachineKeyFile, err, fi)
	}
	dir, err := tlsdir.Open(tlsdir.Config{Dir: s.MachineTLSDir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := apiclient.New(ctx, apiclient.Config{Audience: s.MachineAudience, ServerName: s.GatewayServerName, TLS: dir, CredentialsFile: s.MachineKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Get(ctx, s.GatewayURL+"/api/secure.json")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := `{"message":"Hello World","caller":{"kind":"service-account","email":"reporter@demo-acme.iam.gserviceaccount.com"}}`; a.Status != 200 || strings.TrimSpace(string(a.Body)) != want {
		t.Errorf("got %d %s, want 200 %s", a.Status, a.Body, want)
	}
}
