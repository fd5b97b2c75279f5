package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// istioctl runs the istioctl pinned in tools/go.mod through `go tool`, from
// the repository root. The first run builds it, which takes minutes on a
// small machine (docs/performance.md); later runs come from Go's cache.
func istioctl(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	// Building istioctl cold takes about ten minutes of two cores, as long as
	// go test's default timeout: CI opts in once it has built it beforehand.
	if os.Getenv("ISTIOCTL_VALIDATE") == "" {
		t.Skip("set ISTIOCTL_VALIDATE=1 to run istioctl validate (first build: go tool -modfile=tools/go.mod istioctl version --remote=false)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 9*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "-modfile=tools/go.mod", "istioctl"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestIstioctlValidatesTheRenderedManifests(t *testing.T) {
	for profile, dir := range overlays {
		t.Run("istioctl validate accepts the "+profile+" overlay", func(t *testing.T) {
			m := render(t, dir)
			out, err := istioctl(t, m.yaml, "validate", "-f", "-")
			if err != nil {
				t.Fatalf("istioctl validate -f - on %s: %v\n%s", dir, err, out)
			}
			// It validates Istio resources and checks the Kubernetes ones for
			// mesh conventions; anything beyond its verdict is a finding too.
			if strings.TrimSpace(out) != "validation succeed" {
				t.Errorf("istioctl validate on %s has findings:\n%s", dir, out)
			}
		})
	}
}

// TestIstioctlRejectsBrokenPolicy shows the validator says no, so that its
// yes above means something: each case breaks the rendered gke policy in a
// way strict decoding alone cannot see.
func TestIstioctlRejectsBrokenPolicy(t *testing.T) {
	m := render(t, overlays["gke"])
	tests := []struct{ name, old, new, want string }{
		{"a token rule whose JWKS address is not a URL is refused",
			"jwksUri: https://www.googleapis.com/", "jwksUri: www googleapis com/", "identity-platform-jwt"},
		{"a MUTUAL server without a credential is refused",
			"credentialName: api-gateway-mtls", "credentialName: \"\"", "requires a client ca bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broken := bytes.Replace(m.yaml, []byte(tt.old), []byte(tt.new), 1)
			if bytes.Equal(broken, m.yaml) {
				t.Fatalf("the rendered manifests no longer contain %q: update this case", tt.old)
			}
			out, err := istioctl(t, broken, "validate", "-f", "-")
			if err == nil {
				t.Fatalf("istioctl validate accepted the broken manifests:\n%s", out)
			}
			if !strings.Contains(strings.ToLower(out), tt.want) {
				t.Errorf("istioctl validate failed without naming %q:\n%s", tt.want, out)
			}
		})
	}
}
