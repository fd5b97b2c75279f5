package frontend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// devCA is the dev PKI's CA, to issue certificates of a test's choosing.
func devCA(t *testing.T, b *pki.Bundle) *certgen.Pair {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(b.CADir, certgen.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(b.CADir, certgen.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certgen.ParsePair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// serveTLS answers every request with a secure message, over cfg.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	return startTLSServer(t, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"message":"Hello World"}`))
		}),
		TLSConfig: cfg,
	})
}

// startTLSServer serves srv (its TLSConfig, its log discarded) on a loopback
// port until the test ends, and returns its https:// URL.
func startTLSServer(t testing.TB, srv *http.Server) string {
	t.Helper()
	srv.ErrorLog = discardLogger()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close(); <-done })
	return "https://" + ln.Addr().String()
}

func keyPair(t *testing.T, p *certgen.Pair) *tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &kp
}

// When a handshake with the gateway fails over a certificate, the error the
// frontend logs says which certificate: the gateway's when the frontend
// refused it, its own as presented when the gateway refused the connection.
func TestGatewayClientNamesTheCertificateAtFault(t *testing.T) {
	now := time.Now()
	ours := ensurePKI(t, now)
	ca := devCA(t, ours)
	roots := loadRoots(t, ours.FrontendDir)
	past := certgen.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}
	expiredClient, err := ca.IssueClient("frontend", mustURL(t, pki.DefaultClientURI), past)
	if err != nil {
		t.Fatal(err)
	}
	expiredServer, err := ca.IssueServer([]string{gatewayHost}, past)
	if err != nil {
		t.Fatal(err)
	}
	frontendDir, err := tlsdir.Open(tlsdir.Config{Dir: ours.FrontendDir})
	if err != nil {
		t.Fatal(err)
	}
	gatewayServing := func(maxVersion uint16) *tls.Config {
		d, err := tlsdir.Open(tlsdir.Config{Dir: ours.GatewayDir})
		if err != nil {
			t.Fatal(err)
		}
		cfg := d.ServerConfig(tls.RequireAndVerifyClientCert)
		cfg.MaxVersion = maxVersion
		return cfg
	}
	// A gateway whose own certificate expired with nothing to replace it:
	// tlsdir refuses to serve it.
	lapsedClock := clocktest.New(now)
	lapsed, err := tlsdir.Open(tlsdir.Config{Dir: ours.GatewayDir, Now: lapsedClock.Now})
	if err != nil {
		t.Fatal(err)
	}
	lapsedClock.Advance(pki.DefaultLeafValidity + time.Hour)

	describe := func(c *x509.Certificate) []string {
		return []string{c.Subject.String(), c.SerialNumber.Text(16), c.NotAfter.UTC().Format(time.RFC3339)}
	}
	// The gateway refused the connection, and the error names the expired
	// certificate we presented.
	refusedWithExpiredClient := func(t *testing.T, e *HandshakeError) {
		if !e.Refused || e.ClientCertificate == nil || !e.ClientCertificate.Equal(expiredClient.Cert) {
			t.Errorf("HandshakeError %+v: want Refused with the expired client certificate", e)
		}
	}
	tests := []struct {
		name   string
		server *tls.Config
		// start, when set, runs the server instead; it returns its URL.
		start    func(t *testing.T) string
		creds    ClientTLS
		check    func(t *testing.T, e *HandshakeError)
		wantText []string
	}{
		{
			name:     "the gateway refuses an expired client certificate over TLS 1.3: the error names ours",
			server:   gatewayServing(tls.VersionTLS13),
			creds:    pairTLS{cert: keyPair(t, expiredClient), roots: roots},
			check:    refusedWithExpiredClient,
			wantText: append(describe(expiredClient.Cert), "expired certificate", pki.DefaultClientURI, "our client certificate"),
		},
		{
			name:     "the gateway refuses an expired client certificate over TLS 1.2: the error names ours",
			server:   gatewayServing(tls.VersionTLS12),
			creds:    pairTLS{cert: keyPair(t, expiredClient), roots: roots},
			check:    refusedWithExpiredClient,
			wantText: append(describe(expiredClient.Cert), "expired certificate", pki.DefaultClientURI),
		},
		{
			name: "the frontend refuses the gateway's expired certificate: the error names the gateway's and the server name",
			server: &tls.Config{
				Certificates: []tls.Certificate{*keyPair(t, expiredServer)},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    roots,
			},
			creds: frontendDir,
			check: func(t *testing.T, e *HandshakeError) {
				if e.GatewayCertificate == nil || !e.GatewayCertificate.Equal(expiredServer.Cert) || e.Refused {
					t.Errorf("HandshakeError %+v: want the gateway's expired certificate, refused by us", e)
				}
			},
			wantText: append(describe(expiredServer.Cert), "refused the gateway's", "server name "+gatewayHost, "expired"),
		},
		{
			name:   "a gateway that cannot serve its own expired certificate refuses before asking for ours",
			server: lapsed.ServerConfig(tls.RequireAndVerifyClientCert),
			creds:  frontendDir,
			check: func(t *testing.T, e *HandshakeError) {
				if !e.Refused || e.ClientCertificateAsked {
					t.Errorf("HandshakeError %+v: want Refused, no client certificate asked for", e)
				}
			},
			wantText: []string{"internal error", "before asking for a client certificate"},
		},
		{
			// Under TLS 1.3 a refusal may reach us only as the reset of the
			// connection, its alert lost: the server here completes the
			// handshake and resets the connection without one.
			name: "a new connection reset right after the handshake names our certificate as the likely cause",
			start: func(t *testing.T) string {
				return resetAfterHandshake(t, gatewayServing(tls.VersionTLS13))
			},
			creds: frontendDir,
			check: func(t *testing.T, e *HandshakeError) {
				if !e.ClosedAfterHandshake || e.ClientCertificate == nil || !e.ClientCertificate.Equal(frontendDir.Certificate()) {
					t.Errorf("HandshakeError %+v: want ClosedAfterHandshake with our certificate", e)
				}
			},
			wantText: append(describe(frontendDir.Certificate()), "closed the new connection right after the handshake", "gateway's log"),
		},
		{
			name:   "without a client certificate the error says there was none to present",
			server: gatewayServing(tls.VersionTLS13),
			creds:  pairTLS{roots: roots},
			check: func(t *testing.T, e *HandshakeError) {
				if !e.Refused || !e.ClientCertificateAsked || e.ClientCertificate != nil {
					t.Errorf("HandshakeError %+v: want Refused, asked, none presented", e)
				}
			},
			wantText: []string{"certificate required", "no client certificate to present"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := func(t *testing.T) string { return serveTLS(t, tt.server) }
			if tt.start != nil {
				start = tt.start
			}
			gc, err := NewGatewayClient(start(t), gatewayHost, 5*time.Second, tt.creds)
			if err != nil {
				t.Fatal(err)
			}
			defer gc.Close()
			_, _, err = gc.SecureMessage(context.Background(), "a-token")
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("SecureMessage: %v; want ErrUnavailable", err)
			}
			he, ok := errors.AsType[*HandshakeError](err)
			if !ok {
				t.Fatalf("SecureMessage: %v; want a *HandshakeError in it", err)
			}
			tt.check(t, he)
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q: want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "a-token") || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error %q holds the token or a key", err)
			}
		})
	}
}

// A rotated client certificate is presented from the next request on, not
// only once the kept-alive connection made with the old one happens to
// close, even while that one is busy: the gateway client moves to a new
// transport, and the old connection finishes what it carries.
func TestGatewayClientPresentsARotatedCertificateFromTheNextRequest(t *testing.T) {
	now := time.Now()
	ours := ensurePKI(t, now)
	gw := startMTLSGateway(t, ours)
	clock := clocktest.New(now)
	dir, err := tlsdir.Open(tlsdir.Config{Dir: ours.FrontendDir, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := NewGatewayClient(gw.url, gatewayHost, 5*time.Second, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	get := func(what string) {
		t.Helper()
		if _, _, err := gc.SecureMessage(context.Background(), "t"); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	get("before rotation")
	first, conns := gw.lastSerial(), gw.conns.Load()
	// A request still in flight on the old connection keeps it busy across
	// the rotation: it must finish there, and not take the next ones.
	heldDone := make(chan error, 1)
	go func() {
		resp, err := gc.Get(context.Background(), "/api/secure.json?hold", "t")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		heldDone <- err
	}()
	<-gw.held
	next, err := devCA(t, ours).IssueClient("frontend", mustURL(t, pki.DefaultClientURI), certgen.For(now, 72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := os.ReadFile(filepath.Join(ours.FrontendDir, certgen.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := certgen.WriteDir(ours.FrontendDir, next, trust); err != nil {
		t.Fatal(err)
	}
	clock.Advance(tlsdir.CheckInterval)

	tests := []struct {
		name      string
		wantConns int32 // new connections since before the rotation
	}{
		{"the first request after the rotation comes on a new connection with the new certificate", 1},
		{"the next one reuses that connection", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			get(tt.name)
			if got, want := gw.lastSerial(), next.Cert.SerialNumber.String(); got != want {
				t.Errorf("the gateway saw serial %s, want the new certificate's %s (the old was %s)", got, want, first)
			}
			if n := gw.conns.Load() - conns; n != tt.wantConns {
				t.Errorf("%d new connections since the rotation, want %d", n, tt.wantConns)
			}
		})
	}
	t.Run("the request held on the old connection finishes there with the old certificate", func(t *testing.T) {
		gw.release()
		if err := <-heldDone; err != nil {
			t.Fatalf("the held request: %v; want 200", err)
		}
		if got := gw.lastSerial(); got != first {
			t.Errorf("the gateway saw the held request with serial %s, want the old certificate's %s", got, first)
		}
	})
}

// resetAfterHandshake accepts connections, completes the TLS handshake and
// resets the connection (SO_LINGER 0) without a word.
func resetAfterHandshake(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			conn := tls.Server(raw, cfg)
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			conn.Handshake()
			raw.(*net.TCPConn).SetLinger(0)
			raw.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "https://" + ln.Addr().String()
}
