package deploy

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// buildTags are the tags every image is built with: see skaffold.yaml.
const buildTags = "disable_grpc_modules"

// skaffoldSchema is skaffold's published JSON schema for skaffold/v4beta14,
// kept in the repository (deploy/testdata/README.md names its source).
var skaffoldSchema = filepath.Join(repoRoot, "deploy", "testdata", "skaffold-v4beta14.json")

// skaffoldConfig is the part of skaffold.yaml these tests reason about; the
// schema checks the whole of it.
type skaffoldConfig struct {
	APIVersion string `json:"apiVersion"`
	Build      struct {
		Artifacts []struct {
			Image string `json:"image"`
			Ko    *struct {
				Main      string   `json:"main"`
				FromImage string   `json:"fromImage"`
				Flags     []string `json:"flags"`
				// The files whose change makes skaffold dev rebuild.
				Dependencies struct {
					Paths []string `json:"paths"`
				} `json:"dependencies"`
			} `json:"ko"`
		} `json:"artifacts"`
	} `json:"build"`
	Manifests struct {
		Kustomize *struct {
			Paths []string `json:"paths"`
		} `json:"kustomize"`
		RawYaml []string `json:"rawYaml"`
	} `json:"manifests"`
	Deploy      map[string]json.RawMessage `json:"deploy"`
	PortForward []struct {
		ResourceType string `json:"resourceType"`
		ResourceName string `json:"resourceName"`
		Namespace    string `json:"namespace"`
		Port         int    `json:"port"`
		LocalPort    int    `json:"localPort"`
	} `json:"portForward"`
	Profiles []json.RawMessage `json:"profiles"`
}

func readSkaffold(t *testing.T) []byte {
	t.Helper()
	return readSkaffoldAt(t, repoRoot)
}

func readSkaffoldAt(t *testing.T, root string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		t.Fatalf("skaffold.yaml: %v", err)
	}
	return js
}

func TestSkaffoldConfigMatchesItsSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	schema, err := c.Compile(skaffoldSchema)
	if err != nil {
		t.Fatalf("compiling %s: %v", skaffoldSchema, err)
	}
	tests := []struct {
		name  string
		patch string // a JSON merge patch applied to skaffold.yaml first
		valid bool
	}{
		{name: "skaffold.yaml is valid skaffold/v4beta14", valid: true},
		// The schema must be able to say no, or the first case proves nothing.
		{name: "a misspelt builder field is refused", patch: `{"build":{"artifacts":[{"image":"backend","ko":{"mian":"./cmd/backend"}}]}}`},
		{name: "an unknown deployer is refused", patch: `{"deploy":{"kubctl":{}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js := readSkaffold(t)
			if tt.patch != "" {
				var err error
				if js, err = jsonpatch.MergePatch(js, []byte(tt.patch)); err != nil {
					t.Fatal(err)
				}
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
			if err != nil {
				t.Fatal(err)
			}
			err = schema.Validate(inst)
			if tt.valid && err != nil {
				t.Errorf("want valid, got: %v", err)
			}
			if !tt.valid && err == nil {
				t.Error("want invalid, the schema accepted it")
			}
		})
	}
}

// profileConfig returns skaffold.yaml as skaffold sees it with the named
// profile active: the profile's JSON patches applied, then its top-level
// sections replacing the config's.
func profileConfig(t *testing.T, name string) skaffoldConfig {
	t.Helper()
	return profileConfigAt(t, repoRoot, name)
}

// profileConfigAt is profileConfig for a copy of the repository at root.
func profileConfigAt(t *testing.T, root, name string) skaffoldConfig {
	t.Helper()
	js := readSkaffoldAt(t, root)
	var base skaffoldConfig
	if err := json.Unmarshal(js, &base); err != nil {
		t.Fatal(err)
	}
	for _, raw := range base.Profiles {
		var p struct {
			Name    string          `json:"name"`
			Patches json.RawMessage `json:"patches"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if p.Name != name {
			continue
		}
		if len(p.Patches) > 0 {
			patch, err := jsonpatch.DecodePatch(p.Patches)
			if err != nil {
				t.Fatalf("profile %s patches: %v", name, err)
			}
			if js, err = patch.Apply(js); err != nil {
				t.Fatalf("profile %s patches do not apply: %v", name, err)
			}
		}
		var sections map[string]json.RawMessage
		if err := json.Unmarshal(raw, &sections); err != nil {
			t.Fatal(err)
		}
		delete(sections, "name")
		delete(sections, "patches")
		merged, err := jsonpatch.MergePatch(js, mustJSON(t, sections))
		if err != nil {
			t.Fatal(err)
		}
		// A profile's section replaces the config's whole, it is not merged.
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(merged, &cfg); err != nil {
			t.Fatal(err)
		}
		for k, v := range sections {
			cfg[k] = v
		}
		var out skaffoldConfig
		if err := json.Unmarshal(mustJSON(t, cfg), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Fatalf("skaffold.yaml has no profile %q", name)
	return skaffoldConfig{}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSkaffoldProfilesBuildWhatTheyDeploy checks, per profile, that every
// image a manifest names is an artifact the profile builds (so skaffold
// replaces it with the built reference) and every artifact is deployed.
func TestSkaffoldProfilesBuildWhatTheyDeploy(t *testing.T) {
	// The tutorial's in-cluster Redis (deploy/kubernetes/apikeys/redis.yaml)
	// is the one image skaffold does not build: a released one, by tag.
	const redis = "redis:7.2"
	tests := []struct {
		profile   string
		artifacts []string // in skaffold.yaml's order
		released  []string // images the manifests use that are not built
		deployer  string
	}{
		{"gke", []string{"backend", "apikeys"}, []string{redis}, "kubectl"},
		{"cloudrun", []string{"frontend"}, nil, "cloudrun"},
		{"local-cluster", []string{"backend", "frontend", "apikeys"}, []string{redis}, "kubectl"},
		{"cloudrun-job", []string{"apiclient"}, nil, "cloudrun"},
	}
	for _, tt := range tests {
		t.Run("the "+tt.profile+" profile builds with ko exactly the images its manifests use", func(t *testing.T) {
			cfg := profileConfig(t, tt.profile)
			var built []string
			for _, a := range cfg.Build.Artifacts {
				built = append(built, a.Image)
				if a.Ko == nil {
					t.Errorf("artifact %s is not built with ko", a.Image)
					continue
				}
				if a.Ko.FromImage != "gcr.io/distroless/static-debian12:nonroot" {
					t.Errorf("artifact %s base %q, want distroless static nonroot", a.Image, a.Ko.FromImage)
				}
				if _, err := os.Stat(filepath.Join(repoRoot, a.Ko.Main, "main.go")); err != nil {
					t.Errorf("artifact %s: main %s has no main.go: %v", a.Image, a.Ko.Main, err)
				}
				// What docs/performance.md measures (cmd/frontend's
				// BenchmarkStartToServing builds with the same tag).
				if !slices.Contains(a.Ko.Flags, "-tags="+buildTags) {
					t.Errorf("artifact %s builds with flags %q, want -tags=%s", a.Image, a.Ko.Flags, buildTags)
				}
			}
			if !slices.Equal(built, tt.artifacts) {
				t.Errorf("builds %v, want %v", built, tt.artifacts)
			}
			if _, ok := cfg.Deploy[tt.deployer]; !ok {
				t.Errorf("deploys with %v, want %s", slices.Collect(maps.Keys(cfg.Deploy)), tt.deployer)
			}
			used := map[string]bool{}
			if k := cfg.Manifests.Kustomize; k != nil {
				for _, dir := range k.Paths {
					for _, o := range render(t, dir).objects {
						if d, ok := o.Obj.(*appsv1.Deployment); ok {
							for _, c := range d.Spec.Template.Spec.Containers {
								used[c.Image] = true
							}
						}
					}
				}
			}
			for _, f := range cfg.Manifests.RawYaml {
				switch f {
				case cloudRunService:
					for _, c := range readCloudRunService(t).Spec.Template.Spec.Containers {
						used[c.Image] = true
					}
				case apiclientJob:
					for _, c := range readAPIClientJob(t).Spec.Template.Spec.Template.Spec.Containers {
						used[c.Image] = true
					}
				default:
					t.Fatalf("rawYaml %s: only %s and %s are known to this test", f, cloudRunService, apiclientJob)
				}
			}
			// "auto" is Istio's gateway injection placeholder: istiod sets
			// the proxy image of the installed control plane.
			delete(used, "auto")
			var images []string
			for img := range used {
				images = append(images, img)
			}
			sort.Strings(images)
			want := slices.Concat(tt.artifacts, tt.released)
			sort.Strings(want)
			if !slices.Equal(images, want) {
				t.Errorf("manifests use images %v, want exactly the artifacts %v and the released %v", images, tt.artifacts, tt.released)
			}
		})
	}
}

// TestLocalClusterForwardsTheFrontendAndTheGateway checks that every port
// skaffold's local-cluster profile forwards is a port of a Service the
// profile deploys, and that the frontend and the gateway are both reachable
// from the laptop.
func TestLocalClusterForwardsTheFrontendAndTheGateway(t *testing.T) {
	cfg := profileConfig(t, "local-cluster")
	m := render(t, overlays["local-cluster"])
	want := map[string]int{frontendNamespace + "/" + frontendName: 8080, ingressNamespace + "/" + gatewayName: 8443}
	got := map[string]int{}
	for _, pf := range cfg.PortForward {
		if pf.ResourceType != "service" {
			t.Errorf("forward %+v: want a service", pf)
			continue
		}
		svc := find[corev1.Service](t, m, "Service", pf.Namespace, pf.ResourceName)
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == pf.Port }) {
			t.Errorf("forward of %s/%s port %d: the Service has ports %+v", pf.Namespace, pf.ResourceName, pf.Port, svc.Spec.Ports)
		}
		got[pf.Namespace+"/"+pf.ResourceName] = pf.LocalPort
	}
	if !maps.Equal(got, want) {
		t.Errorf("forwards to local ports %v, want %v", got, want)
	}
}

// TestSkaffoldRebuildsWhenAnImportedPackageChanges checks each artifact's
// dependencies.paths against what its main really imports from this module
// (go list -deps): a package outside them would leave skaffold dev running
// a stale image after an edit there.
func TestSkaffoldRebuildsWhenAnImportedPackageChanges(t *testing.T) {
	var cfg skaffoldConfig
	if err := json.Unmarshal(readSkaffold(t), &cfg); err != nil {
		t.Fatal(err)
	}
	module := strings.TrimSpace(goCmd(t, "list", "-m"))
	for _, a := range cfg.Build.Artifacts {
		t.Run("the "+a.Image+" artifact watches every package of this module it imports", func(t *testing.T) {
			if a.Ko == nil {
				t.Skipf("%s is not built with ko", a.Image)
			}
			paths := a.Ko.Dependencies.Paths
			for _, f := range []string{"go.mod", "go.sum"} {
				if !slices.Contains(paths, f) {
					t.Errorf("dependencies %v lack %s", paths, f)
				}
			}
			deps := goCmd(t, "list", "-tags="+buildTags, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", a.Ko.Main)
			for _, pkg := range strings.Fields(deps) {
				dir, ok := strings.CutPrefix(pkg, module+"/")
				if !ok {
					continue
				}
				if !slices.ContainsFunc(paths, func(p string) bool { return dir == p || strings.HasPrefix(dir, p+"/") }) {
					t.Errorf("%s imports %s, which no dependency path of %v covers", a.Ko.Main, dir, paths)
				}
			}
		})
	}
}

// goCmd runs the go command at the repository root.
func goCmd(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}
