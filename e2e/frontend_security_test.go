package e2e

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// Where the frontend's own security rules are written down, for the hostile
// table's doc column.
const (
	docFrontendRelay  = "frontend/proxy.go secureJSON: one credential, verified by the frontend before the gateway, answered in the frontend's own words"
	docSessionBinding = "frontend/binding.go: the session cookie carries a MAC with this frontend's key (RFC 6265 section 8.5: cookies do not isolate ports)"
)

// boundSessionCookie signs idToken in at the frontend, as the sign-in module
// does, and returns the session cookie it set as "name=value".
func boundSessionCookie(t *testing.T, idToken string) string {
	t.Helper()
	csrf, token := csrfPair(t)
	req, err := http.NewRequest(http.MethodPost, env.frontendURL+"/session",
		bytes.NewReader([]byte(mustJSON(t, map[string]string{"idToken": idToken}))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", env.frontendURL)
	req.Header.Set("X-CSRF-Token", token)
	req.AddCookie(csrf)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST /session: %v", err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "session" || c.Name == "__Host-session" {
			noteSecret(c.Value)
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("POST /session answered %d without a session cookie", resp.StatusCode)
	return ""
}
