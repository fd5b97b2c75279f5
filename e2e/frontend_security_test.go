package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
)

// Where the frontend's own security rules are written down, for the hostile
// table's doc column.
const (
	docFrontendRelay         = "frontend/securejson.go secureJSON: one credential, verified by the frontend before the gateway, answered in the frontend's own words"
	docSessionBinding        = "frontend/binding.go: the session cookie carries a MAC with this frontend's key (RFC 6265 section 8.5: cookies do not isolate ports)"
	docFrontendEmailVerified = "frontend/securejson.go: an unverified email proves nothing while sign-up is open; the frontend asks for verification first"
)

// boundSession signs idToken in at the frontend at frontendURL, as the
// sign-in module does (the page's CSRF cookie and token, then POST
// /session), and returns the session cookie it set: the token alone is not
// one (frontend/binding.go).
func boundSession(t *testing.T, frontendURL, idToken string) *http.Cookie {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Jar: jar}
	cfg, err := fetchAppConfig(hc, frontendURL)
	if err != nil {
		t.Fatalf("reading the page's CSRF token: %v", err)
	}
	req, err := http.NewRequest(http.MethodPost, frontendURL+"/session",
		bytes.NewReader([]byte(mustJSON(t, map[string]string{"idToken": idToken}))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", frontendURL)
	req.Header.Set("X-CSRF-Token", cfg.CSRFToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST /session: %v", err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "session" || c.Name == "__Host-session" {
			noteSecret(c.Value)
			return &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	t.Fatalf("POST /session answered %d without a session cookie", resp.StatusCode)
	return nil
}

// refreshToken signs email in over the Identity Toolkit REST API, as another
// browser would, and returns the refresh token the SDK would keep.
func refreshToken(t *testing.T, email, password string) string {
	t.Helper()
	var res struct {
		IDToken      string `json:"idToken"`
		RefreshToken string `json:"refreshToken"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := newIdentityClient(t).call(ctx, "accounts:signInWithPassword",
		map[string]any{"email": email, "password": password, "returnSecureToken": true}, &res); err != nil {
		t.Fatalf("signing %s in over REST: %v", email, err)
	}
	noteSecret(res.IDToken)
	noteSecret(res.RefreshToken)
	return res.RefreshToken
}

// refreshWorks tells whether the Secure Token API still mints an ID token
// for a refresh token, as the SDK asks every hour.
func refreshWorks(t *testing.T, refreshToken string) bool {
	t.Helper()
	c := pageConfig(t)
	base := "https://securetoken.googleapis.com"
	if c.EmulatorURL != "" {
		base = strings.TrimRight(c.EmulatorURL, "/") + "/securetoken.googleapis.com"
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.PostForm(base+"/v1/token?key="+url.QueryEscape(c.APIKey),
		url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	if err != nil {
		t.Fatalf("refreshing: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		IDToken string `json:"id_token"`
	}
	if json.NewDecoder(resp.Body).Decode(&out) == nil {
		noteSecret(out.IDToken)
	}
	return resp.StatusCode == http.StatusOK
}

// adminFor is the Admin SDK client a frontend built in a test revokes
// sessions with at sign-out (frontend.Deps.Revoker), as cmd/frontend's.
func adminFor(t *testing.T, projectID, emulatorHost string) *idtoken.Firebase {
	t.Helper()
	c, err := idtoken.New(context.Background(), idtoken.Config{ProjectID: projectID, EmulatorHost: emulatorHost})
	if err != nil {
		t.Fatalf("idtoken.New: %v", err)
	}
	return c
}

// unverifiedToken signs up a new account over the Identity Toolkit REST API,
// as anyone may, and returns its ID token: its email is not verified. The
// account is deleted when the test ends.
func unverifiedToken(t *testing.T) string {
	t.Helper()
	var res struct {
		IDToken string `json:"idToken"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ic := newIdentityClient(t)
	email := fmt.Sprintf("unverified-%d@example.com", time.Now().UnixNano())
	if err := ic.call(ctx, "accounts:signUp",
		map[string]any{"email": email, "password": randomString(12), "returnSecureToken": true}, &res); err != nil {
		t.Fatalf("signing up %s: %v", email, err)
	}
	noteSecret(res.IDToken)
	t.Cleanup(func() {
		if err := ic.deleteAccount(context.Background(), res.IDToken); err != nil {
			t.Logf("cleanup: deleting %s: %v", email, err)
		}
	})
	return res.IDToken
}
