package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
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

// istioOperator is the part of deploy/istio/operator.yaml the tests read.
type istioOperator struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Profile    string `json:"profile"`
		Hub        string `json:"hub"`
		Tag        string `json:"tag"`
		MeshConfig struct {
			OutboundTrafficPolicy struct {
				Mode string `json:"mode"`
			} `json:"outboundTrafficPolicy"`
		} `json:"meshConfig"`
	} `json:"spec"`
}

const istioOperatorFile = "deploy/istio/operator.yaml"

func readIstioOperator(t *testing.T, b []byte) istioOperator {
	t.Helper()
	var op istioOperator
	if err := yaml.Unmarshal(b, &op); err != nil {
		t.Fatalf("%s: %v", istioOperatorFile, err)
	}
	if op.APIVersion != "install.istio.io/v1alpha1" || op.Kind != "IstioOperator" {
		t.Fatalf("%s is %s %s, want install.istio.io/v1alpha1 IstioOperator", istioOperatorFile, op.APIVersion, op.Kind)
	}
	return op
}

// TestIstioInstallRendersOnlyReleasedImages renders the repository's
// IstioOperator offline, as `istioctl install -f` would apply it, and checks
// every image it would run: the control plane's containers, and the proxy
// image that sidecar and gateway injection take from the injector's values.
// The second case shows the check refusing what a source-built istioctl
// renders when hub and tag are left out.
func TestIstioInstallRendersOnlyReleasedImages(t *testing.T) {
	file, err := os.ReadFile(filepath.Join(repoRoot, istioOperatorFile))
	if err != nil {
		t.Fatal(err)
	}
	op := readIstioOperator(t, file)
	var unpinned []byte
	for _, line := range strings.SplitAfter(string(file), "\n") {
		if l := strings.TrimSpace(line); !strings.HasPrefix(l, "hub:") && !strings.HasPrefix(l, "tag:") {
			unpinned = append(unpinned, line...)
		}
	}
	tests := []struct {
		name     string
		operator []byte
		valid    bool
	}{
		{istioOperatorFile + " renders only " + op.Spec.Hub + " images tagged " + op.Spec.Tag, file, true},
		{"the same file without hub and tag renders development images, and is refused", unpinned, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "operator.yaml")
			if err := os.WriteFile(f, tt.operator, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := istioctl(t, nil, "manifest", "generate", "-f", f)
			if err != nil {
				t.Fatalf("istioctl manifest generate -f %s: %v\n%s", istioOperatorFile, err, out)
			}
			images := renderedImages(t, []byte(out))
			if len(images) < 2 {
				t.Fatalf("found %d images (%v) in the rendered install: want istiod's and the injected proxy's", len(images), images)
			}
			var problems []string
			for _, img := range images {
				if p := releasedImageProblem(img, op.Spec.Hub, op.Spec.Tag); p != "" {
					problems = append(problems, p)
				}
			}
			if tt.valid && len(problems) > 0 {
				t.Errorf("the rendered install names images that are not Istio %s's: %s", op.Spec.Tag, strings.Join(problems, "; "))
			}
			for _, name := range []string{"pilot", "proxyv2"} {
				if want := op.Spec.Hub + "/" + name + ":" + op.Spec.Tag; tt.valid && !slices.Contains(images, want) {
					t.Errorf("the rendered install does not use %s; it uses %v", want, images)
				}
			}
			if !tt.valid && len(problems) == 0 {
				t.Errorf("every image passed (%v): the check cannot tell a development install from a release", images)
			}
		})
	}
}

// renderedImages lists the images of a rendered install: every container
// image of its workloads, and for each injector configuration (a ConfigMap
// value whose JSON has "global"), the proxy image that injection would use.
func renderedImages(t *testing.T, manifest []byte) []string {
	t.Helper()
	var images []string
	for _, doc := range strings.Split(string(manifest), "\n---") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil || obj == nil {
			continue
		}
		walkContainers(obj, &images)
		if obj["kind"] != "ConfigMap" {
			continue
		}
		data, _ := obj["data"].(map[string]any)
		for _, v := range data {
			s, _ := v.(string)
			var values struct {
				Global *struct {
					Hub   string `json:"hub"`
					Tag   any    `json:"tag"`
					Proxy struct {
						Image string `json:"image"`
					} `json:"proxy"`
				} `json:"global"`
			}
			if json.Unmarshal([]byte(s), &values) != nil || values.Global == nil || values.Global.Proxy.Image == "" {
				continue
			}
			images = append(images, fmt.Sprintf("%s/%s:%v", values.Global.Hub, values.Global.Proxy.Image, values.Global.Tag))
		}
	}
	return images
}

// walkContainers appends the image of every container and init container in
// v, at any depth (Deployments, DaemonSets, Jobs alike).
func walkContainers(v any, images *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if list, ok := child.([]any); ok && (k == "containers" || k == "initContainers") {
				for _, c := range list {
					if c, ok := c.(map[string]any); ok {
						if img, ok := c["image"].(string); ok {
							*images = append(*images, img)
						}
					}
				}
			}
			walkContainers(child, images)
		}
	case []any:
		for _, child := range v {
			walkContainers(child, images)
		}
	}
}

// releasedImageProblem says what is wrong with an image of the install, or
// "" if it is hub/NAME:tag of the pinned release. A testing hub or the tag
// latest is a moving development build, never what a reader should run.
func releasedImageProblem(image, hub, tag string) string {
	repo, imgTag := image, "latest" // no tag means latest
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		repo, imgTag = image[:i], image[i+1:]
	}
	switch {
	case strings.Contains(repo, "testing"):
		return image + " comes from a testing hub"
	case imgTag == "latest":
		return image + " is tagged latest"
	case repo[:max(strings.LastIndex(repo, "/"), 0)] != hub || imgTag != tag:
		return fmt.Sprintf("%s is not from %s with tag %s", image, hub, tag)
	}
	return ""
}
