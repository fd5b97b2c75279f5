package e2e

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// The original tutorial's browser code fetches /api/secure.json from the
// frontend with the user's bearer token; the frontend relays it through the
// gateway and relays the gateway's answer as is (issue "Frontend on Cloud
// Run", backend client). This runs against a deployed frontend too, where the
// gateway itself is out of reach.
func TestFrontendRelaysTheTutorialsFetchThroughTheGateway(t *testing.T) {
	tests := []struct {
		name       string
		token      func(t *testing.T, tk tokens) string // nil: no Authorization
		wantStatus int
		wantBody   string // for the gateway's own answers
	}{
		{
			name:  "a signed-in user's bearer token gets the secret message",
			token: func(t *testing.T, tk tokens) string { return tk.valid }, wantStatus: http.StatusOK,
		},
		{
			name: "without any credentials the gateway's RBAC denial comes back", wantStatus: http.StatusForbidden, wantBody: bodyRBACDenied,
		},
		{
			name: "an expired bearer token gets the gateway's 401",
			token: func(t *testing.T, tk tokens) string {
				st := requireLocal(t, "an expired token needs the local emulator's private key")
				tok, err := st.Emulator.IDTokenFor(context.Background(), tk.uid, time.Now().Add(-2*time.Hour))
				if err != nil {
					t.Fatalf("IDTokenFor: %v", err)
				}
				noteSecret(tok)
				return tok
			},
			wantStatus: http.StatusUnauthorized, wantBody: bodyExpired,
		},
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tk tokens
			req, err := http.NewRequest(http.MethodGet, env.frontendURL+"/api/secure.json", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != nil || tt.wantStatus == http.StatusOK {
				tk = userTokens(t)
			}
			if tt.token != nil {
				req.Header.Set("Authorization", "Bearer "+tt.token(t, tk))
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("GET /api/secure.json on the frontend: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if err != nil {
				t.Fatal(err)
			}
			got := gatewayResponse{status: resp.StatusCode, header: resp.Header, body: string(body)}
			if got.status != tt.wantStatus {
				t.Fatalf("GET /api/secure.json on the frontend answered %v; want %d %q", got, tt.wantStatus, tt.wantBody)
			}
			if tt.wantStatus == http.StatusOK {
				checkSecret(t, got, tk)
			} else if got.body != tt.wantBody {
				t.Errorf("body = %q; want the gateway's %q relayed as is", got.body, tt.wantBody)
			}
		})
	}
}
