package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The base's one substitution point: istio/kustomization.yaml generates the
// ConfigMap its replacements read from this env file, so rendering for a
// project means giving this key another value, exactly as a user would.
const (
	ProjectFile = "project.env"
	ProjectKey  = "PROJECT_ID"
)

// projectIDPattern is Google Cloud's rule for project ids. Checking it keeps
// the id from smuggling a "/" or a newline into the issuer or the env file.
var projectIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)

// Resources are the Istio resources of one rendering, decoded into the
// upstream types, in the order kustomize emitted them.
type Resources struct {
	Gateways               []*networkingv1.Gateway
	VirtualServices        []*networkingv1.VirtualService
	RequestAuthentications []*securityv1.RequestAuthentication
	AuthorizationPolicies  []*securityv1.AuthorizationPolicy
	PeerAuthentications    []*securityv1.PeerAuthentication

	// origins names the file each resource came from ("kind ns/name" ->
	// path), so later validation errors can point at it too.
	origins map[string]string
}

// Load renders the kustomize directory dir (the repository's istio/) for
// projectID and decodes every document strictly. Any error names the file,
// the resource and the field at fault.
func Load(dir, projectID string) (*Resources, error) {
	if !projectIDPattern.MatchString(projectID) {
		return nil, fmt.Errorf("loading %s: project id %q is not a Google Cloud project id", dir, projectID)
	}
	memfs, root, err := copyToMemory(dir)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", dir, err)
	}
	if err := setProjectID(memfs, root, projectID); err != nil {
		return nil, fmt.Errorf("loading %s: %w", dir, err)
	}
	if err := enableOriginAnnotations(memfs, root); err != nil {
		return nil, fmt.Errorf("loading %s: %w", dir, err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(memfs, root)
	if err != nil {
		return nil, fmt.Errorf("rendering %s with kustomize: %w", dir, err)
	}
	res := &Resources{origins: map[string]string{}}
	var errs []error
	for _, r := range m.Resources() {
		if err := res.add(dir, r); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return res, nil
}

// copyToMemory copies the directory tree at dir into an in-memory file system
// so the substitution never touches the files on disk.
func copyToMemory(dir string) (filesys.FileSystem, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	// WalkDir does not follow a symlinked root, and a checkout mounted or
	// linked elsewhere is common: walk what the link points at.
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, "", err
	}
	memfs := filesys.MakeFsInMemory()
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return memfs.MkdirAll(p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return memfs.WriteFile(p, b)
	})
	if err != nil {
		return nil, "", err
	}
	return memfs, abs, nil
}

// setProjectID rewrites the PROJECT_ID line of the base's env file.
func setProjectID(memfs filesys.FileSystem, root, projectID string) error {
	p := filepath.Join(root, ProjectFile)
	b, err := memfs.ReadFile(p)
	if err != nil {
		return fmt.Errorf("the base must declare its project id in %s: %w", ProjectFile, err)
	}
	lines := strings.Split(string(b), "\n")
	found := false
	for i, l := range lines {
		if k, _, ok := strings.Cut(strings.TrimSpace(l), "="); ok && strings.TrimSpace(k) == ProjectKey {
			lines[i] = ProjectKey + "=" + projectID
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%s: no %s= line to substitute", ProjectFile, ProjectKey)
	}
	return memfs.WriteFile(p, []byte(strings.Join(lines, "\n")))
}

// enableOriginAnnotations turns on kustomize's originAnnotations build
// metadata in the in-memory copy, so that every rendered resource says which
// file it came from and errors can name it.
func enableOriginAnnotations(memfs filesys.FileSystem, root string) error {
	var p string
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if memfs.Exists(filepath.Join(root, name)) {
			p = filepath.Join(root, name)
			break
		}
	}
	if p == "" {
		return errors.New("no kustomization.yaml")
	}
	b, err := memfs.ReadFile(p)
	if err != nil {
		return err
	}
	var k types.Kustomization
	if err := yaml.Unmarshal(b, &k); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(p), err)
	}
	if slices.Contains(k.BuildMetadata, types.OriginAnnotations) {
		return nil
	}
	k.BuildMetadata = append(k.BuildMetadata, types.OriginAnnotations)
	out, err := yaml.Marshal(&k)
	if err != nil {
		return err
	}
	return memfs.WriteFile(p, out)
}

// envelope is a Kubernetes object with its spec kept raw: the spec is a
// protobuf message and is decoded by protojson, which (unlike the generated
// UnmarshalJSON of istio.io/api, which allows unknown fields) rejects them.
type envelope struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
}

func (rs *Resources) add(dir string, r *resource.Resource) error {
	id := fmt.Sprintf("%s %s", r.GetKind(), qualifiedName(r.GetNamespace(), r.GetName()))
	file := dir
	if o, err := r.GetOrigin(); err == nil && o != nil && o.Path != "" {
		file = filepath.Join(dir, o.Path)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s: %s", file, id, fmt.Sprintf(format, args...))
	}
	b, err := r.MarshalJSON()
	if err != nil {
		return fail("%v", err)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return fail("%v", err)
	}
	// Kustomize's bookkeeping, not part of the resource.
	delete(env.Metadata.Annotations, "config.kubernetes.io/origin")
	if len(env.Metadata.Annotations) == 0 {
		env.Metadata.Annotations = nil
	}
	rs.origins[id] = file
	var spec proto.Message
	switch env.APIVersion + "/" + env.Kind {
	case "networking.istio.io/v1/Gateway", "networking.istio.io/v1beta1/Gateway", "networking.istio.io/v1alpha3/Gateway":
		o := &networkingv1.Gateway{TypeMeta: typeMeta(env), ObjectMeta: env.Metadata}
		spec = &o.Spec
		rs.Gateways = append(rs.Gateways, o)
	case "networking.istio.io/v1/VirtualService", "networking.istio.io/v1beta1/VirtualService", "networking.istio.io/v1alpha3/VirtualService":
		o := &networkingv1.VirtualService{TypeMeta: typeMeta(env), ObjectMeta: env.Metadata}
		spec = &o.Spec
		rs.VirtualServices = append(rs.VirtualServices, o)
	case "security.istio.io/v1/RequestAuthentication", "security.istio.io/v1beta1/RequestAuthentication":
		o := &securityv1.RequestAuthentication{TypeMeta: typeMeta(env), ObjectMeta: env.Metadata}
		spec = &o.Spec
		rs.RequestAuthentications = append(rs.RequestAuthentications, o)
	case "security.istio.io/v1/AuthorizationPolicy", "security.istio.io/v1beta1/AuthorizationPolicy":
		o := &securityv1.AuthorizationPolicy{TypeMeta: typeMeta(env), ObjectMeta: env.Metadata}
		spec = &o.Spec
		rs.AuthorizationPolicies = append(rs.AuthorizationPolicies, o)
	case "security.istio.io/v1/PeerAuthentication", "security.istio.io/v1beta1/PeerAuthentication":
		o := &securityv1.PeerAuthentication{TypeMeta: typeMeta(env), ObjectMeta: env.Metadata}
		spec = &o.Spec
		rs.PeerAuthentications = append(rs.PeerAuthentications, o)
	default:
		return fail("apiVersion %s kind %s is not an Istio resource the local gateway knows", env.APIVersion, env.Kind)
	}
	if len(env.Spec) == 0 {
		return nil
	}
	var raw any
	if err := json.Unmarshal(env.Spec, &raw); err != nil {
		return fail("spec: %v", err)
	}
	if err := checkFields(spec.ProtoReflect().Descriptor(), raw, "spec"); err != nil {
		return fail("%v", err)
	}
	if err := protojson.Unmarshal(env.Spec, spec); err != nil {
		return fail("spec: %v", err)
	}
	return nil
}

// origin names a resource for an error: "istio/gateway.yaml: Gateway ns/name".
func (rs *Resources) origin(kind, ns, name string) string {
	id := kind + " " + qualifiedName(ns, name)
	if f := rs.origins[id]; f != "" {
		return f + ": " + id
	}
	return id
}

func typeMeta(env envelope) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: env.APIVersion, Kind: env.Kind}
}

func qualifiedName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// checkFields walks a decoded JSON value alongside the message descriptor and
// reports the first unknown field with its full path, e.g.
// spec.servers[0].tls.credentialNme, which protojson's own error does not.
func checkFields(md protoreflect.MessageDescriptor, v any, path string) error {
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return nil // well-known types have their own JSON forms
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil // a type mismatch; protojson reports it
	}
	fields := md.Fields()
	for _, k := range sortedKeys(obj) {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		if fd == nil {
			return fmt.Errorf("%s: unknown field %q", path, k)
		}
		if err := checkValue(fd, obj[k], path+"."+k); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(fd protoreflect.FieldDescriptor, v any, path string) error {
	switch {
	case fd.IsMap():
		if fd.MapValue().Kind() != protoreflect.MessageKind {
			return nil
		}
		m, _ := v.(map[string]any)
		for _, k := range sortedKeys(m) {
			if err := checkFields(fd.MapValue().Message(), m[k], fmt.Sprintf("%s[%q]", path, k)); err != nil {
				return err
			}
		}
	case fd.IsList():
		if fd.Kind() != protoreflect.MessageKind {
			return nil
		}
		l, _ := v.([]any)
		for i, e := range l {
			if err := checkFields(fd.Message(), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case fd.Kind() == protoreflect.MessageKind:
		return checkFields(fd.Message(), v, path)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
