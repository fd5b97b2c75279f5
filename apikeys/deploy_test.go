package apikeys

import (
	"fmt"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const manifestsDir = "../deploy/kubernetes/apikeys"

// rendered is the manifests as `kubectl apply -k` would send them, each
// decoded strictly into its upstream Go type.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	pdbs        map[string]*policyv1.PodDisruptionBudget
	configMaps  map[string]*corev1.ConfigMap
	accounts    map[string]*corev1.ServiceAccount
}

func renderManifests(t *testing.T) rendered {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), manifestsDir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", manifestsDir, err)
	}
	r := rendered{map[string]*appsv1.Deployment{}, map[string]*corev1.Service{}, map[string]*policyv1.PodDisruptionBudget{},
		map[string]*corev1.ConfigMap{}, map[string]*corev1.ServiceAccount{}}
	for _, res := range rm.Resources() {
		js, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.add(js); err != nil {
			t.Errorf("%s: %v", res.CurId(), err)
		}
	}
	return r
}

func (r rendered) add(js []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(js, &tm); err != nil {
		return err
	}
	switch tm.APIVersion + "/" + tm.Kind {
	case "apps/v1/Deployment":
		return decodeInto(js, r.deployments)
	case "v1/Service":
		return decodeInto(js, r.services)
	case "policy/v1/PodDisruptionBudget":
		return decodeInto(js, r.pdbs)
	case "v1/ConfigMap":
		return decodeInto(js, r.configMaps)
	case "v1/ServiceAccount":
		return decodeInto(js, r.accounts)
	case "monitoring.googleapis.com/v1/PodMonitoring":
		return nil // decoded and checked by the deploy package's tests
	}
	return fmt.Errorf("unexpected kind %s/%s", tm.APIVersion, tm.Kind)
}

// decodeInto decodes strictly, as the API server's strict field validation
// does: an unknown or misspelt field is an error.
func decodeInto[T any, PT interface {
	*T
	metav1.Object
}](js []byte, into map[string]PT) error {
	var v T
	if err := yaml.UnmarshalStrict(js, &v); err != nil {
		return err
	}
	p := PT(&v)
	if p.GetNamespace() != "api" {
		return fmt.Errorf("%s is in namespace %q, want api", p.GetName(), p.GetNamespace())
	}
	into[p.GetName()] = p
	return nil
}

func TestManifestsDecodeStrictly(t *testing.T) {
	t.Run("a misspelt field is refused", func(t *testing.T) {
		err := rendered{deployments: map[string]*appsv1.Deployment{}}.add([]byte(
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","namespace":"api"},"spec":{"replica":2}}`))
		if err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Fatalf("got %v, want an unknown field error", err)
		}
	})
	r := renderManifests(t)
	for _, name := range []string{"apikeys", "apikeys-redis"} {
		if r.deployments[name] == nil || r.services[name] == nil {
			t.Errorf("the Deployment and Service %s are missing", name)
		}
	}
	if r.pdbs["apikeys"] == nil || r.accounts["apikeys"] == nil {
		t.Fatalf("the PodDisruptionBudget or ServiceAccount apikeys is missing")
	}
}

func TestDecisionServiceSurvivesADrain(t *testing.T) {
	r := renderManifests(t)
	dep, pdb := r.deployments["apikeys"], r.pdbs["apikeys"]
	if dep == nil || pdb == nil {
		t.Fatal("apikeys Deployment or PodDisruptionBudget missing")
	}
	pods := labels.Set(dep.Spec.Template.Labels)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		got := "unset"
		if dep.Spec.Replicas != nil {
			got = strconv.Itoa(int(*dep.Spec.Replicas))
		}
		t.Errorf("replicas: got %s, want at least 2: every API request waits on this service", got)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || !sel.Matches(pods) {
		t.Errorf("the PodDisruptionBudget's selector %v does not select the pods %v (%v)", pdb.Spec.Selector, pods, err)
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 {
		t.Errorf("minAvailable: got %v, want at least 1", pdb.Spec.MinAvailable)
	}
	for _, name := range []string{"apikeys", "apikeys-redis"} {
		d, s := r.deployments[name], r.services[name]
		if d == nil || s == nil {
			t.Fatalf("%s missing", name)
		}
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Service %s selects %v, not its pods %v", name, s.Spec.Selector, d.Spec.Template.Labels)
		}
		ports := map[string]bool{}
		for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
			ports[p.Name] = true
		}
		for _, p := range s.Spec.Ports {
			if !ports[p.TargetPort.StrVal] {
				t.Errorf("Service %s port %s targets %q, which no container port is named", name, p.Name, p.TargetPort.StrVal)
			}
		}
	}
}

func TestDecisionServiceConfigFitsTheManifests(t *testing.T) {
	r := renderManifests(t)
	dep := r.deployments["apikeys"]
	if dep == nil {
		t.Fatal("apikeys Deployment missing")
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	t.Run("the servers listen on the ports the container declares", func(t *testing.T) {
		for envName, port := range map[string]string{"GRPC_ADDR": "grpc", "HTTP_ADDR": "http", "METRICS_ADDR": "metrics"} {
			_, p, err := net.SplitHostPort(env[envName])
			if err != nil || p != strconv.Itoa(int(ports[port])) {
				t.Errorf("%s=%q, want port %d (%s)", envName, env[envName], ports[port], port)
			}
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.GRPC == nil || c.ReadinessProbe.GRPC.Port != ports["grpc"] {
			t.Errorf("readiness: got %+v, want the gRPC health check on port %d", c.ReadinessProbe, ports["grpc"])
		}
	})
	t.Run("the products file is the repository's, mounted where PRODUCTS_FILE says", func(t *testing.T) {
		var cm *corev1.ConfigMap
		for name, m := range r.configMaps {
			if strings.HasPrefix(name, "apikeys-products") {
				cm = m
			}
		}
		if cm == nil {
			t.Fatal("no apikeys-products ConfigMap")
		}
		want, err := os.ReadFile(productsFile)
		if err != nil {
			t.Fatal(err)
		}
		file := path.Base(env["PRODUCTS_FILE"])
		if cm.Data[file] != string(want) {
			t.Errorf("ConfigMap %s key %s is not %s", cm.Name, file, productsFile)
		}
		if _, err := ParseCatalog([]byte(cm.Data[file])); err != nil {
			t.Errorf("the ConfigMap's products do not load: %v", err)
		}
		mounted := false
		for _, m := range c.VolumeMounts {
			for _, v := range pod.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name && m.MountPath == path.Dir(env["PRODUCTS_FILE"]) {
					mounted = true
				}
			}
		}
		if !mounted {
			t.Errorf("ConfigMap %s is not mounted at %s", cm.Name, path.Dir(env["PRODUCTS_FILE"]))
		}
	})
	t.Run("REDIS_ADDR names the in-cluster Redis Service", func(t *testing.T) {
		host, port, err := net.SplitHostPort(env["REDIS_ADDR"])
		svc := r.services["apikeys-redis"]
		if err != nil || svc == nil || host != svc.Name+"."+svc.Namespace+".svc.cluster.local" ||
			port != strconv.Itoa(int(svc.Spec.Ports[0].Port)) {
			t.Errorf("REDIS_ADDR=%q does not name the apikeys-redis Service (%v)", env["REDIS_ADDR"], err)
		}
	})
	t.Run("the pods run unprivileged", func(t *testing.T) {
		for name, d := range r.deployments {
			ps := d.Spec.Template.Spec
			for _, c := range ps.Containers {
				sc := c.SecurityContext
				if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot ||
					sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s/%s may run as root, write its root filesystem or escalate", name, c.Name)
				}
			}
		}
	})
}
