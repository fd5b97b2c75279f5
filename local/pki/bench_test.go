package pki_test

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// BenchmarkEnsure measures devstack's start-up cost for the PKI: creating it
// the first time (three P-256 keys, three signatures, nine atomic writes) and
// reusing it on every later start (read, parse and check).
func BenchmarkEnsure(b *testing.B) {
	b.Run("first run", func(b *testing.B) {
		root := b.TempDir()
		i := 0
		for b.Loop() {
			i++
			if _, err := pki.Ensure(pki.Config{Dir: filepath.Join(root, strconv.Itoa(i)), GatewayHosts: []string{"api.internal.example"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reuse", func(b *testing.B) {
		cfg := pki.Config{Dir: b.TempDir(), GatewayHosts: []string{"api.internal.example"}}
		if _, err := pki.Ensure(cfg); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			bundle, err := pki.Ensure(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if len(bundle.Issued) != 0 {
				b.Fatalf("reuse issued %v", bundle.Issued)
			}
		}
	})
}
