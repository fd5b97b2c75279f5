package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRequestPath measures one GET /api/secure.json with a valid token
// over a kept-alive connection, straight to the upstream and through the
// gateway (mTLS, JWT verification from the token cache, authorization,
// routing and proxying), side by side in one run. The difference is what the
// gateway adds. Run:
//
//	go test ./local/gateway -run '^$' -bench RequestPath -benchtime 2s -cpu 1,2
func BenchmarkRequestPath(b *testing.B) {
	direct := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"Hello World","uid":"u","email":"ada@example.com"}`)
	}))
	defer direct.Close()
	s := newStack(b, stackOptions{upstreams: map[string]string{backendDst: direct.Listener.Addr().String()}})
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
	b.Run("direct", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		defer c.CloseIdleConnections()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				get(b, c, direct.URL+"/api/secure.json", "")
			}
		})
	})
	b.Run("gateway", func(b *testing.B) {
		c := s.clientWith(b, s.pki.frontend)
		c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
		c.Transport.(*http.Transport).ForceAttemptHTTP2 = false // HTTP/1.1 keep-alive, like direct
		c.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
		defer c.CloseIdleConnections()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				get(b, c, "https://"+gatewayHost+"/api/secure.json", "")
			}
		})
	})
}
