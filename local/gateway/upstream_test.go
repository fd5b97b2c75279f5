package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// timeoutBase is istio/ with the backend route's timeout cut to 100ms and a
// second route for a slow path, so a 504 needs no long wait.
func timeoutBase(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(istioDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(istioDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "virtualservice.yaml" {
			s := strings.ReplaceAll(string(b), "timeout: 10s", "timeout: 0.1s")
			if s == string(b) {
				t.Fatal("virtualservice.yaml no longer has `timeout: 10s`; update this test")
			}
			b = []byte(s)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestUpstreamFailuresGetEnvoysAnswers(t *testing.T) {
	// A port nothing listens on: bind, note, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name       string
		doc        string
		opts       stackOptions
		path       string
		signedIn   bool
		wantStatus int
		wantBody   string
	}{
		{
			name:       "a backend that refuses connections gets 503",
			doc:        "https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#config-access-log-format-response-flags (UF, URX)",
			opts:       stackOptions{upstreams: everyDestination(dead)},
			path:       "/api/healthz",
			wantStatus: 503,
			wantBody:   bodyUpstreamRefused,
		},
		{
			name:       "a backend slower than the route timeout gets 504",
			doc:        "https://istio.io/latest/docs/tasks/traffic-management/request-timeouts/ and Envoy's UT flag",
			opts:       stackOptions{istioDir: timeoutBase(t)},
			path:       "/api/slow",
			signedIn:   true,
			wantStatus: 504,
			wantBody:   "upstream request timeout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, tt.opts)
			h := http.Header{}
			if tt.signedIn {
				h.Set("Authorization", "Bearer "+s.token(t))
			}
			got, err := s.do(t, s.client, newRequest(t, "GET", tt.path, h))
			if err != nil {
				t.Fatal(err)
			}
			if got.status != tt.wantStatus || got.body != tt.wantBody {
				t.Fatalf("GET %s: %d %q, want %d %q [%s]", tt.path, got.status, got.body, tt.wantStatus, tt.wantBody, tt.doc)
			}
			if ct := got.header.Get("Content-Type"); ct != "text/plain" {
				t.Errorf("Content-Type: got %q, want text/plain", ct)
			}
		})
	}
}

func TestNewRefusesConfigItCannotServe(t *testing.T) {
	rs, err := Load(istioDir, projectID)
	if err != nil {
		t.Fatal(err)
	}
	b := devPKI(t)
	base := func() Config {
		return Config{
			Resources:   rs,
			Credentials: map[string]string{"api-gateway-mtls": b.GatewayDir},
			Upstreams:   everyDestination("127.0.0.1:1"),
			HTTPClient:  http.DefaultClient,
			Logger:      discardSlog(),
		}
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"no credential directory for the Gateway's credentialName", func(c *Config) { c.Credentials = nil }, `credentialName "api-gateway-mtls"`},
		{"no local address for the VirtualService destination", func(c *Config) { c.Upstreams = nil }, `no local address for "apikeys.api.svc.cluster.local:80"`},
		{"a workload no Gateway selects", func(c *Config) { c.Workload = Workload{Namespace: "x", Labels: map[string]string{"istio": "other"}} }, "no Gateway selects workload"},
		{"a port no server listens on", func(c *Config) { c.Port = 80 }, "no selected Gateway has a server on port 80"},
		{"an upstream address without a port", func(c *Config) { c.Upstreams = everyDestination("localhost") }, "Config.Upstreams"},
		{"no HTTP client for JWKS", func(c *Config) { c.HTTPClient = nil }, "Config.HTTPClient"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			cfg := base()
			tt.modify(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPoliciesSeeTheGatewaysClaimHeadersNotTheClients(t *testing.T) {
	// jwt_authn runs before rbac in Envoy's filter chain, so request.headers
	// conditions see the headers it set:
	// https://istio.io/latest/docs/reference/config/security/conditions/
	dir := timeoutBase(t)
	policy := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admins, namespace: istio-ingress}
spec:
  selector: {matchLabels: {istio: internal-ingressgateway}}
  action: ALLOW
  rules:
  - to: [{operation: {paths: [/api/admin]}}]
    when: [{key: "request.headers[x-jwt-claim-sub]", values: [admin]}]
`
	if err := os.WriteFile(filepath.Join(dir, "admins.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k = []byte(strings.Replace(string(k), "resources:\n", "resources:\n  - admins.yaml\n", 1))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), k, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{istioDir: dir})
	got, err := s.do(t, s.client, newRequest(t, "GET", "/api/admin", http.Header{"X-Jwt-Claim-Sub": {"admin"}}))
	if err != nil {
		t.Fatal(err)
	}
	if got.status != http.StatusForbidden || got.body != bodyRBACDenied {
		t.Fatalf("GET /api/admin with a forged x-jwt-claim-sub: %d %q, want 403 %q", got.status, got.body, bodyRBACDenied)
	}
}

func TestStreamingResponsesAreNotHeldBack(t *testing.T) {
	// Envoy forwards response bytes as they arrive; a response of unknown
	// length must reach the client before the upstream finishes it.
	release := make(chan struct{})
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	})
	s := newStack(t, stackOptions{upstream: upstream})
	defer close(release)

	req := newRequest(t, "GET", "/api/stream", http.Header{"Authorization": {"Bearer " + s.token(t)}})
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first streamed line: %q, %v; want %q while the upstream still holds the rest", line, err, "first\n")
	}
}

// TestStoppingClosesTheConnectionsToTheUpstream checks that a gateway that
// stops leaves no kept-alive connection open at its backend (for the 90 s
// of its idle timeout), as Envoy drains its pools on shutdown.
func TestStoppingClosesTheConnectionsToTheUpstream(t *testing.T) {
	closed := make(chan struct{}, 16)
	up := httptest.NewUnstartedServer(&recorder{})
	up.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- struct{}{}
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	s := newStack(t, stackOptions{upstreams: everyDestination(up.Listener.Addr().String())})
	resp, err := s.do(t, s.client, newRequest(t, "GET", "/api/secure.json", http.Header{"Authorization": {"Bearer " + s.token(t)}}))
	if err != nil || resp.status != http.StatusOK {
		t.Fatalf("GET through the gateway: %v %v, want 200", resp, err)
	}
	s.stop()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the gateway stopped and its connection to the upstream is still open 5 s later")
	}
}
