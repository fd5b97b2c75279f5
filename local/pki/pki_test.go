package pki_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

var start = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func config(dir string, now time.Time) pki.Config {
	return pki.Config{
		Dir:          dir,
		GatewayHosts: []string{"api.internal.example", "10.128.0.42"},
		Now:          func() time.Time { return now },
	}
}

func ensure(t *testing.T, cfg pki.Config) *pki.Bundle {
	t.Helper()
	b, err := pki.Ensure(cfg)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return b
}

type dirFiles struct {
	leaf  *x509.Certificate
	trust *x509.CertPool
	raw   map[string][]byte
}

func read(t *testing.T, dir string) dirFiles {
	t.Helper()
	f := dirFiles{raw: map[string][]byte{}, trust: x509.NewCertPool()}
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		f.raw[name] = b
	}
	p, err := certgen.ParsePair(f.raw["tls.crt"], f.raw["tls.key"])
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	f.leaf = p.Cert
	cas, err := certgen.ParseCerts(f.raw["ca.crt"])
	if err != nil {
		t.Fatalf("%s/ca.crt: %v", dir, err)
	}
	for _, c := range cas {
		f.trust.AddCert(c)
	}
	return f
}

func TestEnsureCreatesTheDevPKI(t *testing.T) {
	dir := t.TempDir()
	b := ensure(t, config(dir, start))
	if want := []string{"ca", "gateway", "frontend", "apiclient"}; !slices.Equal(b.Issued, want) {
		t.Errorf("Issued = %v, want %v", b.Issued, want)
	}
	if b.CADir != filepath.Join(dir, "ca") || b.GatewayDir != filepath.Join(dir, "gateway") || b.FrontendDir != filepath.Join(dir, "frontend") ||
		b.MachineDir != filepath.Join(dir, "apiclient") {
		t.Errorf("Bundle dirs = %q %q %q %q, want <dir>/ca, <dir>/gateway, <dir>/frontend, <dir>/apiclient", b.CADir, b.GatewayDir, b.FrontendDir, b.MachineDir)
	}
	ca, gw, fe, mc := read(t, b.CADir), read(t, b.GatewayDir), read(t, b.FrontendDir), read(t, b.MachineDir)

	t.Run("the CA is a P-256 CA that can sign only leaves", func(t *testing.T) {
		c := ca.leaf
		if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
			t.Errorf("CA basic constraints: IsCA=%v valid=%v MaxPathLen=%d zero=%v, want a CA with path length 0", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
		}
		if c.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Errorf("CA key usage %b lacks CertSign", c.KeyUsage)
		}
		if !bytes.Equal(ca.raw["ca.crt"], gw.raw["ca.crt"]) || !bytes.Equal(ca.raw["ca.crt"], fe.raw["ca.crt"]) || !bytes.Equal(ca.raw["ca.crt"], mc.raw["ca.crt"]) {
			t.Error("ca.crt differs between ca/, gateway/, frontend/ and apiclient/, want the same trust bundle in each")
		}
	})

	tests := []struct {
		name  string
		files dirFiles
		opts  x509.VerifyOptions
		check func(t *testing.T, c *x509.Certificate)
	}{
		{
			name:  "the gateway certificate chains to the CA as a server for every configured name",
			files: gw,
			opts:  x509.VerifyOptions{DNSName: "api.internal.example", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
			check: func(t *testing.T, c *x509.Certificate) {
				for _, h := range []string{"localhost", "api.internal.example", "127.0.0.1", "::1", "10.128.0.42"} {
					if err := c.VerifyHostname(h); err != nil {
						t.Errorf("gateway certificate does not name %s: %v", h, err)
					}
				}
				if len(c.URIs) != 0 {
					t.Errorf("gateway certificate has URI SANs %v, want none", c.URIs)
				}
			},
		},
		{
			name:  "the frontend certificate chains to the CA as a client with its SPIFFE ID",
			files: fe,
			opts:  x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			check: func(t *testing.T, c *x509.Certificate) {
				if len(c.URIs) != 1 || c.URIs[0].String() != pki.DefaultClientURI {
					t.Errorf("frontend URI SANs = %v, want [%s]", c.URIs, pki.DefaultClientURI)
				}
				if len(c.DNSNames)+len(c.IPAddresses) != 0 {
					t.Errorf("frontend certificate names hosts %v %v, want none", c.DNSNames, c.IPAddresses)
				}
			},
		},
		{
			name:  "the machine caller's certificate chains to the CA as a client with its own SPIFFE ID",
			files: mc,
			opts:  x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			check: func(t *testing.T, c *x509.Certificate) {
				if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://acme.internal/ns/jobs/sa/reporter" {
					t.Errorf("apiclient URI SANs = %v, want [spiffe://acme.internal/ns/jobs/sa/reporter]", c.URIs)
				}
				if len(c.DNSNames)+len(c.IPAddresses) != 0 {
					t.Errorf("apiclient certificate names hosts %v %v, want none", c.DNSNames, c.IPAddresses)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.files.leaf
			tt.opts.Roots = tt.files.trust
			tt.opts.CurrentTime = start
			chains, err := c.Verify(tt.opts)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got := chains[0][len(chains[0])-1]; !got.Equal(ca.leaf) {
				t.Errorf("chain ends at %q, want the dev CA", got.Subject)
			}
			if c.IsCA {
				t.Error("leaf is a CA, want IsCA false")
			}
			if c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("key usage = %b, want DigitalSignature only", c.KeyUsage)
			}
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("public key is %T, want ECDSA P-256", c.PublicKey)
			}
			if got := c.NotAfter.Sub(start); got != pki.DefaultLeafValidity {
				t.Errorf("valid for %s after issuance, want %s", got, pki.DefaultLeafValidity)
			}
			tt.check(t, c)
		})
	}

	t.Run("private keys are readable by the owner only", func(t *testing.T) {
		for _, d := range []string{b.CADir, b.GatewayDir, b.FrontendDir, b.MachineDir} {
			fi, err := os.Stat(filepath.Join(d, "tls.key"))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("%s/tls.key mode = %o, want 600", d, got)
			}
		}
	})
}

func TestEnsureReusesWhatIsValid(t *testing.T) {
	dir := t.TempDir()
	b := ensure(t, config(dir, start))
	before := snapshot(t, b)

	gw := read(t, b.GatewayDir).leaf
	wantRenew := gw.NotAfter.Add(-gw.NotAfter.Sub(gw.NotBefore) / 3)
	if !b.RenewAt.Equal(wantRenew) {
		t.Errorf("RenewAt = %s, want %s, when a third of the leaves' life remains", b.RenewAt, wantRenew)
	}

	again := ensure(t, config(dir, b.RenewAt.Add(-time.Second)))
	if len(again.Issued) != 0 {
		t.Errorf("Ensure just before RenewAt issued %v, want nothing", again.Issued)
	}
	if after := snapshot(t, again); !maps(before, after) {
		t.Error("Ensure just before RenewAt changed files on disk, want them untouched")
	}
	if !again.RenewAt.Equal(b.RenewAt) {
		t.Errorf("RenewAt moved from %s to %s without a renewal", b.RenewAt, again.RenewAt)
	}

	due := ensure(t, config(dir, b.RenewAt))
	if want := []string{"gateway", "frontend", "apiclient"}; !slices.Equal(due.Issued, want) {
		t.Errorf("Ensure at RenewAt issued %v, want %v", due.Issued, want)
	}
}

// snapshot is every file's content and modification time.
func snapshot(t *testing.T, b *pki.Bundle) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, d := range []string{b.CADir, b.GatewayDir, b.FrontendDir, b.MachineDir} {
		for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
			p := filepath.Join(d, name)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(p)
			m[p] = fi.ModTime().String() + "\n" + string(data)
		}
	}
	return m
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestEnsureRenews(t *testing.T) {
	leafDue := start.Add(pki.DefaultLeafValidity * 2 / 3).Add(2 * time.Minute)
	caDue := start.Add(pki.DefaultCAValidity * 2 / 3).Add(2 * time.Minute)

	tests := []struct {
		name       string
		change     func(t *testing.T, cfg *pki.Config, b *pki.Bundle) // before the second Ensure
		wantIssued []string
	}{
		{
			name:       "leaves are re-issued once under a third of their life remains",
			change:     func(t *testing.T, cfg *pki.Config, b *pki.Bundle) { cfg.Now = func() time.Time { return leafDue } },
			wantIssued: []string{"gateway", "frontend", "apiclient"},
		},
		{
			name:       "the CA is renewed near its own expiry, and the leaves with it",
			change:     func(t *testing.T, cfg *pki.Config, b *pki.Bundle) { cfg.Now = func() time.Time { return caDue } },
			wantIssued: []string{"ca", "gateway", "frontend", "apiclient"},
		},
		{
			name: "a new gateway host name re-issues only the gateway certificate",
			change: func(t *testing.T, cfg *pki.Config, b *pki.Bundle) {
				cfg.GatewayHosts = append(cfg.GatewayHosts, "gw.example")
			},
			wantIssued: []string{"gateway"},
		},
		{
			name: "a new client identity re-issues only the frontend certificate",
			change: func(t *testing.T, cfg *pki.Config, b *pki.Bundle) {
				cfg.ClientURI = "spiffe://acme.internal/ns/web/sa/web"
			},
			wantIssued: []string{"frontend"},
		},
		{
			name: "a new machine identity re-issues only the machine caller's certificate",
			change: func(t *testing.T, cfg *pki.Config, b *pki.Bundle) {
				cfg.MachineURI = "spiffe://acme.internal/ns/jobs/sa/auditor"
			},
			wantIssued: []string{"apiclient"},
		},
		{
			name: "a lost key is replaced with a new certificate",
			change: func(t *testing.T, cfg *pki.Config, b *pki.Bundle) {
				os.Remove(filepath.Join(b.FrontendDir, "tls.key"))
			},
			wantIssued: []string{"frontend"},
		},
		{
			name: "a certificate from another CA is replaced",
			change: func(t *testing.T, cfg *pki.Config, b *pki.Bundle) {
				other := ensure(t, config(t.TempDir(), start))
				for _, name := range []string{"tls.crt", "tls.key"} {
					data, _ := os.ReadFile(filepath.Join(other.GatewayDir, name))
					os.WriteFile(filepath.Join(b.GatewayDir, name), data, 0o600)
				}
			},
			wantIssued: []string{"gateway"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(t.TempDir(), start)
			first := ensure(t, cfg)
			before := map[string]dirFiles{"ca": read(t, first.CADir), "gateway": read(t, first.GatewayDir), "frontend": read(t, first.FrontendDir),
				"apiclient": read(t, first.MachineDir)}
			tt.change(t, &cfg, first)
			b := ensure(t, cfg)
			if !slices.Equal(b.Issued, tt.wantIssued) {
				t.Errorf("Issued = %v, want %v", b.Issued, tt.wantIssued)
			}
			now := cfg.Now()
			ca := read(t, b.CADir).leaf
			for name, d := range map[string]string{"gateway": b.GatewayDir, "frontend": b.FrontendDir, "apiclient": b.MachineDir} {
				f := read(t, d)
				renewed := !f.leaf.Equal(before[name].leaf)
				if renewed != slices.Contains(tt.wantIssued, name) {
					t.Errorf("%s certificate renewed = %v, want %v", name, renewed, !renewed)
				}
				if err := f.leaf.CheckSignatureFrom(ca); err != nil {
					t.Errorf("%s certificate is not signed by the current CA: %v", name, err)
				}
				if _, err := f.leaf.Verify(x509.VerifyOptions{Roots: f.trust, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Errorf("%s certificate does not verify against its ca.crt at %s: %v", name, now, err)
				}
			}
		})
	}

	t.Run("after a CA renewal the old CA stays trusted until it expires", func(t *testing.T) {
		cfg := config(t.TempDir(), start)
		first := ensure(t, cfg)
		oldCA, oldClient := read(t, first.CADir).leaf, read(t, first.FrontendDir).leaf

		cfg.Now = func() time.Time { return caDue }
		b := ensure(t, cfg)
		gw := read(t, b.GatewayDir)
		// A frontend that has not yet reloaded still presents its old
		// certificate to a gateway that has.
		if _, err := oldClient.Verify(x509.VerifyOptions{Roots: gw.trust, CurrentTime: oldClient.NotBefore.Add(time.Minute),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("old client certificate against the new gateway ca.crt: %v, want it trusted", err)
		}
		if cas, _ := certgen.ParseCerts(gw.raw["ca.crt"]); len(cas) != 2 || !cas[1].Equal(oldCA) {
			t.Errorf("ca.crt holds %d certificates, want the new CA then the old one", len(cas))
		}

		expired := oldCA.NotAfter.Add(time.Minute)
		cfg.Now = func() time.Time { return expired }
		ensure(t, cfg)
		if cas, _ := certgen.ParseCerts(read(t, b.GatewayDir).raw["ca.crt"]); slices.ContainsFunc(cas, oldCA.Equal) {
			t.Error("ca.crt still holds the old CA after it expired, want it dropped")
		}
	})
}

func TestConfigIsValidated(t *testing.T) {
	tests := []struct {
		name string
		cfg  pki.Config
		want string
	}{
		{"a config without a directory is refused", pki.Config{}, "Config.Dir"},
		{"a client URI that is not absolute is refused", pki.Config{Dir: "x", ClientURI: "frontend"}, "Config.ClientURI"},
		{"a machine URI that is not absolute is refused", pki.Config{Dir: "x", MachineURI: "reporter"}, "Config.MachineURI"},
		{"a machine caller sharing the frontend's identity is refused", pki.Config{Dir: "x", MachineURI: pki.DefaultClientURI}, "Config.MachineURI"},
		{"a gateway host that is no DNS name is refused", pki.Config{Dir: "x", GatewayHosts: []string{"bad host"}}, "Config.GatewayHosts"},
		{"a negative leaf validity is refused", pki.Config{Dir: "x", LeafValidity: -time.Hour}, "Config.LeafValidity"},
		{"a CA that would not outlive a leaf is refused", pki.Config{Dir: "x", LeafValidity: 48 * time.Hour, CAValidity: 24 * time.Hour}, "Config.CAValidity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Dir = filepath.Join(t.TempDir(), tt.cfg.Dir)
			if tt.want == "Config.Dir" {
				tt.cfg.Dir = ""
			}
			_, err := pki.Ensure(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ensure error = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

// The dev PKI exists to make the local gateway, the frontend and the machine
// caller speak mutual TLS; check that they do, through tlsdir as they use it,
// and that the gateway sees each by its own identity.
func TestBundleServesMutualTLS(t *testing.T) {
	b := ensure(t, pki.Config{Dir: t.TempDir(), GatewayHosts: []string{"api.internal.example"}})
	gwDir, err := tlsdir.Open(tlsdir.Config{Dir: b.GatewayDir})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].URIs[0].String())
	}))
	srv.TLS = gwDir.ServerConfig(tls.RequireAndVerifyClientCert)
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	for _, tt := range []struct{ name, dir, want string }{
		{"the frontend is seen as the frontend", b.FrontendDir, pki.DefaultClientURI},
		{"the machine caller is seen as the reporter workload", b.MachineDir, pki.DefaultMachineURI},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, err := tlsdir.Open(tlsdir.Config{Dir: tt.dir})
			if err != nil {
				t.Fatal(err)
			}
			tr := &http.Transport{DialTLSContext: client.DialTLSContext("api.internal.example"), ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://127.0.0.1:" + port + "/")
			if err != nil {
				t.Fatalf("GET through mutual TLS: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tt.want {
				t.Errorf("gateway saw client %q, want %q", body, tt.want)
			}
		})
	}
}

func TestRenewKeepsThePKICurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Inside the bubble time.Now and timers run on a fake clock that
		// jumps ahead whenever every goroutine is waiting.
		cfg := pki.Config{Dir: t.TempDir(), LeafValidity: 3 * time.Hour, CAValidity: 24 * time.Hour}
		first := ensure(t, cfg)
		before := read(t, first.GatewayDir).leaf

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		var logs bytes.Buffer
		go func() { done <- pki.Renew(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil))) }()

		time.Sleep(time.Until(first.RenewAt) - time.Second)
		synctest.Wait()
		if got := read(t, first.GatewayDir).leaf; !got.Equal(before) {
			t.Fatal("the gateway certificate was renewed before RenewAt, want it kept")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		after := read(t, first.GatewayDir).leaf
		if after.Equal(before) {
			t.Fatalf("the gateway certificate was not renewed after RenewAt (%s); logs: %s", first.RenewAt, logs.String())
		}
		if !strings.Contains(logs.String(), "dev PKI renewed") {
			t.Errorf("logs = %q, want a renewal line", logs.String())
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Renew returned %v after cancellation, want nil", err)
		}
	})
}
