package prodpki_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/prodpki"
)

// cmd/certs's tests cover issuance end to end; these cover what its flags
// cannot reach.
func TestConfigIsValidated(t *testing.T) {
	tests := []struct {
		name string
		cfg  prodpki.Config
		want string
	}{
		{"a config without an output directory is refused", prodpki.Config{GatewayHosts: []string{"10.0.0.1"}}, "OutDir"},
		{"a config without gateway names is refused", prodpki.Config{OutDir: "out"}, "GatewayHosts"},
		{"an empty gateway name is refused", prodpki.Config{OutDir: "out", GatewayHosts: []string{""}}, "GatewayHosts"},
		{"a leaf that would outlive the CA is refused", prodpki.Config{OutDir: "out", GatewayHosts: []string{"10.0.0.1"},
			CAValidity: time.Hour, LeafValidity: 2 * time.Hour}, "CAValidity"},
		{"a machine caller with the frontend's identity is refused", prodpki.Config{OutDir: "out", GatewayHosts: []string{"10.0.0.1"},
			MachineURI: prodpki.DefaultClientURI}, "MachineURI"},
		{"a relative machine identity is refused", prodpki.Config{OutDir: "out", GatewayHosts: []string{"10.0.0.1"}, MachineURI: "reporter"}, "MachineURI"},
		{"a missing CA directory is refused", prodpki.Config{OutDir: "out", GatewayHosts: []string{"10.0.0.1"}, CADir: "nope"}, "reading the CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.cfg.OutDir != "" {
				tt.cfg.OutDir = filepath.Join(root, tt.cfg.OutDir)
			}
			if tt.cfg.CADir != "" {
				tt.cfg.CADir = filepath.Join(root, tt.cfg.CADir)
			}
			_, err := prodpki.Issue(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Issue error = %v, want one containing %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("a refused Issue wrote %d entries, want none", len(entries))
			}
		})
	}
}
