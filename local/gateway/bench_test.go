package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/acme/cloudrun-istio-gke/internal/cputime"
)

// BenchmarkRequestPath measures one GET /api/secure.json with a valid token
// over a kept-alive connection, straight to the upstream and through the
// gateway (mTLS, JWT verification from the token cache, authorization,
// routing and proxying), side by side in one run. The difference is what the
// gateway adds. Run:
//
//	go test ./local/gateway -run '^$' -bench RequestPath -benchtime 2s
func BenchmarkRequestPath(b *testing.B) {
	direct := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"Hello World","uid":"u","email":"ada@example.com"}`)
	}))
	defer direct.Close()
	s := newStack(b, stackOptions{upstreams: everyDestination(direct.Listener.Addr().String()), discardAccessLog: true})
	tok := s.token(b)

	get := func(b *testing.B, c *http.Client, url string, host string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if host != "" {
			req.Host = host
		}
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d, want 200", resp.StatusCode)
		}
	}
	targets := []struct {
		name   string
		client func(b *testing.B) *http.Client
		url    string
	}{
		{"direct", func(b *testing.B) *http.Client {
			return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		}, direct.URL + "/api/secure.json"},
		{"gateway", func(b *testing.B) *http.Client {
			c := s.clientWith(b, s.pki.frontend)
			tr := c.Transport.(*http.Transport)
			tr.MaxIdleConnsPerHost = 64
			// HTTP/1.1 keep-alive on both sides, so only the gateway differs.
			tr.ForceAttemptHTTP2 = false
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			return c
		}, "https://" + gatewayHost + "/api/secure.json"},
	}
	for _, tg := range targets {
		// serial: one request at a time, ns/op is the latency.
		b.Run(tg.name+"/serial", func(b *testing.B) {
			c := tg.client(b)
			defer c.CloseIdleConnections()
			cpu := cputime.Used(b)
			for b.Loop() {
				get(b, c, tg.url, "")
			}
			cputime.ReportPerOp(b, cpu)
		})
		// parallel: GOMAXPROCS concurrent clients, ns/op is 1/throughput.
		b.Run(tg.name+"/parallel", func(b *testing.B) {
			c := tg.client(b)
			defer c.CloseIdleConnections()
			b.SetParallelism(4)
			cpu := cputime.Used(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get(b, c, tg.url, "")
				}
			})
			cputime.ReportPerOp(b, cpu)
		})
	}
}
