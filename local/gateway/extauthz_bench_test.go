package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkCustomPolicy measures what the CUSTOM policy adds: one GET
// /api/secure.json over a kept-alive connection through a gateway serving
// istio/ without its API-key policies, and through one serving istio/ as it
// is, whose every API request first asks the decision service over gRPC on
// loopback (in-memory store). Side by side in one run: a user's call (a
// token, no key: the check says OK and strips x-api-app) on both, and a
// partner's call (a key: looked up, quota counted, x-api-app set) on the
// second. Each reports its p50 and p90 beside ns/op. Run:
//
//	go test ./local/gateway -run '^$' -bench CustomPolicy -benchtime 2000x
func BenchmarkCustomPolicy(b *testing.B) {
	direct := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"Hello World","uid":"u","email":"ada@example.com"}`)
	}))
	defer direct.Close()
	ups := everyDestination(direct.Listener.Addr().String())
	without := newStack(b, stackOptions{istioDir: istioWithoutAPIKeys(b), upstreams: ups, discardAccessLog: true})
	// Quotas no benchmark reaches, so every partner call is a pass.
	products := filepath.Join(b.TempDir(), "products.yaml")
	if err := os.WriteFile(products, []byte(`products:
  - id: secure-message
    name: Secure message
    paths: ["/api/secure.json"]
    methods: [GET]
    quota: {perMinute: 1000000000, perDay: 1000000000}
`), 0o600); err != nil {
		b.Fatal(err)
	}
	with := newStack(b, stackOptions{upstreams: ups, discardAccessLog: true, productsFile: products})
	_, key := with.newApp(b, "secure-message")

	for _, tg := range []struct {
		name   string
		s      *stack
		header http.Header
	}{
		{"user/without-custom", without, http.Header{"Authorization": {"Bearer " + without.token(b)}}},
		{"user/with-custom", with, http.Header{"Authorization": {"Bearer " + with.token(b)}}},
		{"partner/with-custom", with, http.Header{"X-Api-Key": {key}}},
	} {
		b.Run(tg.name, func(b *testing.B) {
			c := tg.s.clientWith(b, tg.s.pki.frontend)
			tr := c.Transport.(*http.Transport)
			tr.ForceAttemptHTTP2 = false
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			defer c.CloseIdleConnections()
			var lat []time.Duration
			for b.Loop() {
				req, _ := http.NewRequest("GET", "https://"+gatewayHost+"/api/secure.json", nil)
				req.Header = tg.header.Clone()
				start := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(start))
				if resp.StatusCode != 200 {
					b.Fatalf("status %d, want 200", resp.StatusCode)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds()), "p90-µs")
		})
	}
}

// istioWithoutAPIKeys copies istio/ without its API-key policies: the
// gateway as it was before them.
func istioWithoutAPIKeys(t testing.TB) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(istioDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(istioDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "kustomization.yaml" {
			k := strings.Replace(string(b), "  - authorizationpolicy-apikeys.yaml\n", "", 1)
			if k == string(b) {
				t.Fatal("istio/kustomization.yaml no longer lists authorizationpolicy-apikeys.yaml: update this benchmark")
			}
			b = []byte(k)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
