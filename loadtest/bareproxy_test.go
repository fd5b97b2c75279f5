package loadtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/local/pki"
)

func TestBareProxyForwardsOnlyWithTheClientCertificate(t *testing.T) {
	b, err := pki.Ensure(pki.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Host+" "+r.URL.Path)
	}))
	defer backend.Close()

	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ServeBareProxy(ctx, b.GatewayDir, backend.Listener.Addr().String(), pw) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the proxy's address: %v", err)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening "))

	withCert, err := clientTLS(b.FrontendDir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	withoutCert := withCert.Clone()
	withoutCert.Certificates = nil
	for _, tc := range []struct {
		name     string
		tls      *tls.Config
		wantBody string // "" = the request must fail
	}{
		{"with the frontend's certificate the request reaches the backend over HTTP/2, Host kept", withCert, "api.internal.example /api/secure.json"},
		{"without a client certificate nothing is forwarded", withoutCert, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc.tls, ForceAttemptHTTP2: true}}
			defer c.CloseIdleConnections()
			req, _ := http.NewRequestWithContext(t.Context(), "GET", "https://"+addr+"/api/secure.json", nil)
			req.Host = "api.internal.example"
			resp, err := c.Do(req)
			if tc.wantBody == "" {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got %s, want the TLS handshake refused", resp.Status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || string(body) != tc.wantBody {
				t.Errorf("got %s %s %q, want 200 over HTTP/2 with %q", resp.Proto, resp.Status, body, tc.wantBody)
			}
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeBareProxy after its context ended: %v, want nil (a clean shutdown)", err)
	}
}
