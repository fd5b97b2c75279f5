package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/cputime"
)

// These benchmarks time the whole flow on one machine, each request through
// every real part: they complement the per-component benchmarks, which
// isolate each part. See docs/performance.md, section "End-to-end".
//
// Every part runs in this process, so besides wall time they report the
// process's CPU time per request (cpu-ns/op): the cost of the whole flow,
// benchmark client included, which a busy shared machine does not inflate
// the way it inflates wall time.

// BenchmarkSecureJSONThroughTheGateway is the frontend's call to the API:
// mTLS (kept alive) to the gateway, JWT check, policy, proxy, and the
// backend's own verification of the token.
func BenchmarkSecureJSONThroughTheGateway(b *testing.B) {
	requireGateway(b)
	tk := userTokens(b)
	hc := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: clientTLS(b, env.clientCertDir, true), MaxIdleConnsPerHost: 4},
	}
	get := func() (int, string) {
		req, _ := http.NewRequest(http.MethodGet, env.gatewayURL+"/api/secure.json", nil)
		req.Host = env.gatewayServerName
		req.Header.Set("Authorization", "Bearer "+tk.valid)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := get(); status != http.StatusOK || !strings.Contains(body, "Hello World") {
		b.Fatalf("GET /api/secure.json answered %d %q; want 200 with the secret", status, body)
	}
	cpu := cputime.Used(b)
	for b.Loop() {
		if status, _ := get(); status != http.StatusOK {
			b.Fatalf("status %d", status)
		}
	}
	cputime.ReportPerOp(b, cpu)
}

// BenchmarkSignedInPage is a signed-in user loading the start page: the
// frontend verifies the session cookie, fetches the secret through the
// gateway (the benchmark above) and renders the page.
func BenchmarkSignedInPage(b *testing.B) {
	tk := userTokens(b)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Timeout: 10 * time.Second, Jar: jar}
	// Sign in over HTTP exactly as the sign-in module does: the page's CSRF
	// token and cookie, then POST /session with the ID token.
	cfg, err := fetchAppConfig(hc, env.frontendURL)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"idToken": tk.valid})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, env.frontendURL+"/session", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", env.frontendURL)
	req.Header.Set("X-CSRF-Token", cfg.CSRFToken)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Fatalf("POST /session answered %s; want 2xx", resp.Status)
	}
	get := func() (int, string) {
		resp, err := hc.Get(env.frontendURL + "/")
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		page, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(page)
	}
	if status, page := get(); status != http.StatusOK || !strings.Contains(page, "Hello World") {
		b.Fatalf("GET / answered %d without the secret message; want the signed-in page:\n%s", status, page)
	}
	cpu := cputime.Used(b)
	for b.Loop() {
		if status, _ := get(); status != http.StatusOK {
			b.Fatalf("status %d", status)
		}
	}
	cputime.ReportPerOp(b, cpu)
}
