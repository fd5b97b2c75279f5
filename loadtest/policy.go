package loadtest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// DenyRulesFile is the policy WithDenyRules adds to a copy of istio/.
const DenyRulesFile = "loadtest-deny-rules.yaml"

// WithDenyRules copies the kustomize base istioDir into dst and adds to it a
// DENY AuthorizationPolicy on the gateway with n rules that no request of the
// load matches. An Istio gateway evaluates every DENY rule before any ALLOW
// policy, so each request pays for all n: this is how the load tool measures
// what policy size costs. Each rule is shaped like the project's own (a
// request principal, a path, a claim condition), each for another project,
// so none can be answered by an earlier one.
func WithDenyRules(istioDir, dst string, n int) error {
	if n < 1 {
		return fmt.Errorf("deny rules: %d, want ≥ 1", n)
	}
	err := filepath.WalkDir(istioDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(istioDir, p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copying %s: %w", istioDir, err)
	}

	kpath := filepath.Join(dst, "kustomization.yaml")
	b, err := os.ReadFile(kpath)
	if err != nil {
		return err
	}
	var k map[string]any
	if err := yaml.Unmarshal(b, &k); err != nil {
		return fmt.Errorf("%s: %w", kpath, err)
	}
	resources, _ := k["resources"].([]any)
	k["resources"] = append(resources, DenyRulesFile)
	if b, err = yaml.Marshal(k); err != nil {
		return err
	}
	if err := os.WriteFile(kpath, b, 0o644); err != nil {
		return err
	}

	var sb strings.Builder
	sb.WriteString(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: loadtest-deny-rules
  namespace: istio-ingress
spec:
  selector:
    matchLabels:
      istio: internal-ingressgateway
  action: DENY
  rules:
`)
	for i := range n {
		fmt.Fprintf(&sb, `    - from:
        - source:
            requestPrincipals: ["https://securetoken.google.com/blocked-project-%[1]d/*"]
      to:
        - operation:
            paths: ["/api/blocked-%[1]d/*"]
      when:
        - key: request.auth.claims[email]
          values: ["blocked-%[1]d@example.com"]
`, i)
	}
	return os.WriteFile(filepath.Join(dst, DenyRulesFile), []byte(sb.String()), 0o644)
}
