package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/backend"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/secureapi"
)

// realBackend is the project's backend verifying tokens against the emulator
// with the Firebase Admin SDK, as devstack runs it.
func realBackend(t testing.TB, idpHost string) http.Handler {
	t.Helper()
	// The Admin SDK reads only the environment (see internal/idtoken).
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", idpHost)
	v, err := idtoken.New(context.Background(), idtoken.Config{ProjectID: projectID, EmulatorHost: idpHost})
	if err != nil {
		t.Fatalf("idtoken.New: %v", err)
	}
	cfg := backend.Config{Addr: "127.0.0.1:0", ProjectID: projectID, AuthEmulatorHost: idpHost, Grace: time.Second,
		RevocationCheck: idtoken.DefaultRevocationCheck}
	b, err := backend.New(cfg, backend.Deps{Verifier: v})
	if err != nil {
		t.Fatalf("backend.New: %v", err)
	}
	return b.Handler()
}

// TestEndToEnd runs the frontend's call as it happens in production: the
// frontend's client certificate, a token the emulator signed, the gateway
// enforcing istio/, and the real backend verifying the token again.
func TestEndToEnd(t *testing.T) {
	s := newStack(t, stackOptions{upstreamFor: realBackend})
	tests := []struct {
		name       string
		path       string
		token      bool
		wantStatus int
		check      func(t *testing.T, body string)
	}{
		{
			name: "a signed-in call returns the secret message for that user", path: "/api/secure.json", token: true, wantStatus: 200,
			check: func(t *testing.T, body string) {
				var m secureapi.SecureMessage
				if err := json.Unmarshal([]byte(body), &m); err != nil {
					t.Fatalf("body %q: %v", body, err)
				}
				if m.Message != "Hello World" || m.UID != s.uid || m.Email != "ada@example.com" {
					t.Fatalf("got %+v, want Hello World for %s ada@example.com", m, s.uid)
				}
			},
		},
		{name: "health is open", path: "/api/healthz", wantStatus: 200},
		{name: "an anonymous call stops at the gateway", path: "/api/secure.json", wantStatus: 403,
			check: func(t *testing.T, body string) {
				if body != "RBAC: access denied" {
					t.Fatalf("body %q, want the gateway's RBAC denial", body)
				}
			}},
		{name: "a path trick stops at the gateway", path: "/api/healthz/%2e%2e/secure.json", wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.token {
				h.Set("Authorization", "Bearer "+s.token(t))
			}
			got, err := s.do(t, s.client, newRequest(t, "GET", tt.path, h))
			if err != nil {
				t.Fatal(err)
			}
			if got.status != tt.wantStatus {
				t.Fatalf("GET %s: %d %q, want %d", tt.path, got.status, got.body, tt.wantStatus)
			}
			if tt.check != nil {
				tt.check(t, got.body)
			}
		})
	}
}
