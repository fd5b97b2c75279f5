package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Stack says where a running local stack (go run ./cmd/devstack) is and how to
// talk to it as its real clients do.
type Stack struct {
	IdentityURL, BackendURL, GatewayURL, FrontendURL string
	GatewayServerName                                string
	ClientCertDir                                    string // the frontend's client certificate (tls.crt, tls.key, ca.crt)
	Email, Password                                  string
	// GatewayHTTP1 speaks HTTP/1.1 to the gateway, one kept-alive
	// connection per worker; by default HTTP/2, as the frontend does, which
	// carries every worker's requests on one connection.
	GatewayHTTP1 bool
}

// Target is one thing to load: how to build its request and which client to use.
type Target struct {
	Name       string
	URL        *url.URL
	Client     *http.Client
	NewRequest func(ctx context.Context) (*http.Request, error)
}

// Targets signs the user in once (a real ID token from the emulator) and
// returns the three ways to reach the secret: straight to the backend, through
// the gateway with mTLS and the bearer token as the frontend calls it, and the
// signed-in page of the frontend with the session cookie as a browser sends it.
func (s Stack) Targets(ctx context.Context, workers int) (map[string]Target, error) {
	token, err := signIn(ctx, s.IdentityURL, s.Email, s.Password)
	if err != nil {
		return nil, err
	}
	gwTLS, err := clientTLS(s.ClientCertDir, s.GatewayServerName)
	if err != nil {
		return nil, err
	}
	// One idle connection per worker, so keep-alive holds under load.
	transport := func(t *tls.Config) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: t, MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, ForceAttemptHTTP2: t != nil && !s.GatewayHTTP1,
		}}
	}
	bearer := func(base, host string) (*url.URL, func(ctx context.Context) (*http.Request, error), error) {
		u, err := url.Parse(base + "/api/secure.json")
		if err != nil {
			return nil, nil, err
		}
		return u, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, "GET", u.String(), nil)
			if err != nil {
				return nil, err
			}
			if host != "" {
				req.Host = host
			}
			req.Header.Set("Authorization", "Bearer "+token)
			return req, nil
		}, nil
	}
	ts := map[string]Target{}
	u, nr, err := bearer(s.BackendURL, "")
	if err != nil {
		return nil, fmt.Errorf("backend URL: %w", err)
	}
	ts["backend"] = Target{Name: "backend (direct)", URL: u, Client: transport(nil), NewRequest: nr}
	u, nr, err = bearer(s.GatewayURL, s.GatewayServerName)
	if err != nil {
		return nil, fmt.Errorf("gateway URL: %w", err)
	}
	ts["gateway"] = Target{Name: "gateway (mTLS + JWT + policy + proxy)", URL: u, Client: transport(gwTLS), NewRequest: nr}

	fu, err := url.Parse(s.FrontendURL + "/")
	if err != nil {
		return nil, fmt.Errorf("frontend URL: %w", err)
	}
	session, err := sessionCookie(ctx, s.FrontendURL, token)
	if err != nil {
		return nil, err
	}
	ts["frontend"] = Target{Name: "frontend signed-in page", URL: fu, Client: transport(nil),
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, "GET", fu.String(), nil)
			if err != nil {
				return nil, err
			}
			req.AddCookie(session)
			return req, nil
		}}
	return ts, nil
}

// sessionCookie posts the ID token to the frontend as its sign-in module
// does (the page's CSRF cookie and token, then POST /session) and returns the
// session cookie it sets: bound to that frontend by a MAC, so the token alone
// is not one.
func sessionCookie(ctx context.Context, frontendURL, token string) (*http.Cookie, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", frontendURL+"/", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loading the frontend's page: %w", err)
	}
	page, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("loading the frontend's page: %w", err)
	}
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "csrf" {
			csrf = c
		}
	}
	m := appConfigScript.FindSubmatch(page)
	var cfg struct {
		CSRFToken string `json:"csrfToken"`
	}
	if csrf == nil || m == nil || json.Unmarshal(m[1], &cfg) != nil || cfg.CSRFToken == "" {
		return nil, fmt.Errorf("the frontend's page at %s has no CSRF cookie and token", frontendURL)
	}
	body, _ := json.Marshal(map[string]string{"idToken": token})
	req, err = http.NewRequestWithContext(ctx, "POST", frontendURL+"/session", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", frontendURL)
	req.Header.Set("X-CSRF-Token", cfg.CSRFToken)
	req.AddCookie(csrf)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST /session: %w", err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		// Plain-HTTP localhost: the cookie has no __Host- prefix there.
		if c.Name == "session" {
			return &http.Cookie{Name: c.Name, Value: c.Value}, nil
		}
	}
	return nil, fmt.Errorf("POST /session answered %s without a session cookie", resp.Status)
}

// appConfigScript finds the JSON the page hands its sign-in module.
var appConfigScript = regexp.MustCompile(`<script id="app-config" type="application/json">([^<]*)</script>`)

// signIn gets an ID token the way the Firebase JS SDK does.
func signIn(ctx context.Context, identityURL, email, password string) (string, error) {
	body, _ := json.Marshal(map[string]any{"email": email, "password": password, "returnSecureToken": true})
	req, err := http.NewRequestWithContext(ctx, "POST",
		identityURL+"/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=loadtest", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("signing in %s: %w", email, err)
	}
	defer resp.Body.Close()
	var out struct {
		IDToken string `json:"idToken"`
		Error   struct{ Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("signing in %s: %s: %w", email, resp.Status, err)
	}
	if out.IDToken == "" {
		return "", fmt.Errorf("signing in %s: %s %s", email, resp.Status, out.Error.Message)
	}
	return out.IDToken, nil
}

func clientTLS(dir, serverName string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		return nil, fmt.Errorf("client certificate in %s: %w", dir, err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("gateway CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("gateway CA %s: no certificate in it", filepath.Join(dir, "ca.crt"))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}
