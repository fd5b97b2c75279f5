package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	istionet "istio.io/client-go/pkg/apis/networking/v1"
	istiosec "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// repoRoot is where the repository's top-level files are, seen from this
// package's directory (go test runs in it).
const repoRoot = ".."

// manifests is one kustomize overlay rendered and strictly decoded.
type manifests struct {
	yaml    []byte   // the rendered stream, as kubectl apply -k would send it
	objects []object // every object, in order
}

// object is one decoded resource: Obj is a pointer to its upstream Go type.
type object struct {
	Kind, Namespace, Name string
	Obj                   any
	Raw                   []byte // its JSON, for istioctl and error messages
}

func (o object) String() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

// render builds the kustomization in dir (relative to the repository root)
// with kustomize's library, the code behind `kubectl apply -k`, and decodes
// every resulting object strictly: an unknown or misspelt field anywhere is
// an error, as is a kind this project does not expect.
func render(t *testing.T, dir string) manifests {
	t.Helper()
	return renderAt(t, repoRoot, dir)
}

// renderAt is render for a copy of the repository at root.
func renderAt(t *testing.T, root, dir string) manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: rendering YAML: %v", dir, err)
	}
	m := manifests{yaml: out}
	for _, r := range rm.Resources() {
		js, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, r.CurId(), err)
		}
		o, err := decode(js)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		m.objects = append(m.objects, o)
	}
	return m
}

// decode strictly decodes one object by its apiVersion and kind.
func decode(js []byte) (object, error) {
	var meta struct {
		metav1.TypeMeta
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		return object{}, err
	}
	o := object{Kind: meta.Kind, Namespace: meta.Metadata.Namespace, Name: meta.Metadata.Name, Raw: js}
	gvk := meta.APIVersion + "/" + meta.Kind
	var err error
	switch gvk {
	case "v1/Namespace":
		o.Obj, err = strict[corev1.Namespace](js)
	case "v1/ServiceAccount":
		o.Obj, err = strict[corev1.ServiceAccount](js)
	case "v1/Service":
		o.Obj, err = strict[corev1.Service](js)
	case "v1/ConfigMap":
		o.Obj, err = strict[corev1.ConfigMap](js)
	case "apps/v1/Deployment":
		o.Obj, err = strict[appsv1.Deployment](js)
	case "policy/v1/PodDisruptionBudget":
		o.Obj, err = strict[policyv1.PodDisruptionBudget](js)
	case "rbac.authorization.k8s.io/v1/Role":
		o.Obj, err = strict[rbacv1.Role](js)
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		o.Obj, err = strict[rbacv1.RoleBinding](js)
	case "networking.istio.io/v1/Gateway":
		var g istionet.Gateway
		err = strictIstio(js, &g.TypeMeta, &g.ObjectMeta, &g.Spec)
		o.Obj = &g
	case "networking.istio.io/v1/VirtualService":
		var v istionet.VirtualService
		err = strictIstio(js, &v.TypeMeta, &v.ObjectMeta, &v.Spec)
		o.Obj = &v
	case "security.istio.io/v1/RequestAuthentication":
		var r istiosec.RequestAuthentication
		err = strictIstio(js, &r.TypeMeta, &r.ObjectMeta, &r.Spec)
		o.Obj = &r
	case "security.istio.io/v1/AuthorizationPolicy":
		var a istiosec.AuthorizationPolicy
		err = strictIstio(js, &a.TypeMeta, &a.ObjectMeta, &a.Spec)
		o.Obj = &a
	case "security.istio.io/v1/PeerAuthentication":
		var p istiosec.PeerAuthentication
		err = strictIstio(js, &p.TypeMeta, &p.ObjectMeta, &p.Spec)
		o.Obj = &p
	case "monitoring.googleapis.com/v1/PodMonitoring":
		o.Obj, err = strict[podMonitoring](js)
	default:
		return o, fmt.Errorf("%s: no upstream type is registered here for %s: add it to decode", o, gvk)
	}
	if err != nil {
		return o, fmt.Errorf("%s: %w", o, err)
	}
	return o, nil
}

// strict decodes YAML or JSON into a T (a Kubernetes, Knative or Cloud Run
// object), refusing unknown fields and duplicate keys, as the API server's
// strict field validation does.
func strict[T any](js []byte) (*T, error) {
	var v T
	if err := yaml.UnmarshalStrict(js, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// strictIstio decodes an Istio object. The client-go types' spec fields use
// Istio's generated JSON unmarshalers, which skip unknown fields for forward
// compatibility; here the spec goes through protojson without DiscardUnknown
// instead, so a misspelt field is an error, not a silently open policy.
func strictIstio(js []byte, tm *metav1.TypeMeta, om *metav1.ObjectMeta, spec proto.Message) error {
	var env struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            json.RawMessage   `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(js, &env); err != nil {
		return err
	}
	*tm, *om = env.TypeMeta, env.Metadata
	if err := (protojson.UnmarshalOptions{}).Unmarshal(env.Spec, spec); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	return nil
}

// find returns the one object of that kind, namespace and name.
func find[T any](t *testing.T, m manifests, kind, ns, name string) *T {
	t.Helper()
	for _, o := range m.objects {
		if o.Kind == kind && o.Namespace == ns && o.Name == name {
			v, ok := o.Obj.(*T)
			if !ok {
				t.Fatalf("%s decoded as %T", o, o.Obj)
			}
			return v
		}
	}
	t.Fatalf("rendered manifests have no %s %s/%s; they have: %v", kind, ns, name, m.objects)
	return nil
}

// projectID reads the one project id substitution, istio/project.env.
func projectID(t *testing.T) string {
	t.Helper()
	return projectIDAt(t, repoRoot)
}

func projectIDAt(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "istio", "project.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PROJECT_ID="); ok {
			return v
		}
	}
	t.Fatalf("istio/project.env sets no PROJECT_ID")
	return ""
}

// yamlUnmarshal decodes YAML or JSON strictly.
func yamlUnmarshal(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) }
