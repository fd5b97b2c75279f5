package gateway

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// istioDir is the repository's real istio/ base: these tests load the very
// policy production applies.
const istioDir = "../../istio"

func TestLoadRendersTheRepositoryBaseForAProject(t *testing.T) {
	rs, err := Load(istioDir, "my-project-1")
	if err != nil {
		t.Fatalf("Load(%s): %v", istioDir, err)
	}
	if len(rs.Gateways) != 1 || len(rs.VirtualServices) != 1 || len(rs.RequestAuthentications) != 1 ||
		len(rs.AuthorizationPolicies) != 5 || len(rs.PeerAuthentications) != 2 {
		t.Fatalf("got %d Gateways, %d VirtualServices, %d RequestAuthentications, %d AuthorizationPolicies, %d PeerAuthentications; want 1, 1, 1, 5, 2",
			len(rs.Gateways), len(rs.VirtualServices), len(rs.RequestAuthentications), len(rs.AuthorizationPolicies), len(rs.PeerAuthentications))
	}
	rule := rs.RequestAuthentications[0].Spec.GetJwtRules()[0]
	if got, want := rule.GetIssuer(), "https://securetoken.google.com/my-project-1"; got != want {
		t.Errorf("issuer: got %q, want %q", got, want)
	}
	if got := rule.GetAudiences(); len(got) != 1 || got[0] != "my-project-1" {
		t.Errorf("audiences: got %q, want [my-project-1]", got)
	}
	var principals []string
	for _, ap := range rs.AuthorizationPolicies {
		for _, r := range ap.Spec.GetRules() {
			for _, f := range r.GetFrom() {
				principals = append(principals, f.GetSource().GetRequestPrincipals()...)
			}
		}
	}
	if want := []string{"https://securetoken.google.com/my-project-1/*", "https://accounts.google.com/*"}; !slices.Equal(principals, want) {
		t.Errorf("requestPrincipals: got %q, want %q (users by project, workloads by Google)", principals, want)
	}
	if a := rs.Gateways[0].Annotations; len(a) != 0 {
		t.Errorf("Gateway annotations: got %v, want none (kustomize's origin bookkeeping removed)", a)
	}
}

func TestLoadLeavesTheFilesOnDiskUntouched(t *testing.T) {
	before, err := os.ReadFile(filepath.Join(istioDir, ProjectFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(istioDir, "another-project"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(istioDir, ProjectFile))
	if string(before) != string(after) {
		t.Fatalf("%s changed on disk: before %q, after %q", ProjectFile, before, after)
	}
}

func TestLoadFollowsASymlinkedDirectory(t *testing.T) {
	abs, err := filepath.Abs(istioDir)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "istio")
	if err := os.Symlink(abs, link); err != nil {
		t.Fatal(err)
	}
	rs, err := Load(link, "my-project-1")
	if err != nil {
		t.Fatalf("Load(%s -> %s): %v", link, abs, err)
	}
	if len(rs.Gateways) != 1 || len(rs.AuthorizationPolicies) != 5 {
		t.Errorf("through the link: %d Gateways, %d AuthorizationPolicies; want 1 and 5", len(rs.Gateways), len(rs.AuthorizationPolicies))
	}
}

// writeBase writes a minimal kustomize base holding doc, the way istio/ is
// laid out, and returns its directory.
func writeBase(t *testing.T, doc string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"kustomization.yaml": "resources:\n  - policy.yaml\n",
		ProjectFile:          ProjectKey + "=placeholder-id\n",
		"policy.yaml":        doc,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadRejectsBrokenYAMLWithOneMessageNamingFileResourceAndField(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{
			name: "a misspelt field deep in a Gateway is named by its path",
			doc: `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-ingress}
spec:
  selector: {istio: x}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [a.example]
    tls: {mode: MUTUAL, credentialNme: secret}
`,
			want: []string{"policy.yaml", "Gateway istio-ingress/gw", `spec.servers[0].tls: unknown field "credentialNme"`},
		},
		{
			name: "an unknown metadata field is rejected",
			doc: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: ns, labelz: {a: b}}
spec: {}
`,
			want: []string{"policy.yaml", "AuthorizationPolicy ns/p", `unknown field "labelz"`},
		},
		{
			name: "an enum value Istio does not define is rejected",
			doc: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: ns}
spec: {action: PERMIT}
`,
			want: []string{"AuthorizationPolicy ns/p", "spec", "PERMIT"},
		},
		{
			name: "a kind the gateway does not know is rejected",
			doc: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d, namespace: ns}
spec: {host: x}
`,
			want: []string{"DestinationRule ns/d", "not an Istio resource the local gateway knows"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeBase(t, tt.doc), "demo-acme")
			if err == nil {
				t.Fatalf("Load: got nil error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error %q: want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadRefusesAProjectIDThatIsNotOne(t *testing.T) {
	for _, id := range []string{"", "Demo", "demo/acme", "x\nPROJECT_ID=evil"} {
		if _, err := Load(istioDir, id); err == nil || !strings.Contains(err.Error(), "project id") {
			t.Errorf("Load with project id %q: got %v, want an error about the project id", id, err)
		}
	}
}

func TestSelectFollowsIstioSelectorRules(t *testing.T) {
	rs, err := Load(writeBase(t, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ours, namespace: istio-ingress}
spec: {selector: {istio: internal-ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: istio-ingress}
spec: {selector: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bound-by-short-name, namespace: istio-ingress}
spec: {hosts: [a], gateways: [ours]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bound-by-qualified-name, namespace: elsewhere}
spec: {hosts: [a], gateways: [istio-ingress/ours]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: short-name-in-other-namespace, namespace: elsewhere}
spec: {hosts: [a], gateways: [ours]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-only, namespace: istio-ingress}
spec: {hosts: [a]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-wide, namespace: istio-system}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: namespace-wide, namespace: istio-ingress}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: selects-us, namespace: istio-ingress}
spec: {selector: {matchLabels: {istio: internal-ingressgateway}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: selects-others, namespace: istio-ingress}
spec: {selector: {matchLabels: {istio: ingressgateway}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-namespace, namespace: api}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: targets-a-gateway-api-gateway, namespace: istio-ingress}
spec: {targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: ours}]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-ingress}
spec: {selector: {matchLabels: {istio: internal-ingressgateway}}}
`), "demo-acme")
	if err != nil {
		t.Fatal(err)
	}
	s := rs.Select(Workload{Namespace: "istio-ingress", Labels: map[string]string{"istio": "internal-ingressgateway", "app": "gw"}})
	var got []string
	for _, g := range s.Gateways {
		got = append(got, "Gateway "+g.Name)
	}
	for _, v := range s.VirtualServices {
		got = append(got, "VirtualService "+v.Name)
	}
	for _, p := range s.AuthorizationPolicies {
		got = append(got, "AuthorizationPolicy "+p.Name)
	}
	for _, p := range s.RequestAuthentications {
		got = append(got, "RequestAuthentication "+p.Name)
	}
	want := []string{
		"Gateway ours",
		"VirtualService bound-by-short-name", "VirtualService bound-by-qualified-name",
		"AuthorizationPolicy mesh-wide", "AuthorizationPolicy namespace-wide", "AuthorizationPolicy selects-us",
		"RequestAuthentication jwt",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("selected:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
