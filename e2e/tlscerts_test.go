package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/frontend"
	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// Certificate lifecycle on loopback, with the real frontend, gateway and
// backend: rotations are picked up without a restart, and an expired
// certificate on either side is refused with log lines that say which one.
// Each test issues its own CA and certificates and runs a gateway and a
// frontend of its own on them, each with a clock of its own, so expiry is
// crossed by moving a clock or by issuing a certificate with a past NotAfter,
// never by waiting.

// field reads a dotted path ("peerCertificate.serial") of a JSON line.
func field(t *testing.T, line, path string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		t.Fatalf("log line is not JSON: %q: %v", line, err)
	}
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// swapStyle is how new TLS material lands in a directory.
type swapStyle struct {
	name    string
	publish func(t *testing.T, dir string, p *certgen.Pair, caPEM []byte)
}

var (
	// renameEachFile is certgen.WriteDir's way (and Secret Manager
	// mounts'): each file replaced by an atomic rename, the key first.
	renameEachFile = swapStyle{"each file renamed into place", func(t *testing.T, dir string, p *certgen.Pair, caPEM []byte) {
		t.Helper()
		if err := certgen.WriteDir(dir, p, caPEM); err != nil {
			t.Fatal(err)
		}
	}}
	// kubeletSwap is a Kubernetes Secret volume's: the files are symlinks
	// into ..data, itself a symlink to a timestamped directory, and an
	// update renames a new ..data over the old one, all files at once.
	kubeletSwap = swapStyle{"the kubelet's ..data symlink swapped", func(t *testing.T, dir string, p *certgen.Pair, caPEM []byte) {
		t.Helper()
		version := "..2026_11_23_09_00_00." + randomString(6)
		if err := certgen.WriteDir(filepath.Join(dir, version), p, caPEM); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(version, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{certgen.CertFile, certgen.KeyFile, certgen.CAFile} {
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				continue
			}
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}}
)

// certSetup says how a certEnv starts: each side's clock as an offset from
// now, and each certificate's validity.
type certSetup struct {
	gatewayClock, frontendClock time.Duration
	gatewayCert, clientCert     func(now time.Time) certgen.Validity
	style                       swapStyle // default renameEachFile
}

func validFor(d time.Duration) func(time.Time) certgen.Validity {
	return func(now time.Time) certgen.Validity { return certgen.For(now, d) }
}

// certEnv is a gateway and a frontend of the test's own, in front of the
// shared stack's backend and emulator.
type certEnv struct {
	now                   time.Time
	ca                    *certgen.Pair
	caPEM                 []byte
	gatewayDir, clientDir string
	server, client        *certgen.Pair // as first issued
	gatewayClock, feClock *clocktest.Clock
	gateway               ownGateway
	gatewayLog, frontLog  *logtest.Buffer
	front                 *frontend.Frontend
	frontURL              string
	frontCerts            *tlsdir.Dir
	style                 swapStyle
	token                 string
}

func startCertEnv(t *testing.T, s certSetup) *certEnv {
	t.Helper()
	st := requireLocal(t, "a gateway and a frontend of their own, on certificates of their own")
	if s.style.publish == nil {
		s.style = renameEachFile
	}
	now := time.Now()
	e := &certEnv{
		now:          now,
		gatewayDir:   t.TempDir(),
		clientDir:    t.TempDir(),
		gatewayClock: clocktest.New(now.Add(s.gatewayClock)),
		feClock:      clocktest.New(now.Add(s.frontendClock)),
		gatewayLog:   &logtest.Buffer{},
		frontLog:     &logtest.Buffer{},
		style:        s.style,
		token:        userTokens(t).valid,
	}
	var err error
	if e.ca, err = certgen.NewCA("certs test CA", certgen.Validity{NotBefore: now.Add(-4 * time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e.caPEM = certgen.Bundle(e.ca.Cert)
	e.server = e.issueServer(t, s.gatewayCert(now))
	e.client = e.issueClient(t, s.clientCert(now))
	e.style.publish(t, e.gatewayDir, e.server, e.caPEM)
	e.style.publish(t, e.clientDir, e.client, e.caPEM)

	e.gateway = startOwnGateway(t, ownGatewayOptions{
		upstream:      hostPort(t, st.BackendURL),
		credentialDir: e.gatewayDir,
		now:           e.gatewayClock.Now,
		logs:          e.gatewayLog,
	})

	host := hostPort(t, st.IdentityURL)
	verifier := verifierFor(t, st.ProjectID, host)
	log := logging.New(e.frontLog, slog.LevelInfo, st.ProjectID)
	// Only the frontend's certificates run on its clock: sessions are
	// checked against the emulator's tokens in real time.
	if e.frontCerts, err = tlsdir.Open(tlsdir.Config{Dir: e.clientDir, Logger: log, Now: e.feClock.Now}); err != nil {
		t.Fatalf("tlsdir.Open(%s): %v", e.clientDir, err)
	}
	e.front, err = frontend.New(frontend.Config{
		Addr:               "127.0.0.1:0",
		ProjectID:          st.ProjectID,
		FirebaseAPIKey:     "emulator-api-key",
		FirebaseAuthDomain: st.ProjectID + ".firebaseapp.com",
		AuthEmulatorHost:   host,
		GatewayURL:         e.gateway.url,
		GatewayServerName:  env.gatewayServerName,
		ClientTLSDir:       e.clientDir,
		BackendTimeout:     5 * time.Second,
	}, frontend.Deps{Verifier: verifier, Revoker: adminFor(t, st.ProjectID, host), GatewayTLS: e.frontCerts, Logger: log})
	if err != nil {
		t.Fatalf("frontend.New: %v", err)
	}
	srv := httptest.NewServer(e.front.Handler())
	t.Cleanup(func() {
		srv.Close()
		e.front.Close()
		for who, l := range map[string]*logtest.Buffer{"gateway": e.gatewayLog, "frontend": e.frontLog} {
			if strings.Contains(l.String(), e.token) || strings.Contains(l.String(), "PRIVATE KEY") {
				t.Errorf("the %s's log holds the user's token or a private key", who)
			}
		}
	})
	e.frontURL = srv.URL
	return e
}

func (e *certEnv) issueServer(t *testing.T, v certgen.Validity) *certgen.Pair {
	t.Helper()
	p, err := e.ca.IssueServer([]string{env.gatewayServerName, "127.0.0.1"}, v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *certEnv) issueClient(t *testing.T, v certgen.Validity) *certgen.Pair {
	t.Helper()
	u, err := url.Parse(pki.DefaultClientURI)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.ca.IssueClient("frontend", u, v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// page is the frontend's home page for the signed-in user.
type page struct {
	id   string // X-Request-Id, which the frontend also sends the gateway
	body string
}

func (p page) showsSecret() bool {
	return strings.Contains(p.body, `<strong id="secret-message">Hello World</strong>`)
}

func (p page) showsUnavailable() bool {
	return strings.Contains(p.body, "The backend is unavailable right now.") &&
		strings.Contains(p.body, "Request id: <code>"+p.id+"</code>")
}

func (e *certEnv) home(t *testing.T) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.frontURL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(boundSession(t, e.frontURL, e.token))
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET /: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := page{id: resp.Header.Get("X-Request-Id"), body: string(body)}
	if resp.StatusCode != http.StatusOK || p.id == "" {
		t.Fatalf("GET /: %d with request id %q; want 200 and an id", resp.StatusCode, p.id)
	}
	return p
}

// servedSerial is the serial of the certificate the gateway serves to a new
// handshake, made with the frontend's own TLS material.
func (e *certEnv) servedSerial(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := e.frontCerts.DialTLSContext(env.gatewayServerName)(ctx, "tcp", e.gateway.addr)
	if err != nil {
		t.Fatalf("handshake with the gateway: %v", err)
	}
	defer conn.Close()
	return tlsdir.Serial(conn.(*tls.Conn).ConnectionState().PeerCertificates[0])
}

// requestLine is the gateway's access log line for the frontend's request
// with this id: the frontend passes its request id on, and the gateway keeps
// it from an internal address.
func (e *certEnv) requestLine(t *testing.T, id string) string {
	t.Helper()
	return e.gatewayLog.WaitFor(t, "from the gateway", logtest.Containing(`"message":"request"`, `"requestId":"`+id+`"`))
}

func TestCertificateRotationWithoutRestart(t *testing.T) {
	requireLocal(t, "rotations run on a gateway and a frontend of their own")
	tests := []struct {
		name   string
		side   string // "frontend": its client certificate; "gateway": its server certificate
		style  swapStyle
		rotate func(t *testing.T, e *certEnv) *certgen.Pair
	}{
		{name: "the frontend's client certificate", side: "frontend", style: renameEachFile},
		{name: "the frontend's client certificate", side: "frontend", style: kubeletSwap},
		{name: "the gateway's server certificate", side: "gateway", style: renameEachFile},
		{name: "the gateway's server certificate", side: "gateway", style: kubeletSwap},
	}
	for _, tt := range tests {
		t.Run(tt.name+", "+tt.style.name+", is used by the next new connection", func(t *testing.T) {
			e := startCertEnv(t, certSetup{gatewayCert: validFor(72 * time.Hour), clientCert: validFor(72 * time.Hour), style: tt.style})
			before := e.home(t)
			if !before.showsSecret() {
				t.Fatalf("before the rotation the page does not show the secret:\n%s", before.body)
			}
			if got, want := field(t, e.requestLine(t, before.id), "peerSerial"), tlsdir.Serial(e.client.Cert); got != want {
				t.Fatalf("before the rotation the gateway logged peerSerial %s, want the first client certificate's %s", got, want)
			}

			switch tt.side {
			case "frontend":
				next := e.issueClient(t, certgen.For(e.now, 72*time.Hour))
				e.style.publish(t, e.clientDir, next, e.caPEM)
				e.feClock.Advance(tlsdir.CheckInterval)
				after := e.home(t)
				if !after.showsSecret() {
					t.Fatalf("after the rotation the page does not show the secret:\n%s", after.body)
				}
				// The frontend moves to new connections for the new
				// certificate (frontend.GatewayClient); without that, the
				// kept-alive connection would carry the old one until it
				// closed.
				line := e.requestLine(t, after.id)
				if got, want := field(t, line, "peerSerial"), tlsdir.Serial(next.Cert); got != want {
					t.Errorf("after the rotation the gateway logged peerSerial %s, want the new client certificate's %s (the old was %s)",
						got, want, tlsdir.Serial(e.client.Cert))
				}
				if got, want := field(t, line, "peerNotAfter"), next.Cert.NotAfter.UTC().Format(time.RFC3339); got != want {
					t.Errorf("after the rotation the gateway logged peerNotAfter %s, want %s", got, want)
				}
				e.frontLog.WaitFor(t, "from the frontend", logtest.Containing("tls material reloaded", tlsdir.Serial(next.Cert)))

			case "gateway":
				next := e.issueServer(t, certgen.For(e.now, 72*time.Hour))
				e.style.publish(t, e.gatewayDir, next, e.caPEM)
				e.gatewayClock.Advance(tlsdir.CheckInterval)
				if got, want := e.servedSerial(t), tlsdir.Serial(next.Cert); got != want {
					t.Errorf("a new handshake after the rotation got the gateway's serial %s, want the new %s (the old was %s)",
						got, want, tlsdir.Serial(e.server.Cert))
				}
				e.gatewayLog.WaitFor(t, "from the gateway", logtest.Containing("tls material reloaded", tlsdir.Serial(next.Cert)))
				// The frontend's kept-alive connection was authenticated
				// with the old server certificate and carries on; once it
				// closes (the gateway's idle timeout; here, dropped), the
				// new connection verifies the new certificate.
				if p := e.home(t); !p.showsSecret() {
					t.Errorf("on the kept-alive connection after the rotation the page does not show the secret:\n%s", p.body)
				}
				e.front.Close()
				if p := e.home(t); !p.showsSecret() {
					t.Errorf("on a new connection after the rotation the page does not show the secret:\n%s", p.body)
				}
			}
		})
	}
}

func TestExpiredCertificatesAreRefusedAndNamed(t *testing.T) {
	requireLocal(t, "expiry runs on a gateway and a frontend of their own")
	// past is a validity that ended an hour before now.
	past := func(now time.Time) certgen.Validity {
		return certgen.Validity{NotBefore: now.Add(-3 * time.Hour), NotAfter: now.Add(-time.Hour)}
	}
	type check func(t *testing.T, e *certEnv, p page)
	tests := []struct {
		name  string
		setup certSetup
		// then runs before the page is asked for: a clock moved, a
		// certificate swapped in.
		then         func(t *testing.T, e *certEnv)
		wantSecret   bool
		checkFront   check // the frontend's log
		checkGateway check // the gateway's log
	}{
		{
			// The frontend's clock says its certificate is valid; the
			// gateway's, two hours ahead, says it has expired.
			name:  "a client certificate expired by the gateway's clock is refused at the handshake",
			setup: certSetup{gatewayClock: 2 * time.Hour, gatewayCert: validFor(3 * time.Hour), clientCert: validFor(time.Hour)},
			checkFront: func(t *testing.T, e *certEnv, p page) {
				line := e.frontLog.WaitFor(t, "from the frontend", logtest.Containing("fetching the secret message failed", p.id,
					"our client certificate", pki.DefaultClientURI, tlsdir.Serial(e.client.Cert), e.client.Cert.NotAfter.UTC().Format(time.RFC3339)))
				// Under TLS 1.3 the gateway's alert comes after our side of
				// the handshake; if the frontend has already written its
				// request by then, the reset that follows may swallow it.
				if !strings.Contains(line, "remote error: tls: expired certificate") &&
					!strings.Contains(line, "closed the new connection right after the handshake") {
					t.Errorf("frontend log line %s: want the gateway's expired-certificate alert, or the reset that stands for it", line)
				}
			},
			checkGateway: func(t *testing.T, e *certEnv, p page) {
				line := e.gatewayLog.WaitFor(t, "from the gateway", logtest.Containing("tls handshake failed", tlsdir.Serial(e.client.Cert)))
				for path, want := range map[string]string{
					"severity":                  "WARNING",
					"reason":                    "client_certificate_expired",
					"sni":                       env.gatewayServerName,
					"peerCertificate.subject":   "CN=frontend",
					"peerCertificate.sans":      pki.DefaultClientURI,
					"peerCertificate.notAfter":  e.client.Cert.NotAfter.UTC().Format(time.RFC3339),
					"peerCertificate.notBefore": e.client.Cert.NotBefore.UTC().Format(time.RFC3339),
				} {
					if got := field(t, line, path); got != want {
						t.Errorf("gateway log %s = %q, want %q in %s", path, got, want, line)
					}
				}
			},
		},
		{
			name:  "a client certificate expired by the frontend's own clock is not presented at all",
			setup: certSetup{gatewayCert: validFor(3 * time.Hour), clientCert: validFor(time.Hour)},
			then:  func(t *testing.T, e *certEnv) { e.feClock.Advance(time.Hour + time.Minute) },
			checkFront: func(t *testing.T, e *certEnv, p page) {
				file := filepath.Join(e.clientDir, certgen.CertFile)
				e.frontLog.WaitFor(t, "from the frontend", logtest.Containing("fetching the secret message failed", p.id, file, "has expired and no valid replacement",
					tlsdir.Serial(e.client.Cert), e.client.Cert.NotAfter.UTC().Format(time.RFC3339)))
				e.frontLog.WaitFor(t, "from the frontend", logtest.Containing(`"severity":"ERROR"`, "has expired and nothing has replaced it", file, tlsdir.Serial(e.client.Cert)))
			},
			checkGateway: func(t *testing.T, e *certEnv, p page) {
				if log := e.gatewayLog.String(); strings.Contains(log, "tls handshake failed") {
					t.Errorf("the gateway logged a failed handshake, want none (the frontend should not have dialed):\n%s", log)
				}
			},
		},
		{
			// The gateway's own certificate lapses while it runs, with
			// nothing to replace it: it serves none.
			name:  "a gateway whose own certificate has expired refuses every handshake and says which certificate",
			setup: certSetup{gatewayCert: validFor(time.Hour), clientCert: validFor(3 * time.Hour)},
			then:  func(t *testing.T, e *certEnv) { e.gatewayClock.Advance(time.Hour + time.Minute) },
			checkFront: func(t *testing.T, e *certEnv, p page) {
				e.frontLog.WaitFor(t, "from the frontend", logtest.Containing("fetching the secret message failed", p.id, "internal error",
					"server name "+env.gatewayServerName, "before asking for a client certificate"))
			},
			checkGateway: func(t *testing.T, e *certEnv, p page) {
				file := filepath.Join(e.gatewayDir, certgen.CertFile)
				e.gatewayLog.WaitFor(t, "from the gateway", logtest.Containing(`"severity":"ERROR"`, "has expired and nothing has replaced it", file,
					tlsdir.Serial(e.server.Cert), e.server.Cert.NotAfter.UTC().Format(time.RFC3339)))
				e.gatewayLog.WaitFor(t, "from the gateway", logtest.Containing("tls handshake failed", file, "has expired"))
			},
		},
		{
			// Its clock two hours behind, the gateway serves a certificate
			// that expired an hour ago, as Envoy serves whatever it is given.
			name: "a gateway certificate expired by the frontend's clock is refused by the frontend, naming it",
			setup: certSetup{gatewayClock: -2 * time.Hour, gatewayCert: past,
				clientCert: func(now time.Time) certgen.Validity {
					return certgen.Validity{NotBefore: now.Add(-3 * time.Hour), NotAfter: now.Add(time.Hour)}
				}},
			checkFront: func(t *testing.T, e *certEnv, p page) {
				e.frontLog.WaitFor(t, "from the frontend", logtest.Containing("fetching the secret message failed", p.id, "refused the gateway's certificate",
					"server name "+env.gatewayServerName, tlsdir.Serial(e.server.Cert), e.server.Cert.NotAfter.UTC().Format(time.RFC3339),
					"certificate has expired"))
			},
			checkGateway: func(t *testing.T, e *certEnv, p page) {
				e.gatewayLog.WaitFor(t, "from the gateway", logtest.Containing("tls handshake failed", "remote error"))
			},
		},
		{
			name:  "an expired client certificate swapped in is refused by the frontend, which keeps the last good one",
			setup: certSetup{gatewayCert: validFor(3 * time.Hour), clientCert: validFor(3 * time.Hour)},
			then: func(t *testing.T, e *certEnv) {
				stale := e.issueClient(t, past(e.now))
				e.style.publish(t, e.clientDir, stale, e.caPEM)
				e.feClock.Advance(tlsdir.CheckInterval)
				e.home(t) // the first request past the check interval looks at the files
				file := filepath.Join(e.clientDir, certgen.CertFile)
				e.frontLog.WaitFor(t, "from the frontend", logtest.Containing("rotation refused", file, tlsdir.Serial(stale.Cert),
					"not after "+stale.Cert.NotAfter.UTC().Format(time.RFC3339), "has expired"))
			},
			wantSecret: true,
			checkGateway: func(t *testing.T, e *certEnv, p page) {
				if got, want := field(t, e.requestLine(t, p.id), "peerSerial"), tlsdir.Serial(e.client.Cert); got != want {
					t.Errorf("the gateway logged peerSerial %s, want the last good certificate's %s", got, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startCertEnv(t, tt.setup)
			if tt.then != nil {
				tt.then(t, e)
			}
			p := e.home(t)
			switch {
			case tt.wantSecret && !p.showsSecret():
				t.Fatalf("the page does not show the secret:\n%s", p.body)
			case !tt.wantSecret && !p.showsUnavailable():
				t.Fatalf("the page does not say the backend is unavailable with request id %s:\n%s", p.id, p.body)
			}
			if tt.checkFront != nil {
				tt.checkFront(t, e, p)
			}
			if tt.checkGateway != nil {
				tt.checkGateway(t, e, p)
			}
		})
	}
}
