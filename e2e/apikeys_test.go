package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/apiclient"
)

// The partner path end to end, on the local stack: a partner app holds only
// an API key and calls the public frontend, which relays the key to the
// gateway under its own certificate; the gateway's CUSTOM policy asks the
// decision service (apikeys, devstack's in-memory store), and the backend
// answers the app it names.

// partnerApp creates an app for products on the stack's decision service.
func partnerApp(t *testing.T, products ...string) (id, key string) {
	t.Helper()
	st := requireLocal(t, "apps are created on the local decision service")
	app, key, err := st.APIKeys.CreateApp(context.Background(), "e2e-partner-owner", "e2e "+t.Name(), products)
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(key) // keys, like tokens, must never reach a log
	return app.ID, key
}

type partnerAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

// callFrontend calls the frontend's path as a partner: no certificate, no
// cookie, the headers given.
func callFrontend(t *testing.T, path string, header http.Header) partnerAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, env.frontendURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := partnerAnswer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("GET %s: %d with a body that is not JSON: %q", path, resp.StatusCode, raw)
	}
	return a
}

func TestPartnerCallsThroughTheFrontend(t *testing.T) {
	st := requireLocal(t, "the partner path needs the local decision service")
	appID, key := partnerApp(t, "secure-message")
	_, reportsKey := partnerApp(t, "reports")
	revokedID, revokedKey := partnerApp(t, "secure-message")
	if _, err := st.APIKeyStore.Revoke(context.Background(), revokedID, time.Now()); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name       string
		header     http.Header
		wantStatus int
		wantApp    string // the app the backend answered for
		wantError  string // the API's JSON error code
		wantHeader string // a header the answer must carry
	}{
		{"a partner's key reads the message, answered for its app, with its quota", http.Header{"X-Api-Key": {key}}, 200, appID, "", "X-Ratelimit-Remaining"},
		{"a spoofed x-api-app beside the key does not change the app", http.Header{"X-Api-Key": {key}, "X-Api-App": {"app_someone_else"}}, 200, appID, "", ""},
		{"an unknown key is 401", http.Header{"X-Api-Key": {"ak_" + strings.Repeat("B", 43)}}, 401, "", "unauthenticated", ""},
		{"a revoked key is 401", http.Header{"X-Api-Key": {revokedKey}}, 401, "", "unauthenticated", ""},
		{"a key for another product is 403", http.Header{"X-Api-Key": {reportsKey}}, 403, "", "forbidden", ""},
		{"a spoofed x-api-app without a key is no partner: sign in", http.Header{"X-Api-App": {appID}}, 401, "", "", ""},
		{"a key in the query string is no key", nil, 401, "", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := "/api/secure.json"
			if tt.header == nil {
				path += "?x-api-key=" + key
			}
			a := callFrontend(t, path, tt.header)
			if a.status != tt.wantStatus {
				t.Fatalf("status %d (%v), want %d", a.status, a.body, tt.wantStatus)
			}
			if app, _ := a.body["app"].(string); app != tt.wantApp {
				t.Errorf("the backend answered for app %q (%v), want %q", app, a.body, tt.wantApp)
			}
			if code, _ := a.body["error"].(string); tt.wantError != "" && code != tt.wantError {
				t.Errorf("error %q (%v), want %q", code, a.body, tt.wantError)
			}
			if tt.wantHeader != "" && a.header.Get(tt.wantHeader) == "" {
				t.Errorf("no %s on the answer: %v", tt.wantHeader, a.header)
			}
		})
	}
}

// TestDemoKeyWorksWithApiclient runs the call devstack prints, in process:
// apiclient's key client against the frontend with the demo key.
func TestDemoKeyWorksWithApiclient(t *testing.T) {
	st := requireLocal(t, "the demo key is devstack's")
	noteSecret(st.DemoAPIKey)
	c, err := apiclient.NewKeyClient(st.DemoAPIKey, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := c.Get(t.Context(), st.FrontendURL+"/api/secure.json")
	if err != nil {
		t.Fatalf("apiclient -api-key <demo key>: %v", err)
	}
	var m struct{ Message, App string }
	if err := json.Unmarshal(a.Body, &m); err != nil || m.App != st.DemoAppID || m.Message == "" {
		t.Errorf("answer %s: want the message for the demo app %s", a.Body, st.DemoAppID)
	}
}

// TestPartnerQuotaFromParallelConnections: a burst past the quota from
// parallel connections through the frontend lets exactly the quota through
// (10 a minute for secure-message); the rest get 429 with Retry-After.
// The quota window is the calendar minute on the real clock, so a burst
// that straddles a minute is run again with a fresh app.
func TestPartnerQuotaFromParallelConnections(t *testing.T) {
	requireLocal(t, "the quota is the local decision service's")
	const quota, clients = 10, 25
	for attempt := 0; attempt < 2; attempt++ {
		_, key := partnerApp(t, "secure-message")
		minute := time.Now().Truncate(time.Minute)
		statuses := make([]int, clients)
		retry := make([]string, clients)
		var wg sync.WaitGroup
		for i := range clients {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}} // a connection each
			wg.Go(func() {
				defer c.CloseIdleConnections()
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, env.frontendURL+"/api/secure.json", nil)
				req.Header.Set("X-Api-Key", key)
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[i], retry[i] = resp.StatusCode, resp.Header.Get("Retry-After")
			})
		}
		wg.Wait()
		if !time.Now().Truncate(time.Minute).Equal(minute) {
			continue // two windows: run again
		}
		counts := map[int]int{}
		for i, s := range statuses {
			counts[s]++
			if s == http.StatusTooManyRequests && retry[i] == "" {
				t.Errorf("a 429 without Retry-After")
			}
		}
		if counts[200] != quota || counts[429] != clients-quota {
			t.Errorf("statuses %v: want exactly %d × 200 and %d × 429", counts, quota, clients-quota)
		}
		return
	}
	t.Skip("both bursts straddled a minute boundary")
}

// TestSpoofedAppAtTheGateway: a caller with the frontend's certificate that
// sends x-api-app itself, without a key or token, is refused by the gateway:
// the provider removed the header before the ALLOW policy looked.
func TestSpoofedAppAtTheGateway(t *testing.T) {
	requireLocal(t, "the gateway is reachable locally")
	appID, _ := partnerApp(t, "secure-message")
	got, err := sendRaw(t, clientTLS(t, env.clientCertDir, true), "/api/secure.json", http.Header{"X-Api-App": {appID}})
	if err != nil {
		t.Fatal(err)
	}
	if got.status != http.StatusForbidden || got.body != "RBAC: access denied" {
		t.Errorf("a spoofed x-api-app at the gateway: %v, want 403 RBAC: access denied", got)
	}
}
