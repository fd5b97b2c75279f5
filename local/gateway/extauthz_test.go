package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// Where the API-key rows' expectations come from.
const (
	docExtAuthzOrder = "https://istio.io/latest/docs/concepts/security/#implicit-enablement (CUSTOM, DENY, then ALLOW); istio/istio#51173 (ext_authz before jwt_authn)"
	docExtAuthzOK    = "https://www.envoyproxy.io/docs/envoy/v1.37.0/api-v3/service/auth/v3/external_auth.proto (OkHttpResponse headers, headers_to_remove, response_headers_to_add)"
	docExtAuthzDeny  = "https://www.envoyproxy.io/docs/envoy/v1.37.0/api-v3/service/auth/v3/external_auth.proto (DeniedHttpResponse status, headers, body)"
	docExtAuthzError = "https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#MeshConfig-ExtensionProvider-EnvoyExternalAuthorizationGrpcProvider (failOpen false: 403, statusOnError)"
	docPresence      = "https://istio.io/latest/docs/reference/config/security/authorization-policy/#Rule (presence match \"*\": the value is not empty)"
)

// TestAPIKeyConformance sends partner calls and hostile ones through the
// gateway serving istio/ with its CUSTOM policy, which asks the real
// decision service (apikeys) over gRPC, as deploy/istio/operator.yaml's
// provider says. The upstream echoes what it received, so each row also
// shows what the backend saw.
func TestAPIKeyConformance(t *testing.T) {
	s := newStack(t, stackOptions{})
	appID, key := s.newApp(t, "secure-message")
	_, reportsKey := s.newApp(t, "reports")
	revokedID, revokedKey := s.newApp(t, "secure-message")
	if _, err := s.keyStore.Revoke(context.Background(), revokedID, time.Now()); err != nil {
		t.Fatal(err)
	}
	tok := s.token(t)

	tests := []struct {
		name        string
		doc         string
		path        string
		header      http.Header
		wantStatus  int
		wantBody    string            // exact; "" skips
		wantJSON    string            // the error code of the API's JSON error body; "" skips
		wantHeader  map[string]string // on the answer
		wantApp     []string          // x-api-app as the backend received it, for 200s
		wantNoKeyUp bool              // the backend must not see x-api-key
	}{
		{
			name: "a request without a key is left to the JWT rules: no token is 403", doc: docExtAuthzOrder,
			path: "/api/secure.json", wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "a request without a key is left to the JWT rules: a verified user passes, with no x-api-app", doc: docExtAuthzOrder,
			path: "/api/secure.json", header: http.Header{"Authorization": {"Bearer " + tok}}, wantStatus: 200, wantApp: nil,
		},
		{
			name: "a valid key passes with x-api-app set upstream, the key removed and the quota on the answer", doc: docExtAuthzOK + "; " + docPresence,
			path: "/api/secure.json", header: http.Header{"X-Api-Key": {key}}, wantStatus: 200, wantApp: []string{appID}, wantNoKeyUp: true,
			wantHeader: map[string]string{"X-Ratelimit-Limit": "10", "Server": "istio-envoy"},
		},
		{
			name: "an unknown key is 401 with the provider's JSON body", doc: docExtAuthzDeny,
			path: "/api/secure.json", header: http.Header{"X-Api-Key": {"ak_" + strings.Repeat("A", 43)}}, wantStatus: 401, wantJSON: "unauthenticated",
			wantHeader: map[string]string{"Content-Type": "application/json", "Server": "istio-envoy"},
		},
		{
			name: "a revoked key is 401 on the next request", doc: docExtAuthzDeny,
			path: "/api/secure.json", header: http.Header{"X-Api-Key": {revokedKey}}, wantStatus: 401, wantJSON: "unauthenticated",
		},
		{
			name: "a key whose products do not cover the path is 403 from the provider, not RBAC", doc: docExtAuthzDeny,
			path: "/api/secure.json", header: http.Header{"X-Api-Key": {reportsKey}}, wantStatus: 403, wantJSON: "forbidden",
		},
		{
			name: "a spoofed x-api-app without a key is removed, and RBAC refuses the call", doc: docExtAuthzOK + "; " + docExtAuthzOrder,
			path: "/api/secure.json", header: http.Header{"X-Api-App": {appID}}, wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "a spoofed x-api-app beside a user's token never reaches the backend", doc: docExtAuthzOK,
			path: "/api/secure.json", header: http.Header{"X-Api-App": {"someone-else"}, "Authorization": {"Bearer " + tok}}, wantStatus: 200, wantApp: nil,
		},
		{
			name: "a spoofed x-api-app beside a valid key is replaced by the key's app", doc: docExtAuthzOK,
			path: "/api/secure.json", header: http.Header{"X-Api-App": {"someone-else"}, "X-Api-Key": {key}}, wantStatus: 200, wantApp: []string{appID},
		},
		{
			name: "a key in the query string is no key: RBAC refuses the call", doc: docExtAuthzOrder,
			path: "/api/secure.json?x-api-key=" + key, wantStatus: 403, wantBody: "RBAC: access denied",
		},
		{
			name: "two keys are 401", doc: docExtAuthzDeny,
			path: "/api/secure.json", header: http.Header{"X-Api-Key": {key, reportsKey}}, wantStatus: 401, wantJSON: "unauthenticated",
		},
		{
			name: "healthz never reaches the provider, even with a bad key", doc: "istio/authorizationpolicy-apikeys.yaml (notPaths /api/healthz)",
			path: "/api/healthz", header: http.Header{"X-Api-Key": {"nonsense"}}, wantStatus: 200,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.do(t, s.client, newRequest(t, "GET", tt.path, tt.header))
			if err != nil {
				t.Fatal(err)
			}
			if got.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s); body %q", got.status, tt.wantStatus, tt.doc, got.body)
			}
			if tt.wantBody != "" && got.body != tt.wantBody {
				t.Errorf("body %q, want %q", got.body, tt.wantBody)
			}
			if tt.wantJSON != "" {
				var e struct{ Error, Message string }
				if err := json.Unmarshal([]byte(got.body), &e); err != nil || e.Error != tt.wantJSON || e.Message == "" {
					t.Errorf("body %q: want the API's JSON error %q with a message", got.body, tt.wantJSON)
				}
			}
			for k, v := range tt.wantHeader {
				if g := got.header.Get(k); g != v {
					t.Errorf("header %s: %q, want %q", k, g, v)
				}
			}
			if got.status != 200 {
				return
			}
			var e echoed
			if err := json.Unmarshal([]byte(got.body), &e); err != nil {
				t.Fatalf("upstream echo %q: %v", got.body, err)
			}
			if app := e.Header.Values("X-Api-App"); strings.Join(app, ",") != strings.Join(tt.wantApp, ",") {
				t.Errorf("x-api-app upstream: %q, want %q", app, tt.wantApp)
			}
			if tt.wantNoKeyUp && e.Header.Get("X-Api-Key") != "" {
				t.Errorf("the backend received the key")
			}
		})
	}
}

// TestAPIKeyQuotaBurst: many parallel connections with one key, quota Q per
// minute: exactly Q reach the backend, the rest get 429 with the rate-limit
// headers. The decision service's clock is fixed, so the burst cannot
// straddle two minute windows.
func TestAPIKeyQuotaBurst(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 30, 0, time.UTC)
	s := newStack(t, stackOptions{keysNow: func() time.Time { return now }})
	_, key := s.newApp(t, "secure-message")
	const quota, clients = 10, 30 // secure-message: perMinute 10 in products.yaml

	type result struct {
		status int
		header http.Header
		err    error
	}
	results := make(chan result, clients)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range clients {
		// A client of its own: a connection each.
		c := s.clientWith(t, s.pki.frontend)
		wg.Go(func() {
			defer c.CloseIdleConnections()
			<-start
			got, err := s.do(t, c, newRequest(t, "GET", "/api/secure.json", http.Header{"X-Api-Key": {key}}))
			results <- result{got.status, got.header, err}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	counts := map[int]int{}
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		counts[r.status]++
		if r.status == http.StatusTooManyRequests {
			for _, h := range []string{"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Retry-After"} {
				if r.header.Get(h) == "" {
					t.Errorf("a 429 without %s: %v", h, r.header)
				}
			}
			if r.header.Get("X-Ratelimit-Remaining") != "0" || r.header.Get("Retry-After") != "30" {
				t.Errorf("a 429 says remaining %q, retry after %q: want 0 and 30", r.header.Get("X-Ratelimit-Remaining"), r.header.Get("Retry-After"))
			}
		}
	}
	if counts[200] != quota || counts[429] != clients-quota {
		t.Errorf("statuses %v: want exactly %d × 200 and %d × 429", counts, quota, clients-quota)
	}
}

// TestAPIKeyProviderDown: with the decision service unreachable the gateway
// fails closed (failOpen false) with statusOnError's 403 and no body, for a
// key and for a user alike; /api/healthz, which skips the provider, stays up.
func TestAPIKeyProviderDown(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	dead.Close() // nothing listens there now
	s := newStack(t, stackOptions{extAuthzAddr: addr})
	tok := s.token(t)
	for _, tt := range []struct {
		name       string
		path       string
		header     http.Header
		wantStatus int
	}{
		{"a key gets 403", "/api/secure.json", http.Header{"X-Api-Key": {"ak_whatever"}}, 403},
		{"a verified user gets 403 too", "/api/secure.json", http.Header{"Authorization": {"Bearer " + tok}}, 403},
		{"healthz stays open", "/api/healthz", nil, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.do(t, s.client, newRequest(t, "GET", tt.path, tt.header))
			if err != nil {
				t.Fatal(err)
			}
			if got.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s); body %q", got.status, tt.wantStatus, docExtAuthzError, got.body)
			}
			if tt.wantStatus == 403 && got.body != "" {
				t.Errorf("body %q, want none: Envoy's error reply carries no body", got.body)
			}
		})
	}
	if !strings.Contains(s.log.String(), "ext_authz_error") {
		t.Errorf("the access log does not name ext_authz_error:\n%s", s.log.String())
	}
}

// TestMeshConfigIsReadStrictly: the install file's meshConfig is decoded
// with Istio's types, and a misspelt field or a provider the gateway cannot
// honour stops it at start-up, named.
func TestMeshConfigIsReadStrictly(t *testing.T) {
	orig, err := os.ReadFile("../../deploy/istio/operator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, old, new, want string
	}{
		{"a misspelt field is named with its path", "failOpen: false", "failOpn: false", `spec.meshConfig.extensionProviders[0].envoyExtAuthzGrpc: unknown field "failOpn"`},
		{"a status on error that is not a status is refused", `statusOnError: "403"`, `statusOnError: "forbidden"`, `statusOnError "forbidden"`},
		{"a provider the policy names must exist", "- name: apikeys", "- name: other", `CUSTOM provider "apikeys" is not in meshConfig.extensionProviders`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			changed := strings.Replace(string(orig), tt.old, tt.new, 1)
			if changed == string(orig) {
				t.Fatalf("operator.yaml no longer contains %q: update this row", tt.old)
			}
			p := filepath.Join(t.TempDir(), "operator.yaml")
			if err := os.WriteFile(p, []byte(changed), 0o600); err != nil {
				t.Fatal(err)
			}
			mc, err := LoadMeshConfig(p)
			if err == nil {
				rs, lerr := Load(istioDir, projectID)
				if lerr != nil {
					t.Fatal(lerr)
				}
				_, err = New(Config{Resources: rs, HTTPClient: http.DefaultClient, Logger: discardSlog(),
					Credentials: map[string]string{"api-gateway-mtls": devPKI(t).GatewayDir},
					Upstreams:   everyDestination("127.0.0.1:1"),
					MeshConfig:  mc, ExtAuthz: map[string]string{apikeysService: "127.0.0.1:1"}})
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// stuckProvider is an ext_authz server that never answers: each Check waits
// until the gateway gives up on it.
type stuckProvider struct {
	authv3.UnimplementedAuthorizationServer
}

func (stuckProvider) Check(ctx context.Context, _ *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestAPIKeyProviderTimeout: a provider slower than the mesh config's
// timeout is a failed check: with failOpen false the request gets
// statusOnError; with failOpen true it goes on as if no CUSTOM policy had
// matched, to the JWT rules.
func TestAPIKeyProviderTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, stuckProvider{})
	served := make(chan struct{})
	go func() { defer close(served); g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); <-served })

	for _, tt := range []struct {
		name       string
		failOpen   bool
		status     string
		withToken  bool
		wantStatus int
		wantBody   string
	}{
		{"fail closed answers statusOnError", false, "503", true, 503, ""},
		{"fail open passes a user with a token", true, "", true, 200, ""},
		{"fail open still leaves a caller without a token to RBAC", true, "", false, 403, "RBAC: access denied"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, stackOptions{extAuthzAddr: ln.Addr().String(), mesh: func(mc *meshv1alpha1.MeshConfig) {
				p := mc.GetExtensionProviders()[0].GetEnvoyExtAuthzGrpc()
				p.Timeout = durationpb.New(50 * time.Millisecond)
				p.FailOpen = tt.failOpen
				p.StatusOnError = tt.status
			}})
			h := http.Header{"X-Api-Key": {"ak_whatever"}}
			if tt.withToken {
				h.Set("Authorization", "Bearer "+s.token(t))
			}
			got, err := s.do(t, s.client, newRequest(t, "GET", "/api/secure.json", h))
			if err != nil {
				t.Fatal(err)
			}
			if got.status != tt.wantStatus || got.body != tt.wantBody && tt.wantStatus != 200 {
				t.Errorf("status %d body %q, want %d %q (%s)", got.status, got.body, tt.wantStatus, tt.wantBody, docExtAuthzError)
			}
		})
	}
}

// recordingProvider answers OK and keeps the CheckRequests it got.
type recordingProvider struct {
	authv3.UnimplementedAuthorizationServer
	mu  sync.Mutex
	got []*authv3.CheckRequest
}

func (p *recordingProvider) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, req)
	return &authv3.CheckResponse{Status: &rpcstatus.Status{}}, nil
}

// TestCheckRequestCarriesWhatEnvoySends: the provider gets the request as
// Envoy's ext_authz filter describes it (AttributeContext): lower-case
// header names with repeated values joined by ",", the pseudo-headers, the
// normalized path with the query, method, host, scheme, protocol, and the
// client certificate's URI SAN as the source principal.
func TestCheckRequestCarriesWhatEnvoySends(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingProvider{}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, rec)
	served := make(chan struct{})
	go func() { defer close(served); g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); <-served })
	s := newStack(t, stackOptions{extAuthzAddr: ln.Addr().String()})

	h := http.Header{"X-Api-Key": {"ak_one"}, "X-Custom": {"a", "b"}, "Authorization": {"Bearer " + s.token(t)}}
	if got, err := s.do(t, s.client, newRequest(t, "GET", "/api/./secure.json?q=1", h)); err != nil || got.status != 200 {
		t.Fatalf("status %d, err %v, body %q: want 200", got.status, err, got.body)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != 1 {
		t.Fatalf("the provider got %d checks, want 1", len(rec.got))
	}
	a := rec.got[0].GetAttributes()
	hr := a.GetRequest().GetHttp()
	for k, want := range map[string]string{
		"x-api-key": "ak_one", "x-custom": "a,b", ":path": "/api/secure.json?q=1", ":method": "GET",
		":authority": gatewayHost, ":scheme": "https",
	} {
		if got := hr.GetHeaders()[k]; got != want {
			t.Errorf("headers[%q] = %q, want %q", k, got, want)
		}
	}
	if hr.GetPath() != "/api/secure.json?q=1" || hr.GetMethod() != "GET" || hr.GetHost() != gatewayHost || hr.GetScheme() != "https" || hr.GetProtocol() != "HTTP/2" {
		t.Errorf("http request %v: want path /api/secure.json?q=1, GET, host %s, https and HTTP/2", hr, gatewayHost)
	}
	if p := a.GetSource().GetPrincipal(); p != "spiffe://acme.internal/ns/frontend/sa/frontend" {
		t.Errorf("source principal %q, want the frontend certificate's URI SAN", p)
	}
	if a.GetSource().GetAddress().GetSocketAddress().GetAddress() != "127.0.0.1" {
		t.Errorf("source address %v, want the client's", a.GetSource().GetAddress())
	}
}
