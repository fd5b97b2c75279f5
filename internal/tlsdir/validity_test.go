package tlsdir_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

// A rotation can put on disk a certificate that is outside its validity:
// expired (an old secret version restored) or not valid yet (issued by a
// host whose clock runs ahead). Either is refused with a log line naming the
// file and the dates, and the last good certificate stays in use; an early
// one is taken up once it is due, without the files having to change again.
func TestRotationToACertificateOutsideItsValidity(t *testing.T) {
	tests := []struct {
		name string
		next func(now time.Time) certgen.Validity
		// wantLog are substrings of the refusal, with {file}, {serial},
		// {not_before} and {not_after} of the refused certificate.
		wantLog []string
		// after moving the clock by later, is the new certificate served?
		later       time.Duration
		servedLater bool
	}{
		{
			name: "an expired certificate is refused and never taken up",
			next: func(now time.Time) certgen.Validity {
				return certgen.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}
			},
			wantLog:     []string{"rotation refused", "{file}", "{serial}", "not after {not_after}", "has expired"},
			later:       10 * time.Minute,
			servedLater: false,
		},
		{
			name: "a certificate not valid yet is refused, then taken up once its NotBefore has passed",
			next: func(now time.Time) certgen.Validity {
				return certgen.Validity{NotBefore: now.Add(10 * time.Minute), NotAfter: now.Add(2 * time.Hour)}
			},
			wantLog:     []string{"rotation refused", "{file}", "{serial}", "not valid before {not_before}"},
			later:       10*time.Minute + tlsdir.CheckInterval,
			servedLater: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			ca := newCA(t, "CA", c.Now())
			gwDir, feDir := t.TempDir(), t.TempDir()
			first := serverPair(t, ca, certgen.For(c.Now(), time.Hour))
			writeDir(t, gwDir, first, ca)
			writeDir(t, feDir, clientPair(t, ca, certgen.For(c.Now(), 3*time.Hour)), ca)
			logs := &logtest.Buffer{}
			gw := startGateway(t, open(t, gwDir, c, logs))
			fe := open(t, feDir, c, nil)
			served := func() string {
				t.Helper()
				a, err := get(gw.URL, fe.DialTLSContext("localhost"))
				if err != nil {
					t.Fatalf("GET: %v", err)
				}
				return a.serverSerial
			}

			next := serverPair(t, ca, tt.next(c.Now()))
			writeDir(t, gwDir, next, ca)
			c.Advance(tlsdir.CheckInterval)
			if got, want := served(), first.Cert.SerialNumber.String(); got != want {
				t.Fatalf("right after the rotation the gateway served serial %s, want the last good %s", got, want)
			}
			r := strings.NewReplacer(
				"{file}", filepath.Join(gwDir, "tls.crt"),
				"{serial}", next.Cert.SerialNumber.Text(16),
				"{not_before}", next.Cert.NotBefore.UTC().Format(time.RFC3339),
				"{not_after}", next.Cert.NotAfter.UTC().Format(time.RFC3339))
			for _, w := range tt.wantLog {
				if w = r.Replace(w); !strings.Contains(logs.String(), w) {
					t.Errorf("logs do not contain %q:\n%s", w, logs)
				}
			}
			if n := strings.Count(logs.String(), "rotation refused"); n != 1 {
				t.Errorf("logs hold %d refusals, want 1 (the same files are reported once):\n%s", n, logs)
			}

			c.Advance(tt.later)
			served() // the first handshake past the check interval looks at the files
			c.Advance(tlsdir.CheckInterval)
			want := first.Cert.SerialNumber.String()
			if tt.servedLater {
				want = next.Cert.SerialNumber.String()
			}
			if got := served(); got != want {
				t.Errorf("%v later the gateway served serial %s, want %s (new one taken up: %v)", tt.later, got, want, tt.servedLater)
			}
		})
	}
}

// A certificate that expires with nothing to replace it fails every
// handshake; that is said once per certificate, as an error naming the file,
// serial and NotAfter, rather than only in each failed handshake.
func TestExpiryWithoutReplacementIsLoggedOnceAsAnError(t *testing.T) {
	c := newClock()
	ca := newCA(t, "CA", c.Now())
	gwDir, feDir := t.TempDir(), t.TempDir()
	v := certgen.For(c.Now(), time.Hour)
	gwPair, fePair := serverPair(t, ca, v), clientPair(t, ca, v)
	writeDir(t, gwDir, gwPair, ca)
	writeDir(t, feDir, fePair, ca)
	logs := &logtest.Buffer{}
	gw := startGateway(t, open(t, gwDir, c, logs))
	fe := open(t, feDir, c, logs)

	c.Advance(time.Hour + time.Minute)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	plain := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return (&tls.Dialer{Config: &tls.Config{ServerName: "localhost", RootCAs: roots}}).DialContext(ctx, network, addr)
	}
	for i := range 3 {
		if err := refusal(gw.Listener.Addr().String(), plain); err == nil {
			t.Fatalf("handshake %d succeeded, want the gateway to refuse it", i)
		}
		if _, err := fe.ClientConfig("localhost"); err == nil {
			t.Fatalf("ClientConfig %d succeeded with an expired certificate", i)
		}
		c.Advance(tlsdir.CheckInterval)
	}

	const msg = "tls certificate has expired and nothing has replaced it"
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.Contains(l, msg) {
			continue
		}
		if !strings.Contains(l, "level=ERROR") {
			t.Errorf("expiry line is not an error: %s", l)
		}
	}
	for _, p := range []struct {
		dir  string
		cert *x509.Certificate
	}{{gwDir, gwPair.Cert}, {feDir, fePair.Cert}} {
		file := filepath.Join(p.dir, "tls.crt")
		n := 0
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, msg) && strings.Contains(l, file) {
				n++
				for _, w := range []string{p.cert.SerialNumber.Text(16), p.cert.NotAfter.UTC().Format(time.RFC3339)} {
					if !strings.Contains(l, w) {
						t.Errorf("expiry line for %s lacks %q: %s", file, w, l)
					}
				}
			}
		}
		if n != 1 {
			t.Errorf("logs hold %d expiry errors for %s, want exactly 1:\n%s", n, file, logs)
		}
	}
}

func TestDescribeNamesWhatTellsCertificatesApart(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	ca := newCA(t, "CA", now)
	client := clientPair(t, ca, certgen.For(now, time.Hour))
	server := serverPair(t, ca, certgen.For(now, time.Hour))
	tests := []struct {
		name string
		cert *x509.Certificate
		want []string
	}{
		{
			name: "a client certificate by subject, URI SAN, hex serial and validity",
			cert: client.Cert,
			want: []string{`"CN=frontend"`, "SANs " + clientID, "serial " + client.Cert.SerialNumber.Text(16),
				"not before 2026-11-23T08:55:00Z", "not after 2026-11-23T10:00:00Z"},
		},
		{
			name: "a server certificate by subject and its DNS and IP SANs",
			cert: server.Cert,
			want: []string{`"CN=localhost"`, "SANs localhost 127.0.0.1", "serial " + server.Cert.SerialNumber.Text(16)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tlsdir.Describe(tt.cert)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Describe = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}
