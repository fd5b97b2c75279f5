package frontend

import (
	"crypto/tls"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// keyGateway stands in for the gateway behind which the decision service
// checks keys: it requires the frontend's client certificate, records what
// reached it, and answers as the test says.
type keyGateway struct {
	mu     sync.Mutex
	got    []http.Header
	answer func(w http.ResponseWriter, r *http.Request)
}

func (g *keyGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.got = append(g.got, r.Header.Clone())
	answer := g.answer
	g.mu.Unlock()
	w.Header().Set("Server", envoyServer)
	w.Header().Set(envoyServiceTime, "1")
	answer(w, r)
}

func (g *keyGateway) received() []http.Header {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got
}

func newPartnerStack(t *testing.T, gw *keyGateway) *stack {
	t.Helper()
	bundle, err := pki.Ensure(pki.Config{Dir: t.TempDir(), GatewayHosts: []string{gatewayHost}})
	if err != nil {
		t.Fatal(err)
	}
	gwCreds, err := tlsdir.Open(tlsdir.Config{Dir: bundle.GatewayDir})
	if err != nil {
		t.Fatal(err)
	}
	url := startTLSServer(t, &http.Server{Handler: gw, TLSConfig: gwCreds.ServerConfig(tls.RequireAndVerifyClientCert)})
	clientCreds, err := tlsdir.Open(tlsdir.Config{Dir: bundle.FrontendDir})
	if err != nil {
		t.Fatal(err)
	}
	return newStackDeps(t, func(d *Deps) { d.GatewayTLS = clientCreds }, func(c *Config) {
		c.GatewayURL, c.ClientTLSDir = url, bundle.FrontendDir
	})
}

// TestPartnerCallsAreRelayedWithTheKeyAlone: a partner's x-api-key goes to
// the gateway under the frontend's certificate; nothing else that names a
// caller does (no bearer token, no cookie, never a client's x-api-app), and
// the partner sees the API's JSON and quota headers, not Envoy's.
func TestPartnerCallsAreRelayedWithTheKeyAlone(t *testing.T) {
	for _, tt := range []struct {
		name       string
		path       string
		header     http.Header
		answer     func(w http.ResponseWriter, r *http.Request)
		wantStatus int
		wantBody   string // a substring
		wantHeader map[string]string
		wantSent   bool // the call reached the gateway
	}{
		{
			name:   "a key is relayed alone, and the API's answer comes back with its quota",
			path:   "/api/secure.json?x=1",
			header: http.Header{"X-Api-Key": {"ak_partner"}, "X-Api-App": {"spoofed"}, "Authorization": {"Bearer someone"}, "Cookie": {"__session=zzz"}},
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Ratelimit-Remaining", "9")
				w.Write([]byte(`{"message":"Hello World"}`))
			},
			wantStatus: 200, wantBody: `{"message":"Hello World"}`, wantSent: true,
			wantHeader: map[string]string{"X-Ratelimit-Remaining": "9", "Server": "", envoyServiceTime: ""},
		},
		{
			name:   "a path beyond secure.json is relayed for a key",
			path:   "/api/reports/daily",
			header: http.Header{"X-Api-Key": {"ak_partner"}},
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"path":"` + r.URL.Path + `"}`))
			},
			wantStatus: 200, wantBody: `{"path":"/api/reports/daily"}`, wantSent: true,
		},
		{
			name:   "the decision service's 429 reaches the partner with retry-after",
			path:   "/api/secure.json",
			header: http.Header{"X-Api-Key": {"ak_partner"}},
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusTooManyRequests)
				w.Write([]byte(`{"error":"quota_exceeded","message":"used up"}`))
			},
			wantStatus: 429, wantBody: `"quota_exceeded"`, wantSent: true, wantHeader: map[string]string{"Retry-After": "30"},
		},
		{
			name:   "Envoy's plain-text verdict stays in the log",
			path:   "/api/secure.json",
			header: http.Header{"X-Api-Key": {"ak_partner"}},
			answer: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "RBAC: access denied", http.StatusForbidden)
			},
			wantStatus: 403, wantBody: `"requestId"`, wantSent: true,
		},
		{
			name: "two keys are refused here", path: "/api/secure.json", header: http.Header{"X-Api-Key": {"ak_one", "ak_two"}},
			wantStatus: 401,
		},
		{
			name: "without a key nothing beyond secure.json is served", path: "/api/reports/daily",
			wantStatus: 404,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gw := &keyGateway{answer: tt.answer}
			s := newPartnerStack(t, gw)
			req, err := http.NewRequest(http.MethodGet, s.front.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range tt.header {
				req.Header[k] = vs
			}
			resp, body := s.do(req)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("status %d body %q, want %d with %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if strings.Contains(body, "RBAC") {
				t.Errorf("the gateway's verdict reached the partner: %q", body)
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s: %q, want %q", k, got, v)
				}
			}
			got := gw.received()
			if !tt.wantSent {
				if len(got) != 0 {
					t.Errorf("%d calls reached the gateway, want none", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d calls reached the gateway, want 1", len(got))
			}
			h := got[0]
			if k := h.Values("X-Api-Key"); len(k) != 1 || k[0] != "ak_partner" {
				t.Errorf("x-api-key at the gateway: %q, want the partner's one key", k)
			}
			for _, name := range []string{"X-Api-App", "Authorization", "Cookie"} {
				if v := h.Values(name); len(v) != 0 {
					t.Errorf("%s reached the gateway: %q", name, v)
				}
			}
		})
	}
}
