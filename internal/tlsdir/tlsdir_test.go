package tlsdir_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

const clientID = "spiffe://acme.internal/ns/frontend/sa/frontend"

func newClock() *clocktest.Clock { return clocktest.New(time.Now()) }

func newCA(t *testing.T, name string, now time.Time) *certgen.Pair {
	t.Helper()
	ca, err := certgen.NewCA(name, certgen.For(now, 30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func serverPair(t *testing.T, ca *certgen.Pair, v certgen.Validity) *certgen.Pair {
	t.Helper()
	p, err := ca.IssueServer([]string{"localhost", "127.0.0.1"}, v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func clientPair(t *testing.T, ca *certgen.Pair, v certgen.Validity) *certgen.Pair {
	t.Helper()
	p, err := ca.IssueClient("frontend", mustURL(clientID), v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeDir(t *testing.T, dir string, p *certgen.Pair, ca ...*certgen.Pair) {
	t.Helper()
	var roots []*x509.Certificate
	for _, c := range ca {
		roots = append(roots, c.Cert)
	}
	if err := certgen.WriteDir(dir, p, certgen.Bundle(roots...)); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, dir string, c *clocktest.Clock, logs io.Writer) *tlsdir.Dir {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	d, err := tlsdir.Open(tlsdir.Config{Dir: dir, Now: c.Now, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return d
}

// gateway starts an HTTPS server demanding client certificates from d. Its
// handler answers with the client's URI SAN and serial; hits counts requests
// that got through the handshake.
type gateway struct {
	*httptest.Server
	hits      atomic.Int64
	errorLogs chan string
}

func startGateway(t *testing.T, d *tlsdir.Dir) *gateway {
	t.Helper()
	g := &gateway{errorLogs: make(chan string, 16)}
	g.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.hits.Add(1)
		peer := r.TLS.PeerCertificates[0]
		fmt.Fprintf(w, "%s serial=%s", peer.URIs[0], peer.SerialNumber)
	}))
	g.TLS = d.ServerConfig(tls.RequireAndVerifyClientCert)
	g.Config.ErrorLog = log.New(lineWriter(g.errorLogs), "", 0)
	g.StartTLS()
	t.Cleanup(g.Close)
	return g
}

type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	select {
	case w <- string(p):
	default:
	}
	return len(p), nil
}

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// fixedDial handshakes with cfg, as a client not using tlsdir would.
func fixedDial(cfg *tls.Config) dialFunc {
	return (&tls.Dialer{Config: cfg}).DialContext
}

type answer struct {
	body         string
	proto        string
	serverSerial string
}

// get makes one request on a new connection.
func get(url string, dial dialFunc) (answer, error) {
	tr := &http.Transport{DialTLSContext: dial, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	sc := resp.TLS.PeerCertificates[0]
	return answer{body: string(b), proto: resp.Proto, serverSerial: sc.SerialNumber.String()}, nil
}

// refusal dials the server and waits for its first word without sending
// anything. A refused client certificate then reads as the server's TLS alert
// ("certificate required", ...), which a client that writes first (HTTP) may
// lose to a connection reset under TLS 1.3.
func refusal(addr string, dial dialFunc) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if err == nil {
		return errors.New("the server accepted the connection and sent data")
	}
	return err
}

func TestOpenRefusesBadMaterial(t *testing.T) {
	now := time.Now()
	ca := newCA(t, "test CA", now)
	good := certgen.For(now, time.Hour)
	expired := certgen.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}
	future := certgen.Validity{NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)}
	oldCA, err := certgen.NewCA("old CA", expired)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string // substrings of the error, with "{dir}" for the directory
	}{
		{
			name: "an expired certificate is refused naming the file, subject and NotAfter",
			setup: func(t *testing.T, dir string) {
				p := serverPair(t, ca, expired)
				writeDir(t, dir, p, ca)
			},
			want: []string{"{dir}/tls.crt", "CN=localhost", expired.NotAfter.UTC().Format(time.RFC3339), "expired"},
		},
		{
			name: "a certificate not yet valid is refused",
			setup: func(t *testing.T, dir string) {
				writeDir(t, dir, serverPair(t, ca, future), ca)
			},
			want: []string{"{dir}/tls.crt", "CN=localhost", "not valid before"},
		},
		{
			name: "a key that is not the certificate's is refused naming both files",
			setup: func(t *testing.T, dir string) {
				p := serverPair(t, ca, good)
				other := serverPair(t, ca, good)
				p.KeyPEM = other.KeyPEM
				writeDir(t, dir, p, ca)
			},
			want: []string{"{dir}/tls.key", "{dir}/tls.crt", "CN=localhost", good.NotAfter.UTC().Format(time.RFC3339)},
		},
		{
			name: "a missing ca.crt is refused naming it",
			setup: func(t *testing.T, dir string) {
				writeDir(t, dir, serverPair(t, ca, good), ca)
				os.Remove(filepath.Join(dir, "ca.crt"))
			},
			want: []string{"{dir}/ca.crt", "no such file"},
		},
		{
			name: "a tls.crt without a PEM certificate is refused",
			setup: func(t *testing.T, dir string) {
				writeDir(t, dir, serverPair(t, ca, good), ca)
				os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("not a certificate"), 0o644)
			},
			want: []string{"{dir}/tls.crt", "no PEM certificate"},
		},
		{
			name: "a ca.crt whose every CA has expired is refused",
			setup: func(t *testing.T, dir string) {
				writeDir(t, dir, serverPair(t, ca, good), oldCA)
			},
			want: []string{"{dir}/ca.crt", "CN=old CA", "expired"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			_, err := tlsdir.Open(tlsdir.Config{Dir: dir})
			if err == nil {
				t.Fatal("Open succeeded, want an error")
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "{dir}", dir)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open error = %q, want it to contain %q", err, w)
				}
			}
		})
	}

	t.Run("a config without a directory is refused naming the field", func(t *testing.T) {
		_, err := tlsdir.Open(tlsdir.Config{})
		if err == nil || !strings.Contains(err.Error(), "Config.Dir") {
			t.Errorf("Open(Config{}) error = %v, want one naming Config.Dir", err)
		}
	})
}

func TestMutualTLSHandshakes(t *testing.T) {
	c := newClock()
	now := c.Now()
	ca := newCA(t, "gateway clients CA", now)
	foreign := newCA(t, "foreign CA", now)
	valid := certgen.For(now, time.Hour)

	gwDir, feDir := t.TempDir(), t.TempDir()
	writeDir(t, gwDir, serverPair(t, ca, valid), ca)
	writeDir(t, feDir, clientPair(t, ca, valid), ca)
	gw := startGateway(t, open(t, gwDir, c, nil))
	fe := open(t, feDir, c, nil)

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	foreignRoots := x509.NewCertPool()
	foreignRoots.AddCert(foreign.Cert)
	// present makes a client always send p, as tlsdir's does, instead of
	// only when the server names p's CA as acceptable.
	present := func(p *certgen.Pair) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		kp, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	expired := clientPair(t, ca, certgen.Validity{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})

	tests := []struct {
		name    string
		dial    dialFunc
		wantErr string // empty: the request succeeds
	}{
		{
			name: "the frontend's certificate gets through over HTTP/2",
			dial: fe.DialTLSContext("localhost"),
		},
		{
			name:    "a client without a certificate is refused",
			dial:    fixedDial(&tls.Config{RootCAs: roots, ServerName: "localhost"}),
			wantErr: "certificate required",
		},
		{
			name: "a client certificate from a foreign CA is refused",
			dial: fixedDial(&tls.Config{RootCAs: roots, ServerName: "localhost",
				GetClientCertificate: present(clientPair(t, foreign, valid))}),
			wantErr: "unknown certificate authority",
		},
		{
			name: "an expired client certificate is refused",
			dial: fixedDial(&tls.Config{RootCAs: roots, ServerName: "localhost",
				GetClientCertificate: present(expired)}),
			wantErr: "expired certificate",
		},
		{
			name: "a client that trusts another CA refuses the gateway",
			dial: fixedDial(&tls.Config{RootCAs: foreignRoots, ServerName: "localhost",
				GetClientCertificate: present(clientPair(t, ca, valid))}),
			wantErr: "certificate signed by unknown authority",
		},
		{
			name:    "a client expecting another server name refuses the gateway",
			dial:    fe.DialTLSContext("api.internal.example"),
			wantErr: "not api.internal.example",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := gw.hits.Load()
			if tt.wantErr == "" {
				a, err := get(gw.URL, tt.dial)
				if err != nil {
					t.Fatalf("GET: %v, want success", err)
				}
				if !strings.HasPrefix(a.body, clientID+" ") || a.proto != "HTTP/2.0" {
					t.Errorf("got body %q over %s, want the client ID %s over HTTP/2.0", a.body, a.proto, clientID)
				}
				return
			}
			err := refusal(gw.Listener.Addr().String(), tt.dial)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("handshake error = %v, want one containing %q", err, tt.wantErr)
			}
			if n := gw.hits.Load() - before; n != 0 {
				t.Errorf("handler ran %d times, want 0: the handshake should have failed", n)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	type setup struct {
		c            *clocktest.Clock
		ca           *certgen.Pair
		gwDir, feDir string
		gw           *gateway
		fe           *tlsdir.Dir
		logs         *logtest.Buffer
	}
	start := func(t *testing.T) *setup {
		s := &setup{c: newClock(), gwDir: t.TempDir(), feDir: t.TempDir(), logs: &logtest.Buffer{}}
		s.ca = newCA(t, "CA", s.c.Now())
		v := certgen.For(s.c.Now(), time.Hour)
		writeDir(t, s.gwDir, serverPair(t, s.ca, v), s.ca)
		writeDir(t, s.feDir, clientPair(t, s.ca, v), s.ca)
		s.gw = startGateway(t, open(t, s.gwDir, s.c, s.logs))
		s.fe = open(t, s.feDir, s.c, s.logs)
		return s
	}
	mustGet := func(t *testing.T, s *setup) answer {
		t.Helper()
		a, err := get(s.gw.URL, s.fe.DialTLSContext("localhost"))
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		return a
	}

	t.Run("a new gateway certificate is served once the check interval has passed", func(t *testing.T) {
		s := start(t)
		old := mustGet(t, s).serverSerial
		next := serverPair(t, s.ca, certgen.For(s.c.Now(), time.Hour))
		writeDir(t, s.gwDir, next, s.ca)

		if got := mustGet(t, s).serverSerial; got != old {
			t.Errorf("within the check interval the gateway served serial %s, want the old %s (files are stat'ed at most once per %s)", got, old, tlsdir.CheckInterval)
		}
		s.c.Advance(tlsdir.CheckInterval)
		if got, want := mustGet(t, s).serverSerial, next.Cert.SerialNumber.String(); got != want {
			t.Errorf("after rotation the gateway served serial %s, want the new %s", got, want)
		}
		if !strings.Contains(s.logs.String(), "tls material reloaded") {
			t.Errorf("logs = %q, want a reload line", s.logs)
		}
	})

	t.Run("a new client certificate is presented on the next connection", func(t *testing.T) {
		s := start(t)
		next := clientPair(t, s.ca, certgen.For(s.c.Now(), time.Hour))
		writeDir(t, s.feDir, next, s.ca)
		s.c.Advance(tlsdir.CheckInterval)
		want := "serial=" + next.Cert.SerialNumber.String()
		if got := mustGet(t, s).body; !strings.HasSuffix(got, want) {
			t.Errorf("gateway saw %q, want the rotated client certificate's %s", got, want)
		}
	})

	t.Run("a half-written rotation keeps the last good certificate and logs the file", func(t *testing.T) {
		s := start(t)
		old := mustGet(t, s).serverSerial
		next := serverPair(t, s.ca, certgen.For(s.c.Now(), time.Hour))
		// The new certificate lands before its key.
		if err := certgen.WriteFileAtomic(filepath.Join(s.gwDir, "tls.crt"), next.CertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		s.c.Advance(tlsdir.CheckInterval)
		if got := mustGet(t, s).serverSerial; got != old {
			t.Errorf("with a mismatched key on disk the gateway served serial %s, want the last good %s", got, old)
		}
		if l := s.logs.String(); !strings.Contains(l, "rotation refused") || !strings.Contains(l, filepath.Join(s.gwDir, "tls.key")) {
			t.Errorf("logs = %q, want a refused rotation naming %s", l, filepath.Join(s.gwDir, "tls.key"))
		}
		// Then the key lands.
		if err := certgen.WriteFileAtomic(filepath.Join(s.gwDir, "tls.key"), next.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		s.c.Advance(tlsdir.CheckInterval)
		if got, want := mustGet(t, s).serverSerial, next.Cert.SerialNumber.String(); got != want {
			t.Errorf("after the key landed the gateway served serial %s, want the new %s", got, want)
		}
	})

	t.Run("a new client CA pool applies to the next handshake", func(t *testing.T) {
		s := start(t)
		foreign := newCA(t, "foreign CA", s.c.Now())
		gwPair, err := certgen.ParsePair(mustRead(t, s.gwDir, "tls.crt"), mustRead(t, s.gwDir, "tls.key"))
		if err != nil {
			t.Fatal(err)
		}
		writeDir(t, s.gwDir, gwPair, foreign) // the gateway now trusts only the foreign CA
		s.c.Advance(tlsdir.CheckInterval)
		err = refusal(s.gw.Listener.Addr().String(), s.fe.DialTLSContext("localhost"))
		if err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
			t.Errorf("handshake error = %v, want the gateway to refuse the client's CA", err)
		}
	})

	t.Run("a certificate close to expiry is warned about once", func(t *testing.T) {
		s := start(t)
		s.c.Advance(54 * time.Minute) // of 65: under a tenth of its life left
		mustGet(t, s)
		s.c.Advance(tlsdir.CheckInterval)
		mustGet(t, s)
		want := "expires soon and has not been rotated"
		if n := strings.Count(s.logs.String(), want); n != 2 { // gateway and frontend, once each
			t.Errorf("logs hold %d expiry warnings, want 2 (one per certificate):\n%s", n, s.logs)
		}
		if !strings.Contains(s.logs.String(), filepath.Join(s.gwDir, "tls.crt")) {
			t.Errorf("logs = %q, want the warning to name %s", s.logs, filepath.Join(s.gwDir, "tls.crt"))
		}
	})

	t.Run("a certificate that expires without replacement is refused with a log line naming it", func(t *testing.T) {
		s := start(t)
		s.c.Advance(time.Hour + time.Minute)
		err := refusal(s.gw.Listener.Addr().String(), func(ctx context.Context, network, addr string) (net.Conn, error) {
			// The frontend's certificate has expired too, so dial without
			// tlsdir: the refusal seen is the gateway's own.
			roots := x509.NewCertPool()
			roots.AddCert(s.ca.Cert)
			cfg := &tls.Config{ServerName: "localhost", RootCAs: roots}
			return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
		})
		if err == nil {
			t.Fatal("handshake succeeded, want the gateway to refuse it")
		}
		select {
		case line := <-s.gw.errorLogs:
			want := filepath.Join(s.gwDir, "tls.crt")
			if !strings.Contains(line, want) || !strings.Contains(line, "expired") {
				t.Errorf("gateway error log = %q, want it to name %s as expired", line, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no gateway error log line within 10s")
		}
		if _, err := s.fe.ClientConfig("localhost"); err == nil || !strings.Contains(err.Error(), filepath.Join(s.feDir, "tls.crt")) {
			t.Errorf("ClientConfig with an expired certificate: error = %v, want one naming %s", err, filepath.Join(s.feDir, "tls.crt"))
		}

		// Replacements land on disk: both sides recover without a restart.
		v := certgen.For(s.c.Now(), time.Hour)
		writeDir(t, s.gwDir, serverPair(t, s.ca, v), s.ca)
		writeDir(t, s.feDir, clientPair(t, s.ca, v), s.ca)
		s.c.Advance(tlsdir.CheckInterval)
		mustGet(t, s)
	})
}

func mustRead(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKubernetesSecretVolumeRotation(t *testing.T) {
	// The kubelet writes a Secret volume as files that are symlinks into
	// ..data, itself a symlink to a timestamped directory, and rotates by
	// renaming a new ..data over the old one.
	c := newClock()
	ca := newCA(t, "CA", c.Now())
	vol, feDir := t.TempDir(), t.TempDir()
	writeDir(t, feDir, clientPair(t, ca, certgen.For(c.Now(), time.Hour)), ca)
	publish := func(version string, p *certgen.Pair) {
		writeDir(t, filepath.Join(vol, version), p, ca)
		if err := os.Symlink(version, filepath.Join(vol, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(vol, "..data_tmp"), filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	publish("..2026_11_23_09_00_00.1", serverPair(t, ca, certgen.For(c.Now(), time.Hour)))
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
	}
	gw := startGateway(t, open(t, vol, c, nil))
	fe := open(t, feDir, c, nil)
	if _, err := get(gw.URL, fe.DialTLSContext("localhost")); err != nil {
		t.Fatalf("GET: %v", err)
	}

	next := serverPair(t, ca, certgen.For(c.Now(), time.Hour))
	publish("..2026_11_23_10_00_00.2", next)
	c.Advance(tlsdir.CheckInterval)
	a, err := get(gw.URL, fe.DialTLSContext("localhost"))
	if want := next.Cert.SerialNumber.String(); err != nil || a.serverSerial != want {
		t.Errorf("after the kubelet-style swap the gateway served serial %s (%v), want the new %s", a.serverSerial, err, want)
	}
}

func TestFilesInSeparateDirectories(t *testing.T) {
	// Cloud Run mounts each Secret Manager secret as its own volume.
	c := newClock()
	ca := newCA(t, "CA", c.Now())
	gwDir, src := t.TempDir(), t.TempDir()
	writeDir(t, gwDir, serverPair(t, ca, certgen.For(c.Now(), time.Hour)), ca)
	gw := startGateway(t, open(t, gwDir, c, nil))

	paths := map[string]string{}
	place := func(p *certgen.Pair) {
		writeDir(t, src, p, ca)
		for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
			dir := filepath.Join(t.TempDir(), "frontend-"+name)
			if paths[name] != "" {
				dir = filepath.Dir(paths[name])
			}
			os.MkdirAll(dir, 0o700)
			if err := certgen.WriteFileAtomic(filepath.Join(dir, name), mustRead(t, src, name), 0o600); err != nil {
				t.Fatal(err)
			}
			paths[name] = filepath.Join(dir, name)
		}
	}
	place(clientPair(t, ca, certgen.For(c.Now(), time.Hour)))
	fe, err := tlsdir.Open(tlsdir.Config{CertFile: paths["tls.crt"], KeyFile: paths["tls.key"], CAFile: paths["ca.crt"], Now: c.Now})
	if err != nil {
		t.Fatalf("Open with three files: %v", err)
	}
	if _, err := get(gw.URL, fe.DialTLSContext("localhost")); err != nil {
		t.Fatalf("GET with the files in three directories: %v", err)
	}

	next := clientPair(t, ca, certgen.For(c.Now(), time.Hour))
	place(next)
	c.Advance(tlsdir.CheckInterval)
	a, err := get(gw.URL, fe.DialTLSContext("localhost"))
	if want := "serial=" + next.Cert.SerialNumber.String(); err != nil || !strings.HasSuffix(a.body, want) {
		t.Errorf("after rotation: %q, %v; want the gateway to see %s", a.body, err, want)
	}

	if _, err := tlsdir.Open(tlsdir.Config{CertFile: paths["tls.crt"], KeyFile: paths["tls.key"]}); err == nil || !strings.Contains(err.Error(), "Config.CAFile") {
		t.Errorf("Open without CAFile or Dir: error = %v, want one naming Config.CAFile", err)
	}
}

func TestClientConfigNeedsAServerName(t *testing.T) {
	c := newClock()
	ca := newCA(t, "CA", c.Now())
	dir := t.TempDir()
	writeDir(t, dir, clientPair(t, ca, certgen.For(c.Now(), time.Hour)), ca)
	d := open(t, dir, c, nil)
	if _, err := d.ClientConfig(""); err == nil {
		t.Error(`ClientConfig("") succeeded, want an error: without a name the server is not verified`)
	}
	if got := d.Certificate().URIs; len(got) != 1 || got[0].String() != clientID {
		t.Errorf("Certificate().URIs = %v, want [%s]", got, clientID)
	}
	cfg, err := d.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InsecureSkipVerify || cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "localhost" {
		t.Errorf("ClientConfig = {InsecureSkipVerify: %v, MinVersion: %x, ServerName: %q}, want {false, 303, localhost}",
			cfg.InsecureSkipVerify, cfg.MinVersion, cfg.ServerName)
	}
}
