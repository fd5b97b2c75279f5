package backend

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	gidtoken "cloud.google.com/go/auth/credentials/idtoken"

	"github.com/acme/cloudrun-istio-gke/local/google"
)

const (
	testAudience = "https://api.internal.example"
	testReporter = "reporter@demo-acme.iam.gserviceaccount.com"
)

// newTestMachineVerifier is the backend's machine verifier against
// local/google on loopback, and a token for the allowed account.
func newTestMachineVerifier(tb testing.TB) (*machineVerifier, *google.Google) {
	tb.Helper()
	srv := httptest.NewUnstartedServer(nil)
	g, err := google.New(google.Config{ProjectID: "demo-acme", StateDir: filepath.Join(tb.TempDir(), "google"),
		URL: "http://" + srv.Listener.Addr().String(), ServiceAccounts: []string{testReporter}})
	if err != nil {
		tb.Fatal(err)
	}
	srv.Config.Handler = g.Handler()
	srv.Start()
	tb.Cleanup(srv.Close)
	m, err := newMachineVerifier(Config{MachineCallers: []string{testReporter}, MachineAudience: testAudience, GoogleCertsURL: g.CertsURL()})
	if err != nil {
		tb.Fatal(err)
	}
	return m, g
}

func TestARepeatedWorkloadTokenIsServedFromTheVerifiedTokenCache(t *testing.T) {
	m, g := newTestMachineVerifier(t)
	tok, err := g.SignIDToken(testReporter, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.verify(t.Context(), tok); err != nil {
		t.Fatalf("first verification: %v", err)
	}
	// A validator that can reach no keys (and has none cached): from now on
	// only the verified-token cache can admit anything.
	m.validator, _ = gidtoken.NewValidator(&gidtoken.ValidatorOptions{RS256CertsURL: "http://127.0.0.1:1/certs"})
	if c, err := m.verify(t.Context(), tok); err != nil || c.email != testReporter {
		t.Errorf("the same token again: %+v, %v; want %s from the cache", c, err, testReporter)
	}
	g2, _ := google.New(google.Config{ProjectID: "demo-acme", StateDir: t.TempDir(), URL: "http://127.0.0.1:1",
		ServiceAccounts: []string{testReporter}, Now: func() time.Time { return time.Now().Add(-time.Minute) }})
	other, _ := g2.SignIDToken(testReporter, testAudience)
	if _, err := m.verify(t.Context(), other); err == nil {
		t.Error("a token never verified was admitted, want the cache to hold only verified tokens")
	}
}

// BenchmarkMachineTokenCheck is the backend's whole check of a workload's
// token — cache lookup, expiry, allowlist — on a repeat, and the first
// verification for comparison (signature against cached keys).
func BenchmarkMachineTokenCheck(b *testing.B) {
	m, g := newTestMachineVerifier(b)
	tok, err := g.SignIDToken(testReporter, testAudience)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.Run("repeat from the verified-token cache", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("first sight: signature with cached keys", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.cache.Remove(tok)
			if _, err := m.verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
