package frontend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

const gatewayHost = "api.internal.example"

// mtlsGateway is a TLS server that, like the Istio gateway in MUTUAL mode,
// requires a client certificate from the dev CA. It records which client
// certificate each request came with, the protocol, and new connections.
type mtlsGateway struct {
	url   string
	conns atomic.Int32

	mu      sync.Mutex
	serials []string
	protos  []int
	hosts   []string

	// A request with the query "hold" says so on held and waits until
	// release is called, keeping its connection busy.
	held    chan struct{}
	release func()
}

func startMTLSGateway(t *testing.T, bundle *pki.Bundle) *mtlsGateway {
	t.Helper()
	dir, err := tlsdir.Open(tlsdir.Config{Dir: bundle.GatewayDir})
	if err != nil {
		t.Fatalf("tlsdir.Open(gateway): %v", err)
	}
	released := make(chan struct{})
	g := &mtlsGateway{held: make(chan struct{}), release: sync.OnceFunc(func() { close(released) })}
	t.Cleanup(g.release)
	g.url = startTLSServer(t, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.RawQuery == "hold" {
				g.held <- struct{}{}
				<-released
			}
			g.mu.Lock()
			g.serials = append(g.serials, r.TLS.PeerCertificates[0].SerialNumber.String())
			g.protos = append(g.protos, r.ProtoMajor)
			g.hosts = append(g.hosts, r.Host)
			g.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"message":"Hello World","uid":"u1","email":"ada@example.com"}`)
		}),
		TLSConfig: dir.ServerConfig(tls.RequireAndVerifyClientCert),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				g.conns.Add(1)
			}
		},
	})
	return g
}

func (g *mtlsGateway) lastSerial() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.serials) == 0 {
		return ""
	}
	return g.serials[len(g.serials)-1]
}

// pairTLS presents a given certificate (or none) and trusts given roots:
// the wrong credentials a misconfigured frontend might have.
type pairTLS struct {
	cert  *tls.Certificate
	roots *x509.CertPool
}

func (p pairTLS) ClientConfig(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, RootCAs: p.roots, MinVersion: tls.VersionTLS12}
	if p.cert != nil {
		cfg.Certificates = []tls.Certificate{*p.cert}
	}
	return cfg, nil
}

func loadPair(t *testing.T, dir string) *tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, certgen.CertFile), filepath.Join(dir, certgen.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func loadRoots(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, certgen.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificates in %s", dir)
	}
	return pool
}

func ensurePKI(t *testing.T, now time.Time) *pki.Bundle {
	t.Helper()
	b, err := pki.Ensure(pki.Config{Dir: t.TempDir(), GatewayHosts: []string{gatewayHost}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("pki.Ensure: %v", err)
	}
	return b
}

func TestGatewayClientSpeaksMutualTLS(t *testing.T) {
	now := time.Now()
	ours := ensurePKI(t, now)
	foreign := ensurePKI(t, now)
	// Certificates issued 10 days ago for 72 hours have expired.
	expired := ensurePKI(t, now.Add(-10*24*time.Hour))
	gw := startMTLSGateway(t, ours)

	frontendDir, err := tlsdir.Open(tlsdir.Config{Dir: ours.FrontendDir})
	if err != nil {
		t.Fatalf("tlsdir.Open(frontend): %v", err)
	}
	ourRoots := loadRoots(t, ours.FrontendDir)
	tests := []struct {
		name    string
		creds   ClientTLS
		wantErr error
	}{
		{"the frontend's certificate from the dev CA is accepted", frontendDir, nil},
		{"no client certificate fails the handshake", pairTLS{roots: ourRoots}, ErrUnavailable},
		{"a client certificate from a foreign CA is refused", pairTLS{cert: loadPair(t, foreign.FrontendDir), roots: ourRoots}, ErrUnavailable},
		{"an expired client certificate is refused", pairTLS{cert: loadPair(t, expired.FrontendDir), roots: ourRoots}, ErrUnavailable},
		{"a gateway the CA did not certify is not trusted", pairTLS{cert: loadPair(t, ours.FrontendDir), roots: loadRoots(t, foreign.FrontendDir)}, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gc, err := NewGatewayClient(gw.url, gatewayHost, 5*time.Second, tt.creds)
			if err != nil {
				t.Fatal(err)
			}
			defer gc.Close()
			m, _, err := gc.SecureMessage(context.Background(), "a-token")
			if tt.wantErr == nil {
				if err != nil || m.Message != "Hello World" {
					t.Fatalf("SecureMessage: got %+v, %v; want Hello World", m, err)
				}
				gw.mu.Lock()
				host := gw.hosts[len(gw.hosts)-1]
				gw.mu.Unlock()
				if host != gatewayHost {
					t.Errorf("Host: got %q, want %q (the gateway routes by it; the URL holds an IP)", host, gatewayHost)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SecureMessage: got %v, want an error wrapping %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "tls") {
				t.Errorf("error %q: want the TLS failure named", err)
			}
		})
	}

	t.Run("requests reuse one HTTP/2 connection until Close ends it", func(t *testing.T) {
		gc, err := NewGatewayClient(gw.url, gatewayHost, 5*time.Second, frontendDir)
		if err != nil {
			t.Fatal(err)
		}
		defer gc.Close()
		before := gw.conns.Load()
		for range 5 {
			if _, _, err := gc.SecureMessage(context.Background(), "a-token"); err != nil {
				t.Fatal(err)
			}
		}
		if n := gw.conns.Load() - before; n != 1 {
			t.Errorf("5 requests opened %d connections, want 1", n)
		}
		gw.mu.Lock()
		last := gw.protos[len(gw.protos)-1]
		gw.mu.Unlock()
		if last != 2 {
			t.Errorf("protocol: got HTTP/%d, want HTTP/2 (ALPN h2 through the custom dialer)", last)
		}

		before = gw.conns.Load()
		gc.Close()
		if _, _, err := gc.SecureMessage(context.Background(), "a-token"); err != nil {
			t.Fatal(err)
		}
		if n := gw.conns.Load() - before; n != 1 {
			t.Errorf("a request after Close opened %d connections, want 1 (Close ends the idle one)", n)
		}
	})
}

func TestGatewayClientPicksUpARotatedCertificate(t *testing.T) {
	now := time.Now()
	ours := ensurePKI(t, now)
	gw := startMTLSGateway(t, ours)

	// tlsdir looks at the files at most once per CheckInterval; its clock
	// is moved past that instead of sleeping.
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	dir, err := tlsdir.Open(tlsdir.Config{Dir: ours.FrontendDir, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := NewGatewayClient(gw.url, gatewayHost, 5*time.Second, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if _, _, err := gc.SecureMessage(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	first := gw.lastSerial()

	// Rotate: a new client certificate from the same CA, written in place
	// as a Secret Manager or Kubernetes secret update would.
	caDir := ours.CADir
	certPEM, _ := os.ReadFile(filepath.Join(caDir, certgen.CertFile))
	keyPEM, _ := os.ReadFile(filepath.Join(caDir, certgen.KeyFile))
	ca, err := certgen.ParsePair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueClient("frontend", mustURL(t, pki.DefaultClientURI), certgen.For(now, 72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	trust, _ := os.ReadFile(filepath.Join(ours.FrontendDir, certgen.CAFile))
	if err := certgen.WriteDir(ours.FrontendDir, leaf, trust); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(2 * tlsdir.CheckInterval))

	// Established connections keep their certificate; new ones use the new.
	gc.Close()
	if _, _, err := gc.SecureMessage(context.Background(), "t"); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if got, want := gw.lastSerial(), leaf.Cert.SerialNumber.String(); got != want || got == first {
		t.Errorf("after rotation the gateway saw serial %s, want the new certificate's %s (the old was %s)", got, want, first)
	}
}

func TestGatewayClientErrorsFollowTheGatewayStatus(t *testing.T) {
	tests := []struct {
		status int
		want   error
	}{
		{401, ErrUnauthorized}, {403, ErrForbidden}, {503, ErrUnavailable}, {504, ErrUnavailable}, {500, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("a %d becomes %q", tt.status, tt.want), func(t *testing.T) {
			if got := statusError(tt.status); !errors.Is(got, tt.want) {
				t.Errorf("statusError(%d) = %v, want %v", tt.status, got, tt.want)
			}
		})
	}
}

// discardLogger keeps the expected handshake failures out of test output.
func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func TestGatewayClientCallsAreBoundedByTheTimeout(t *testing.T) {
	ours := ensurePKI(t, time.Now())
	dir, err := tlsdir.Open(tlsdir.Config{Dir: ours.GatewayDir})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }),
		TLSConfig: dir.ServerConfig(tls.RequireAndVerifyClientCert),
		ErrorLog:  discardLogger(),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { close(release); srv.Close() })

	front, err := tlsdir.Open(tlsdir.Config{Dir: ours.FrontendDir})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := NewGatewayClient("https://"+ln.Addr().String(), gatewayHost, 200*time.Millisecond, front)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	_, _, err = gc.SecureMessage(context.Background(), "t")
	var ne net.Error
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("a gateway that never answers: got %v, want ErrUnavailable from a timeout", err)
	}
}
