package certgen_test

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
)

func TestIssuance(t *testing.T) {
	now := time.Now()
	ca, err := certgen.NewCA("test CA", certgen.For(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a leaf never outlives its CA", func(t *testing.T) {
		p, err := ca.IssueServer([]string{"localhost"}, certgen.For(now, 24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !p.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
			t.Errorf("leaf NotAfter = %s, want the CA's %s", p.Cert.NotAfter, ca.Cert.NotAfter)
		}
	})

	t.Run("a server certificate without hosts is refused", func(t *testing.T) {
		if _, err := ca.IssueServer(nil, certgen.For(now, time.Hour)); err == nil {
			t.Error("IssueServer(nil) succeeded, want an error")
		}
	})

	t.Run("a client identity that is not an absolute URI is refused", func(t *testing.T) {
		if _, err := ca.IssueClient("x", &url.URL{Path: "frontend"}, certgen.For(now, time.Hour)); err == nil {
			t.Error("IssueClient with a relative URI succeeded, want an error")
		}
	})

	t.Run("a key from another pair is refused naming the certificate", func(t *testing.T) {
		a, _ := ca.IssueServer([]string{"a.example"}, certgen.For(now, time.Hour))
		b, _ := ca.IssueServer([]string{"b.example"}, certgen.For(now, time.Hour))
		_, err := certgen.ParsePair(a.CertPEM, b.KeyPEM)
		if err == nil || !strings.Contains(err.Error(), "CN=a.example") {
			t.Errorf("ParsePair(a's cert, b's key) error = %v, want a mismatch naming CN=a.example", err)
		}
	})
}

func TestWriteDir(t *testing.T) {
	now := time.Now()
	ca, err := certgen.NewCA("test CA", certgen.For(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "gateway")
	for range 2 { // the second write replaces the first
		p, err := ca.IssueServer([]string{"localhost"}, certgen.For(now, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := certgen.WriteDir(dir, p, certgen.Bundle(ca.Cert)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
		if err != nil || string(got) != string(p.CertPEM) {
			t.Fatalf("tls.crt = %q, %v; want the certificate just written", got, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"ca.crt", "tls.crt", "tls.key"}; !slices.Equal(names, want) {
		t.Errorf("dir holds %v, want exactly %v (no temporary files left behind)", names, want)
	}
	modes := map[string]os.FileMode{"ca.crt": 0o644, "tls.crt": 0o644, "tls.key": 0o600}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, want %o", name, got, want)
		}
	}
}
