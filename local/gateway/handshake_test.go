package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// certGateway is the gateway served by Run, with credentials of the test's
// own issuing and a clock of its own, in front of an upstream that answers
// 200 to everything.
type certGateway struct {
	addr   string
	ca     *certgen.Pair
	server *certgen.Pair // the gateway's certificate
	clock  *clocktest.Clock
	logs   *logtest.Buffer // Logger and AccessLog
	dir    string
}

func startCertGateway(t *testing.T, serverValidity func(now time.Time) certgen.Validity) *certGateway {
	t.Helper()
	g := &certGateway{clock: clocktest.New(time.Now()), logs: &logtest.Buffer{}, dir: t.TempDir()}
	now := g.clock.Now()
	var err error
	if g.ca, err = certgen.NewCA("handshake test CA", certgen.For(now, 30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if g.server, err = g.ca.IssueServer([]string{gatewayHost, "127.0.0.1"}, serverValidity(now)); err != nil {
		t.Fatal(err)
	}
	if err := certgen.WriteDir(g.dir, g.server, certgen.Bundle(g.ca.Cert)); err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	rs, err := Load(istioDir, projectID)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	log := logging.New(g.logs, slog.LevelDebug, projectID)
	gw, err := New(Config{
		Resources:   rs,
		Credentials: map[string]string{"api-gateway-mtls": g.dir},
		Upstreams:   everyDestination(up.Listener.Addr().String()),
		// No request here carries a token: the keys are never fetched.
		JWKSOverride: map[string]string{googleJWKS: "http://127.0.0.1:1/jwks"},
		HTTPClient:   &http.Client{Timeout: time.Second},
		Logger:       log,
		Now:          g.clock.Now,
		// Only /api/healthz is asked for, which the CUSTOM policy skips:
		// the provider is never called.
		MeshConfig: meshConfig(t),
		ExtAuthz:   map[string]string{apikeysService: "127.0.0.1:1"},
	})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveGateway(ctx, gw, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
	return g
}

func (g *certGateway) client(t *testing.T, v certgen.Validity) *certgen.Pair {
	t.Helper()
	p, err := g.ca.IssueClient("frontend", mustParseURL(t, pki.DefaultClientURI), v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// dial handshakes with the gateway presenting p (none if nil) and trusting
// roots, then waits for the gateway's first word: under TLS 1.3 a refused
// client certificate arrives as an alert in place of it. It returns the
// local address (the gateway's "remote") and the refusal, nil if the
// gateway accepted the connection (and so sent nothing in 2 s).
func dial(t *testing.T, addr string, p *certgen.Pair, roots *x509.CertPool) (string, error) {
	t.Helper()
	cfg := &tls.Config{ServerName: gatewayHost, RootCAs: roots, MinVersion: tls.VersionTLS12}
	if p != nil {
		kp, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Present it whatever CAs the gateway names, as tlsdir does.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	local := raw.LocalAddr().String()
	conn := tls.Client(raw, cfg)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := conn.Handshake(); err != nil {
		return local, err
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return local, nil
	}
	if err == nil {
		return local, errors.New("the gateway sent data before any request")
	}
	return local, err
}

func TestRefusedHandshakesAreLoggedNamingTheClientCertificate(t *testing.T) {
	g := startCertGateway(t, func(now time.Time) certgen.Validity { return certgen.For(now, time.Hour) })
	now := g.clock.Now()
	roots := x509.NewCertPool()
	roots.AddCert(g.ca.Cert)
	foreignCA, err := certgen.NewCA("foreign CA", certgen.For(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := foreignCA.IssueClient("frontend", mustParseURL(t, pki.DefaultClientURI), certgen.For(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		cert       *certgen.Pair // nil: none
		wantAlert  string        // what the client is told
		wantReason string
		wantError  string
	}{
		{
			name:       "an expired client certificate",
			cert:       g.client(t, certgen.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}),
			wantAlert:  "expired certificate",
			wantReason: "client_certificate_expired",
			wantError:  "certificate has expired or is not yet valid",
		},
		{
			name:       "a client certificate not valid yet",
			cert:       g.client(t, certgen.Validity{NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)}),
			wantAlert:  "expired certificate", // crypto/tls sends this alert for both
			wantReason: "client_certificate_not_yet_valid",
			wantError:  "certificate has expired or is not yet valid",
		},
		{
			name:       "a client certificate from a foreign CA",
			cert:       foreign,
			wantAlert:  "unknown certificate authority",
			wantReason: "client_certificate_untrusted_ca",
			wantError:  "certificate signed by unknown authority",
		},
		{
			name:       "no client certificate",
			wantAlert:  "certificate required",
			wantReason: "tls_handshake_failed",
			wantError:  "didn't provide a certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused, and the log line names it and says why", func(t *testing.T) {
			local, err := dial(t, g.addr, tt.cert, roots)
			if err == nil || !strings.Contains(err.Error(), tt.wantAlert) {
				t.Fatalf("handshake: %v; want the gateway's %q alert", err, tt.wantAlert)
			}
			line := g.logs.WaitForJSON(t, "for the refused connection from "+local, func(m map[string]any) bool {
				return m["message"] == "tls handshake failed" && m["remote"] == local
			})
			if line["severity"] != "WARNING" || line["component"] != "gateway" || line["reason"] != tt.wantReason || line["sni"] != gatewayHost ||
				!strings.Contains(fmt.Sprint(line["error"]), tt.wantError) {
				t.Errorf("log line %v: want severity WARNING, component gateway, reason %q, sni %q and an error containing %q", line, tt.wantReason, gatewayHost, tt.wantError)
			}
			peer, _ := line["peerCertificate"].(map[string]any)
			if tt.cert == nil {
				if peer != nil {
					t.Errorf("log line names a peer certificate %v; none was presented", peer)
				}
				return
			}
			c := tt.cert.Cert
			want := map[string]string{
				"subject":   c.Subject.String(),
				"sans":      pki.DefaultClientURI,
				"serial":    c.SerialNumber.Text(16),
				"issuer":    c.Issuer.String(),
				"notBefore": c.NotBefore.UTC().Format(time.RFC3339),
				"notAfter":  c.NotAfter.UTC().Format(time.RFC3339),
			}
			for k, v := range want {
				if peer[k] != v {
					t.Errorf("peerCertificate.%s = %v, want %q (line %v)", k, peer[k], v, line)
				}
			}
			if line["principal"] != strings.TrimPrefix(pki.DefaultClientURI, "spiffe://") {
				t.Errorf("log line %v: want principal %s, what the refused certificate names", line, pki.DefaultClientURI)
			}
		})
	}

	t.Run("a valid client certificate is served over HTTP/2, its serial and NotAfter in the request's access log line", func(t *testing.T) {
		p := g.client(t, certgen.For(now, time.Hour))
		kp, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{ServerName: gatewayHost, RootCAs: roots, Certificates: []tls.Certificate{kp}},
			ForceAttemptHTTP2: true,
		}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequest(http.MethodGet, "https://"+g.addr+"/api/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = gatewayHost // the VirtualService's host
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET /api/healthz: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Errorf("GET /api/healthz: %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
		}
		line := g.logs.WaitForJSON(t, "for the request", func(m map[string]any) bool { return m["message"] == "request" })
		if line["peerSerial"] != p.Cert.SerialNumber.Text(16) || line["peerNotAfter"] != p.Cert.NotAfter.UTC().Format(time.RFC3339) {
			t.Errorf("access log line %v: want peerSerial %s and peerNotAfter %s", line,
				p.Cert.SerialNumber.Text(16), p.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
	})

	if logs := g.logs.String(); strings.Contains(logs, "PRIVATE KEY") {
		t.Errorf("the gateway's logs hold a private key:\n%s", logs)
	}
}

// A gateway whose own certificate has expired, with nothing to replace it,
// does not serve it: the handshake fails with an internal-error alert, and
// the log says which file and certificate, once as an error and in the
// failed handshake's line.
func TestAGatewayWithAnExpiredCertificateSaysWhichOne(t *testing.T) {
	g := startCertGateway(t, func(now time.Time) certgen.Validity { return certgen.For(now, time.Hour) })
	roots := x509.NewCertPool()
	roots.AddCert(g.ca.Cert)
	client := g.client(t, certgen.For(g.clock.Now(), 3*time.Hour))
	g.clock.Advance(time.Hour + time.Minute)

	file := filepath.Join(g.dir, "tls.crt")
	serial := g.server.Cert.SerialNumber.Text(16)
	notAfter := g.server.Cert.NotAfter.UTC().Format(time.RFC3339)
	for i := range 2 {
		local, err := dial(t, g.addr, client, roots)
		if err == nil || !strings.Contains(err.Error(), "internal error") {
			t.Fatalf("handshake %d: %v; want the gateway's internal error alert", i, err)
		}
		line := g.logs.WaitForJSON(t, "for the failed handshake from "+local, func(m map[string]any) bool {
			return m["message"] == "tls handshake failed" && m["remote"] == local
		})
		for _, w := range []string{file, serial, notAfter, "has expired"} {
			if !strings.Contains(fmt.Sprint(line["error"]), w) {
				t.Errorf("handshake %d: log line %v: want its error to contain %q", i, line, w)
			}
		}
	}
	n := 0
	for l := range strings.Lines(g.logs.String()) {
		if strings.Contains(l, "has expired and nothing has replaced it") {
			n++
			for _, w := range []string{`"severity":"ERROR"`, file, serial, notAfter} {
				if !strings.Contains(l, w) {
					t.Errorf("expiry line %s: want it to contain %s", l, w)
				}
			}
		}
	}
	if n != 1 {
		t.Errorf("%d expiry errors logged, want 1:\n%s", n, g.logs)
	}
}

// bubbleServerCertificate is a server certificate for gatewayHost and the
// pool that trusts it, issued inside a synctest bubble, whose clock starts
// in 2000.
func bubbleServerCertificate(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	now := time.Now()
	ca, err := certgen.NewCA("CA", certgen.For(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer([]string{gatewayHost}, certgen.For(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.X509KeyPair(srv.CertPEM, srv.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return kp, roots
}

// pipeListener hands out the server ends of in-memory connections.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// The handshaking listener owns a goroutine per connection: a completed
// handshake reaches Accept, a failed one the callback, and Close leaves none
// running, even for a client that never finishes its handshake. synctest
// fails the test if any goroutine of the bubble outlives it.
func TestHandshakingListenerHandsOverHandshakenConnectionsAndLeavesNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kp, roots := bubbleServerCertificate(t)
		pl := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
		failures := make(chan error, 4)
		l := newHandshakingListener(pl, &tls.Config{Certificates: []tls.Certificate{kp}},
			func(_ *tls.Conn, err error) { failures <- err })
		connect := func() net.Conn {
			client, server := net.Pipe()
			pl.conns <- server
			return client
		}

		good := tls.Client(connect(), &tls.Config{ServerName: gatewayHost, RootCAs: roots})
		go good.Handshake()
		accepted, err := l.Accept()
		if err != nil {
			t.Fatalf("Accept: %v; want the handshaken connection", err)
		}
		if tc, ok := accepted.(*tls.Conn); !ok || !tc.ConnectionState().HandshakeComplete {
			t.Errorf("Accept returned %T, want a *tls.Conn past its handshake (net/http serves HTTP/2 only on one)", accepted)
		}

		bad := connect()
		go func() { bad.Write([]byte("GET / HTTP/1.1\r\n\r\n")); bad.Close() }()
		if err := <-failures; err == nil {
			t.Error("a client speaking plain HTTP did not fail its handshake")
		}

		silent := connect() // never says a word
		synctest.Wait()
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
		select {
		case err := <-failures:
			t.Errorf("a handshake cut short by Close was reported as a failure: %v", err)
		default:
		}
		accepted.Close()
		good.Close()
		silent.Close()
	})
}

// heldWrites is a client's end of a connection whose writes after the
// first wait for release: a TLS client stopped mid-handshake.
type heldWrites struct {
	net.Conn
	writes  int
	release chan struct{}
}

func (c *heldWrites) Write(p []byte) (int, error) {
	if c.writes++; c.writes > 1 {
		<-c.release
	}
	return c.Conn.Write(p)
}

// A client that connected just before Close (a SIGTERM), its handshake
// under way, is handed over to be served rather than cut off: Close
// refuses only new connections, as net/http's own shutdown does.
func TestHandshakingListenerHandsOverAHandshakeUnderWayAtClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kp, roots := bubbleServerCertificate(t)
		pl := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
		l := newHandshakingListener(pl, &tls.Config{Certificates: []tls.Certificate{kp}},
			func(_ *tls.Conn, err error) { t.Errorf("handshake failed: %v", err) })
		client, server := net.Pipe()
		pl.conns <- server
		held := &heldWrites{Conn: client, release: make(chan struct{})}
		tc := tls.Client(held, &tls.Config{ServerName: gatewayHost, RootCAs: roots})
		handshaken := make(chan error, 1)
		go func() { handshaken <- tc.Handshake() }()
		synctest.Wait() // the ClientHello is out, the client's Finished held back

		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		close(held.release)
		accepted, err := l.Accept()
		if err != nil {
			t.Fatalf("Accept after Close, with a handshake under way at Close: %v; want that connection", err)
		}
		if err := <-handshaken; err != nil {
			t.Errorf("the client's handshake: %v", err)
		}
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept once it was handed over: %v, want net.ErrClosed", err)
		}
		accepted.Close()
		tc.Close()
	})
}
