package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	istionet "istio.io/client-go/pkg/apis/networking/v1"
	istiosec "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// The decision service (cmd/apikeys, deploy/kubernetes/apikeys) as the gke
// overlay deploys it.
const (
	apikeysName     = "apikeys"
	apikeysProvider = "apikeys" // meshConfig.extensionProviders[].name
	apikeysGRPCPort = 9191
)

// extensionProvider reads the provider named name from the repository's
// IstioOperator. meshConfig is decoded into Istio's own MeshConfig message
// with protojson, which refuses unknown fields, so a misspelt provider
// field (say failopen) is an error here rather than a default istiod
// silently applies.
func extensionProvider(t *testing.T, name string) *meshv1alpha1.MeshConfig_ExtensionProvider {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, istioOperatorFile))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := meshConfig(b)
	if err != nil {
		t.Fatalf("%s: %v", istioOperatorFile, err)
	}
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == name {
			return p
		}
	}
	t.Fatalf("%s: meshConfig.extensionProviders has no %q", istioOperatorFile, name)
	return nil
}

// meshConfig decodes an IstioOperator's spec.meshConfig strictly.
func meshConfig(operator []byte) (*meshv1alpha1.MeshConfig, error) {
	var op struct {
		Spec struct {
			MeshConfig json.RawMessage `json:"meshConfig"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(operator, &op); err != nil {
		return nil, err
	}
	var mc meshv1alpha1.MeshConfig
	if err := protojson.Unmarshal(op.Spec.MeshConfig, &mc); err != nil {
		return nil, fmt.Errorf("meshConfig is not a valid Istio MeshConfig: %w", err)
	}
	return &mc, nil
}

// TestMeshConfigDecodesStrictly shows the decoding above refusing what
// istiod would silently default: copies of the repository's operator file
// with one provider field broken.
func TestMeshConfigDecodesStrictly(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, istioOperatorFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new, want string }{
		{"a misspelt failOpen is refused", "failOpen:", "failopen:", `unknown field "failopen"`},
		{"a port that is not a number is refused", "port: 9191", "port: grpc", "port"},
		{"a provider kind Istio does not have is refused", "envoyExtAuthzGrpc:", "envoyExtAuthzGRPC:", `unknown field "envoyExtAuthzGRPC"`},
	}
	if _, err := meshConfig(b); err != nil {
		t.Fatalf("the repository's own file: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(b), tt.old) {
				t.Fatalf("%s has no %q to break", istioOperatorFile, tt.old)
			}
			_, err := meshConfig([]byte(strings.Replace(string(b), tt.old, tt.new, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("with %q for %q: got error %v, want one containing %q", tt.new, tt.old, err, tt.want)
			}
		})
	}
}

func envOf(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// TestDecisionServiceOnGKE checks the decision service the gke overlay
// deploys against what the gateway expects of it: the address of the
// extension provider, fail-closed behaviour that makes it part of every API
// request's path (hence replicas and a disruption budget), the project id
// and the image skaffold builds, and a mesh policy that lets only the
// gateway ask it about keys.
func TestDecisionServiceOnGKE(t *testing.T) {
	m := render(t, overlays["gke"])
	dep := find[appsv1.Deployment](t, m, "Deployment", apiNamespace, apikeysName)
	pod := dep.Spec.Template
	c := pod.Spec.Containers[0]
	provider := extensionProvider(t, apikeysProvider)
	grpc := provider.GetEnvoyExtAuthzGrpc()

	t.Run("the provider is an ext_authz gRPC provider that fails closed with 403", func(t *testing.T) {
		// https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#MeshConfig-ExtensionProvider-EnvoyExternalAuthorizationGrpcProvider:
		// failOpen false denies when the provider cannot be reached;
		// statusOnError is the status then returned.
		if grpc == nil {
			t.Fatalf("provider %q is %T, want envoyExtAuthzGrpc", apikeysProvider, provider.GetProvider())
		}
		if grpc.GetFailOpen() || grpc.GetStatusOnError() != "403" {
			t.Errorf("failOpen %v, statusOnError %q: want false and \"403\" (an API request is refused while the service is down)", grpc.GetFailOpen(), grpc.GetStatusOnError())
		}
	})
	t.Run("the provider's host and port are the gRPC port of the apikeys Service", func(t *testing.T) {
		want := apikeysName + "." + apiNamespace + ".svc.cluster.local"
		if grpc.GetService() != want || grpc.GetPort() != apikeysGRPCPort {
			t.Fatalf("provider at %s:%d, want %s:%d", grpc.GetService(), grpc.GetPort(), want, apikeysGRPCPort)
		}
		svc := find[corev1.Service](t, m, "Service", apiNamespace, apikeysName)
		serviceSelectsDeploymentPods(t, dep, svc)
		i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == apikeysGRPCPort })
		if i < 0 {
			t.Fatalf("Service ports %+v: none is %d", svc.Spec.Ports, apikeysGRPCPort)
		}
		sp := svc.Spec.Ports[i]
		// Istio picks the protocol from the port name's prefix ("grpc" or
		// "grpc-..."): https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/
		if sp.Name != "grpc" && !strings.HasPrefix(sp.Name, "grpc-") {
			t.Errorf("Service port %d is named %q: want grpc[-suffix] so Istio treats it as gRPC", sp.Port, sp.Name)
		}
		j := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == sp.TargetPort.String() })
		if j < 0 {
			t.Fatalf("Service port %d targets %q, which is no container port of %+v", sp.Port, sp.TargetPort.String(), c.Ports)
		}
		if got, want := envOf(c)["GRPC_ADDR"], fmt.Sprintf(":%d", c.Ports[j].ContainerPort); got != want {
			t.Errorf("GRPC_ADDR = %q, want %q (the container port the Service targets)", got, want)
		}
	})
	t.Run("it runs at least two replicas, and a drain leaves one: it fails closed", func(t *testing.T) {
		pdb := find[policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget", apiNamespace, apikeysName)
		if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(labels.Set(pod.Labels)) {
			t.Errorf("PodDisruptionBudget selector %v does not match the pods %v", pdb.Spec.Selector.MatchLabels, pod.Labels)
		}
		replicas := 1 // the API server's default
		if dep.Spec.Replicas != nil {
			replicas = int(*dep.Spec.Replicas)
		}
		if replicas < 2 {
			t.Errorf("replicas %d, want at least 2", replicas)
		}
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 || replicas <= pdb.Spec.MinAvailable.IntValue() {
			t.Errorf("replicas %d, minAvailable %v: want at least one kept, and more replicas than that, or a drain blocks", replicas, pdb.Spec.MinAvailable)
		}
	})
	t.Run("it runs skaffold's image, unprivileged, for this project, with its shared store", func(t *testing.T) {
		checkUnprivileged(t, m, pod.Spec, apiNamespace, apikeysName)
		if c.Image != apikeysName {
			t.Errorf("image %q, want the skaffold artifact name %q", c.Image, apikeysName)
		}
		env := envOf(c)
		if want := projectID(t); env["GOOGLE_CLOUD_PROJECT"] != want {
			t.Errorf("GOOGLE_CLOUD_PROJECT = %q, want %q from istio/project.env", env["GOOGLE_CLOUD_PROJECT"], want)
		}
		// More than one replica must share keys and quota counters.
		host, port, ok := strings.Cut(env["REDIS_ADDR"], ":")
		name, ns, _ := strings.Cut(strings.TrimSuffix(host, ".svc.cluster.local"), ".")
		if !ok {
			t.Fatalf("REDIS_ADDR = %q, want host:port of the shared store", env["REDIS_ADDR"])
		}
		redis := find[corev1.Service](t, m, "Service", ns, name)
		if !slices.ContainsFunc(redis.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port }) {
			t.Errorf("REDIS_ADDR port %s is not a port of Service %s/%s: %+v", port, ns, name, redis.Spec.Ports)
		}
	})
	t.Run("the gateway's CUSTOM policy names the provider", func(t *testing.T) {
		var custom []string
		for _, o := range m.objects {
			if ap, ok := o.Obj.(*istiosec.AuthorizationPolicy); ok && ap.Spec.GetAction().String() == "CUSTOM" {
				custom = append(custom, o.Namespace+"/"+ap.Spec.GetProvider().GetName())
			}
		}
		if !slices.Equal(custom, []string{ingressNamespace + "/" + apikeysProvider}) {
			t.Errorf("CUSTOM policies (namespace/provider) %v, want the one in %s naming %q", custom, ingressNamespace, apikeysProvider)
		}
	})
	t.Run("in the mesh only the gateway's identity may reach the gRPC port", func(t *testing.T) {
		gw := find[appsv1.Deployment](t, m, "Deployment", ingressNamespace, gatewayName)
		// A workload's mesh identity: cluster.local/ns/<namespace>/sa/<service account>,
		// https://istio.io/latest/docs/reference/config/security/authorization-policy/#Source
		gwPrincipal := "cluster.local/ns/" + ingressNamespace + "/sa/" + gw.Spec.Template.Spec.ServiceAccountName
		// With any ALLOW policy selecting a workload, a request that no rule
		// of them matches is denied:
		// https://istio.io/latest/docs/reference/config/security/authorization-policy/
		var rules []string
		for _, o := range m.objects {
			ap, ok := o.Obj.(*istiosec.AuthorizationPolicy)
			if !ok || o.Namespace != apiNamespace || ap.Spec.GetAction().String() != "ALLOW" ||
				!labels.SelectorFromSet(ap.Spec.GetSelector().GetMatchLabels()).Matches(labels.Set(pod.Labels)) {
				continue
			}
			for _, r := range ap.Spec.GetRules() {
				if len(r.GetWhen()) > 0 {
					t.Errorf("%s has a when condition; this test reads only from and to", o)
				}
				var from, ports []string
				for _, f := range r.GetFrom() {
					s := f.GetSource()
					if len(s.GetNamespaces())+len(s.GetRequestPrincipals())+len(s.GetIpBlocks())+len(s.GetNotPrincipals()) > 0 {
						t.Errorf("%s: source %v: want principals only", o, s)
					}
					from = append(from, s.GetPrincipals()...)
				}
				for _, to := range r.GetTo() {
					ports = append(ports, to.GetOperation().GetPorts()...)
				}
				if slices.Contains(ports, strconv.Itoa(apikeysGRPCPort)) || len(ports) == 0 {
					rules = append(rules, fmt.Sprintf("%s from %v", o.Name, from))
					if !slices.Equal(from, []string{gwPrincipal}) {
						t.Errorf("%s admits %v to the gRPC port: want only the gateway's %s", o, from, gwPrincipal)
					}
				}
			}
		}
		if len(rules) == 0 {
			t.Errorf("no ALLOW policy in %s selects the apikeys pods %v: every workload of the mesh could query keys", apiNamespace, pod.Labels)
		}
	})
}

// TestGatewayMayReachEveryRoutedPort checks each VirtualService route
// against the mesh policies of the pods it leads to: where ALLOW policies
// select those pods, one rule must admit the gateway's identity on the
// container port the route arrives at (an operation's ports are the
// destination port of the connection, which at the pod's sidecar is the
// container port:
// https://istio.io/latest/docs/reference/config/security/authorization-policy/#Operation).
// Otherwise istiod's configuration is valid and the route still answers
// 403 "RBAC: access denied" on GKE.
func TestGatewayMayReachEveryRoutedPort(t *testing.T) {
	m := render(t, overlays["gke"])
	gw := find[appsv1.Deployment](t, m, "Deployment", ingressNamespace, gatewayName)
	gwPrincipal := "cluster.local/ns/" + ingressNamespace + "/sa/" + gw.Spec.Template.Spec.ServiceAccountName
	vs := find[istionet.VirtualService](t, m, "VirtualService", ingressNamespace, "api")
	for _, h := range vs.Spec.Http {
		for _, r := range h.Route {
			t.Run("the gateway may reach the pods of route "+h.Name, func(t *testing.T) {
				name, ns, _ := strings.Cut(strings.TrimSuffix(r.Destination.Host, ".svc.cluster.local"), ".")
				svc := find[corev1.Service](t, m, "Service", ns, name)
				i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return uint32(p.Port) == r.Destination.Port.GetNumber() })
				if i < 0 {
					t.Fatalf("Service %s/%s has no port %d", ns, name, r.Destination.Port.GetNumber())
				}
				dep, port := routedContainerPort(t, m, svc, svc.Spec.Ports[i])
				podLabels := labels.Set(dep.Spec.Template.Labels)
				selected, admitted := false, false
				for _, o := range m.objects {
					ap, ok := o.Obj.(*istiosec.AuthorizationPolicy)
					if !ok || o.Namespace != ns || ap.Spec.GetAction().String() != "ALLOW" ||
						!labels.SelectorFromSet(ap.Spec.GetSelector().GetMatchLabels()).Matches(podLabels) {
						continue
					}
					selected = true
					for _, rule := range ap.Spec.GetRules() {
						if ruleAdmits(rule.GetFrom(), rule.GetTo(), gwPrincipal, port) && len(rule.GetWhen()) == 0 {
							admitted = true
						}
					}
				}
				if selected && !admitted {
					t.Errorf("route %s reaches %s/%s on container port %d, but no rule of the ALLOW policies selecting %v admits %s there",
						h.Name, ns, dep.Name, port, podLabels, gwPrincipal)
				}
			})
		}
	}
}

// routedContainerPort finds the Deployment behind svc and the container
// port its service port targets.
func routedContainerPort(t *testing.T, m manifests, svc *corev1.Service, sp corev1.ServicePort) (*appsv1.Deployment, int32) {
	t.Helper()
	for _, o := range m.objects {
		dep, ok := o.Obj.(*appsv1.Deployment)
		if !ok || o.Namespace != svc.Namespace || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
			continue
		}
		if sp.TargetPort.IntValue() != 0 {
			return dep, int32(sp.TargetPort.IntValue())
		}
		for _, c := range dep.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == sp.TargetPort.String() {
					return dep, p.ContainerPort
				}
			}
		}
		t.Fatalf("Service %s/%s port %d targets %q, which no container of %s names", svc.Namespace, svc.Name, sp.Port, sp.TargetPort.String(), dep.Name)
	}
	t.Fatalf("Service %s/%s selects no Deployment's pods", svc.Namespace, svc.Name)
	return nil, 0
}

// ruleAdmits reports whether a rule's from and to admit principal on port,
// for the fields this repository's policies use (principals, ports).
func ruleAdmits(from []*securityv1beta1.Rule_From, to []*securityv1beta1.Rule_To, principal string, port int32) bool {
	okFrom := len(from) == 0
	for _, f := range from {
		if slices.Contains(f.GetSource().GetPrincipals(), principal) || slices.Contains(f.GetSource().GetPrincipals(), "*") {
			okFrom = true
		}
	}
	okTo := len(to) == 0
	for _, tt := range to {
		ports := tt.GetOperation().GetPorts()
		if len(ports) == 0 || slices.Contains(ports, strconv.Itoa(int(port))) {
			okTo = true
		}
	}
	return okFrom && okTo
}

func TestRuleAdmits(t *testing.T) {
	const gw = "cluster.local/ns/istio-ingress/sa/internal-ingressgateway"
	from := func(p ...string) []*securityv1beta1.Rule_From {
		return []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Principals: p}}}
	}
	to := func(p ...string) []*securityv1beta1.Rule_To {
		return []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Ports: p}}}
	}
	tests := []struct {
		name string
		from []*securityv1beta1.Rule_From
		to   []*securityv1beta1.Rule_To
		port int32
		want bool
	}{
		{"the gateway on a named port is admitted", from(gw), to("9191"), 9191, true},
		{"the gateway on another port is not", from(gw), to("9191"), 8080, false},
		{"another principal is not", from("cluster.local/ns/api/sa/backend"), to("8080"), 8080, false},
		{"a rule without ports admits every port", from(gw), nil, 8080, true},
		{"a rule without sources admits every caller", nil, to("8080"), 8080, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ruleAdmits(tt.from, tt.to, gw, tt.port); got != tt.want {
				t.Errorf("ruleAdmits(%v, %v, %s, %d) = %v, want %v", tt.from, tt.to, gw, tt.port, got, tt.want)
			}
		})
	}
}
