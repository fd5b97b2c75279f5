package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// The original tutorial's browser code fetches /api/secure.json from the
// frontend with the user's bearer token; the frontend verifies it, asks the
// gateway, and answers in its own words: a refusal is the frontend's JSON,
// never the gateway's (issue 13, item 3). This runs against a deployed
// frontend too, where the gateway itself is out of reach.
func TestFrontendRelaysTheTutorialsFetchThroughTheGateway(t *testing.T) {
	tests := []struct {
		name       string
		token      func(t *testing.T, tk tokens) string // nil: no Authorization
		wantStatus int
		wantError  string // the frontend's {"error"} for a refusal
	}{
		{
			name:  "a signed-in user's bearer token gets the secret message",
			token: func(t *testing.T, tk tokens) string { return tk.valid }, wantStatus: http.StatusOK,
		},
		{
			name: "without any credentials the frontend answers 401 itself", wantStatus: http.StatusUnauthorized,
			wantError: "Sign in to read the secret message.",
		},
		{
			name: "an expired bearer token is refused by the frontend, not relayed",
			token: func(t *testing.T, tk tokens) string {
				st := requireLocal(t, "an expired token needs the local emulator's private key")
				tok, err := st.Emulator.IDTokenFor(context.Background(), tk.uid, time.Now().Add(-2*time.Hour))
				if err != nil {
					t.Fatalf("IDTokenFor: %v", err)
				}
				noteSecret(tok)
				return tok
			},
			wantStatus: http.StatusUnauthorized, wantError: "That sign-in was not accepted. Sign in again.",
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
				t.Fatalf("GET /api/secure.json on the frontend answered %v; want %d %q", got, tt.wantStatus, tt.wantError)
			}
			if tt.wantStatus == http.StatusOK {
				checkSecret(t, got, tk)
				return
			}
			var e struct{ Error, RequestID string }
			if err := json.Unmarshal(body, &e); err != nil || e.Error != tt.wantError || e.RequestID == "" {
				t.Errorf("body = %q; want the frontend's own {\"error\": %q, \"requestId\"}", got.body, tt.wantError)
			}
		})
	}
}
