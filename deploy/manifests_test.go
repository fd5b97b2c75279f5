package deploy

import (
	"slices"
	"strings"
	"testing"

	istionet "istio.io/client-go/pkg/apis/networking/v1"
	istiosec "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The names fixed for the whole project.
const (
	apiNamespace     = "api"
	backendName      = "backend"
	backendPort      = 8080
	backendSvcPort   = 80
	ingressNamespace = "istio-ingress"
	gatewayName      = "internal-ingressgateway"
	gatewayTLSSecret = "api-gateway-mtls"
	gatewayHost      = "api.internal.example"
	healthzPath      = "/api/healthz"
	frontendIdentity = "acme.internal/ns/frontend/sa/frontend"

	// localProject is the committed project id, the local stack's, which
	// deploy/gcp/configure.sh replaces with the reader's.
	localProject = "demo-acme"

	// The frontend in the local-cluster profile only (on Google Cloud it
	// runs on Cloud Run).
	frontendNamespace = "frontend"
	frontendName      = "frontend"
	frontendPort      = 8080
	frontendHealthz   = "/healthz"
	frontendTLSSecret = "frontend-client-tls"
)

var gatewayLabels = map[string]string{"istio": gatewayName}

// overlays are the kustomizations skaffold applies, by profile.
var overlays = map[string]string{
	"gke":           "deploy/kubernetes/gke",
	"local-cluster": "deploy/kubernetes/local-cluster",
}

func TestOverlaysRenderAndDecodeStrictly(t *testing.T) {
	for profile, dir := range overlays {
		t.Run("the "+profile+" overlay renders into known upstream types", func(t *testing.T) {
			m := render(t, dir)
			if len(m.objects) == 0 {
				t.Fatalf("%s rendered no objects", dir)
			}
			for _, o := range m.objects {
				if o.Kind == "ConfigMap" && o.Name == "project" {
					t.Errorf("%s: the local-config ConfigMap %q reached the output; it is only an input to replacements", dir, o.Name)
				}
				if strings.Contains(string(o.Raw), "PROJECT_ID") {
					t.Errorf("%s: %s still holds the placeholder PROJECT_ID after the replacements", dir, o)
				}
			}
		})
	}
}

func TestBackendIsHardenedAndProbed(t *testing.T) {
	for profile, dir := range overlays {
		m := render(t, dir)
		ns := find[corev1.Namespace](t, m, "Namespace", "", apiNamespace)
		dep := find[appsv1.Deployment](t, m, "Deployment", apiNamespace, backendName)
		pod := dep.Spec.Template.Spec
		t.Run(profile+": the api namespace gets Istio sidecars", func(t *testing.T) {
			if got := ns.Labels["istio-injection"]; got != "enabled" {
				t.Errorf("namespace %s label istio-injection = %q, want enabled", apiNamespace, got)
			}
		})
		t.Run(profile+": the pod runs as non-root without privileges", func(t *testing.T) {
			checkUnprivileged(t, m, pod, apiNamespace, backendName)
		})
		c := pod.Containers[0]
		t.Run(profile+": the container has resources and health probes on "+healthzPath, func(t *testing.T) {
			checkResourcesAndProbes(t, c, backendPort, healthzPath)
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			if env["PORT"] != "8080" {
				t.Errorf("env PORT = %q, want 8080 (the backend listens on :$PORT)", env["PORT"])
			}
			if want := projectID(t); env["GOOGLE_CLOUD_PROJECT"] != want {
				t.Errorf("env GOOGLE_CLOUD_PROJECT = %q, want %q from istio/project.env", env["GOOGLE_CLOUD_PROJECT"], want)
			}
		})
		t.Run(profile+": the Service and the disruption budget select the backend pods", func(t *testing.T) {
			svc := find[corev1.Service](t, m, "Service", apiNamespace, backendName)
			podLabels := serviceSelectsDeploymentPods(t, dep, svc)
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != backendSvcPort || svc.Spec.Ports[0].TargetPort.String() != c.Ports[0].Name ||
				!strings.HasPrefix(svc.Spec.Ports[0].Name, "http") {
				t.Errorf("Service ports %+v, want one http port %d to the container's %q", svc.Spec.Ports, backendSvcPort, c.Ports[0].Name)
			}
			pdb := find[policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget", apiNamespace, backendName)
			if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(podLabels) {
				t.Errorf("PodDisruptionBudget selector %v does not match the pods %v", pdb.Spec.Selector.MatchLabels, podLabels)
			}
		})
	}
}

func TestGKEBackendSurvivesANodeDrain(t *testing.T) {
	m := render(t, overlays["gke"])
	for _, name := range [][2]string{{apiNamespace, backendName}, {ingressNamespace, gatewayName}} {
		t.Run(name[1]+" keeps a replica while another is evicted", func(t *testing.T) {
			dep := find[appsv1.Deployment](t, m, "Deployment", name[0], name[1])
			pdb := find[policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget", name[0], name[1])
			if dep.Spec.Replicas == nil || pdb.Spec.MinAvailable == nil || int(*dep.Spec.Replicas) <= pdb.Spec.MinAvailable.IntValue() {
				t.Errorf("replicas %v, minAvailable %v: want more replicas than minAvailable, or a drain blocks", dep.Spec.Replicas, pdb.Spec.MinAvailable)
			}
		})
	}
}

func TestInternalIngressGateway(t *testing.T) {
	m := render(t, overlays["gke"])
	dep := find[appsv1.Deployment](t, m, "Deployment", ingressNamespace, gatewayName)
	pod := dep.Spec.Template
	t.Run("the Deployment is an injected Istio gateway with the fixed labels and account", func(t *testing.T) {
		if got := pod.Annotations["inject.istio.io/templates"]; got != "gateway" {
			t.Errorf("annotation inject.istio.io/templates = %q, want gateway", got)
		}
		if got := pod.Labels["sidecar.istio.io/inject"]; got != "true" {
			t.Errorf("label sidecar.istio.io/inject = %q, want \"true\"", got)
		}
		if !labels.SelectorFromSet(gatewayLabels).Matches(labels.Set(pod.Labels)) {
			t.Errorf("pod labels %v lack %v", pod.Labels, gatewayLabels)
		}
		if pod.Spec.ServiceAccountName != gatewayName {
			t.Errorf("serviceAccountName = %q, want %q", pod.Spec.ServiceAccountName, gatewayName)
		}
		find[corev1.ServiceAccount](t, m, "ServiceAccount", ingressNamespace, gatewayName)
		if len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Name != "istio-proxy" || pod.Spec.Containers[0].Image != "auto" {
			t.Errorf("containers %+v: want the one istio-proxy placeholder with image auto", pod.Spec.Containers)
		}
	})
	t.Run("its Service is an internal passthrough load balancer on 443", func(t *testing.T) {
		svc := find[corev1.Service](t, m, "Service", ingressNamespace, gatewayName)
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			t.Errorf("type = %s, want LoadBalancer", svc.Spec.Type)
		}
		if got := svc.Annotations["networking.gke.io/load-balancer-type"]; got != "Internal" {
			t.Errorf("annotation networking.gke.io/load-balancer-type = %q, want Internal (else the API is on the internet)", got)
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("selector %v does not match the gateway pods %v", svc.Spec.Selector, pod.Labels)
		}
		gw := find[istionet.Gateway](t, m, "Gateway", ingressNamespace, "api-gateway")
		for _, s := range gw.Spec.Servers {
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.TargetPort.IntValue() == int(s.Port.Number) }) {
				t.Errorf("the Gateway listens on %d but the Service ports %+v do not lead there", s.Port.Number, svc.Spec.Ports)
			}
		}
	})
	t.Run("it may read its TLS secret, and only in its namespace", func(t *testing.T) {
		role := find[rbacv1.Role](t, m, "Role", ingressNamespace, gatewayName+"-sds")
		if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"secrets"}) || slices.Contains(role.Rules[0].Verbs, "*") {
			t.Errorf("role rules %+v: want read access to secrets only", role.Rules)
		}
		rb := find[rbacv1.RoleBinding](t, m, "RoleBinding", ingressNamespace, gatewayName+"-sds")
		want := rbacv1.Subject{Kind: "ServiceAccount", Name: gatewayName, Namespace: ingressNamespace}
		if rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0] != want {
			t.Errorf("binding %+v -> %+v, want %+v -> Role %s", rb.Subjects, rb.RoleRef, want, role.Name)
		}
	})
}

func TestLocalClusterHasNoLoadBalancer(t *testing.T) {
	m := render(t, overlays["local-cluster"])
	svc := find[corev1.Service](t, m, "Service", ingressNamespace, gatewayName)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("gateway Service type = %s, want ClusterIP (reached through skaffold's port forward)", svc.Spec.Type)
	}
	for a := range svc.Annotations {
		if strings.HasPrefix(a, "networking.gke.io/") {
			t.Errorf("the GKE-only annotation %s is still set: %v", a, svc.Annotations)
		}
	}
}

// TestLocalClusterRunsTheFrontend checks the frontend the local-cluster
// profile adds: hardened and probed like the backend, outside the mesh, and
// pointed at the gateway Service with its own client certificate from the
// Secret the tutorial creates. The gke overlay must not carry it: there the
// frontend is on Cloud Run.
func TestLocalClusterRunsTheFrontend(t *testing.T) {
	for _, o := range render(t, overlays["gke"]).objects {
		if o.Namespace == frontendNamespace || (o.Kind == "Namespace" && o.Name == frontendNamespace) {
			t.Errorf("the gke overlay holds %s: the frontend runs on Cloud Run there", o)
		}
	}
	m := render(t, overlays["local-cluster"])
	ns := find[corev1.Namespace](t, m, "Namespace", "", frontendNamespace)
	dep := find[appsv1.Deployment](t, m, "Deployment", frontendNamespace, frontendName)
	pod := dep.Spec.Template.Spec
	t.Run("the frontend namespace has no sidecars, so its own TLS reaches the gateway", func(t *testing.T) {
		if got := ns.Labels["istio-injection"]; got != "disabled" {
			t.Errorf("namespace %s label istio-injection = %q, want disabled", frontendNamespace, got)
		}
		if got := dep.Spec.Template.Labels["sidecar.istio.io/inject"]; got == "true" {
			t.Errorf("pod label sidecar.istio.io/inject = %q", got)
		}
	})
	t.Run("the pod runs as non-root 65532 without privileges", func(t *testing.T) {
		if psc := pod.SecurityContext; psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
			t.Errorf("pod securityContext %+v: want runAsUser 65532", psc)
		}
		checkUnprivileged(t, m, pod, frontendNamespace, frontendName)
	})
	c := pod.Containers[0]
	t.Run("the container has resources and health probes on "+frontendHealthz, func(t *testing.T) {
		checkResourcesAndProbes(t, c, frontendPort, frontendHealthz)
	})
	t.Run("the client certificate comes from the Secret "+frontendTLSSecret+", read-only", func(t *testing.T) {
		var dir string
		for _, e := range c.Env {
			if e.Name == "CLIENT_TLS_DIR" {
				dir = e.Value
			}
		}
		i := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath == dir })
		if dir == "" || i < 0 {
			t.Fatalf("CLIENT_TLS_DIR %q is not a mount path of %+v", dir, c.VolumeMounts)
		}
		vm := c.VolumeMounts[i]
		if !vm.ReadOnly || vm.SubPath != "" {
			t.Errorf("mount %+v: want the whole volume, read-only", vm)
		}
		j := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if j < 0 || pod.Volumes[j].Secret == nil || pod.Volumes[j].Secret.SecretName != frontendTLSSecret || len(pod.Volumes[j].Secret.Items) != 0 {
			t.Fatalf("volume %q is not the whole Secret %s: %+v", vm.Name, frontendTLSSecret, pod.Volumes)
		}
		// The key must be readable by the pod's user or group, by no one else.
		if mode := pod.Volumes[j].Secret.DefaultMode; mode != nil && *mode&0o007 != 0 {
			t.Errorf("secret defaultMode %o lets others read the key", *mode)
		}
	})
	t.Run("GATEWAY_URL is the gateway Service in the cluster, on a port it serves", func(t *testing.T) {
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		svc := find[corev1.Service](t, m, "Service", ingressNamespace, gatewayName)
		want := "https://" + svc.Name + "." + svc.Namespace + ".svc.cluster.local"
		if env["GATEWAY_URL"] != want {
			t.Errorf("GATEWAY_URL = %q, want %q", env["GATEWAY_URL"], want)
		}
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == 443 }) {
			t.Errorf("the gateway Service ports %+v have no 443 for %s", svc.Spec.Ports, want)
		}
		if env["GATEWAY_SERVER_NAME"] != gatewayHost {
			t.Errorf("GATEWAY_SERVER_NAME = %q, want %q, the Gateway's host", env["GATEWAY_SERVER_NAME"], gatewayHost)
		}
	})
	t.Run("the Service selects the frontend pods", func(t *testing.T) {
		svc := find[corev1.Service](t, m, "Service", frontendNamespace, frontendName)
		serviceSelectsDeploymentPods(t, dep, svc)
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != c.Ports[0].Name || !strings.HasPrefix(svc.Spec.Ports[0].Name, "http") {
			t.Errorf("Service ports %+v, want one http port to the container's %q", svc.Spec.Ports, c.Ports[0].Name)
		}
	})
}

// TestIstioPolicyFitsTheManifests checks that istio/ and deploy/kubernetes/
// agree on every name one of them gives the other.
func TestIstioPolicyFitsTheManifests(t *testing.T) {
	m := render(t, overlays["gke"])
	gwPods := labels.Set(find[appsv1.Deployment](t, m, "Deployment", ingressNamespace, gatewayName).Spec.Template.Labels)
	t.Run("the Gateway selects the gateway pods and serves the fixed host with the fixed secret", func(t *testing.T) {
		gw := find[istionet.Gateway](t, m, "Gateway", ingressNamespace, "api-gateway")
		if !labels.SelectorFromSet(gw.Spec.Selector).Matches(gwPods) {
			t.Errorf("Gateway selector %v does not match the gateway pods %v", gw.Spec.Selector, gwPods)
		}
		for _, s := range gw.Spec.Servers {
			if s.Tls == nil || s.Tls.Mode.String() != "MUTUAL" || s.Tls.CredentialName != gatewayTLSSecret {
				t.Errorf("server %s: tls %+v, want MUTUAL with credentialName %s", s.Port.Name, s.Tls, gatewayTLSSecret)
			}
			if !slices.Equal(s.Hosts, []string{gatewayHost}) {
				t.Errorf("server %s hosts %v, want [%s]", s.Port.Name, s.Hosts, gatewayHost)
			}
		}
	})
	t.Run("every policy in istio-ingress selects the gateway pods", func(t *testing.T) {
		for _, o := range m.objects {
			if o.Namespace != ingressNamespace {
				continue
			}
			var sel map[string]string
			switch v := o.Obj.(type) {
			case *istiosec.RequestAuthentication:
				sel = v.Spec.GetSelector().GetMatchLabels()
			case *istiosec.AuthorizationPolicy:
				sel = v.Spec.GetSelector().GetMatchLabels()
			default:
				continue
			}
			if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(gwPods) {
				t.Errorf("%s selects %v, which is not the gateway pods %v", o, sel, gwPods)
			}
		}
	})
	t.Run("every VirtualService route goes to a port of a Service that exists", func(t *testing.T) {
		vs := find[istionet.VirtualService](t, m, "VirtualService", ingressNamespace, "api")
		routed := map[string]bool{}
		for _, h := range vs.Spec.Http {
			for _, r := range h.Route {
				name, ns, ok := strings.Cut(strings.TrimSuffix(r.Destination.Host, ".svc.cluster.local"), ".")
				if !ok || strings.Contains(ns, ".") {
					t.Errorf("route %s goes to %s, want <service>.<namespace>.svc.cluster.local", h.Name, r.Destination.Host)
					continue
				}
				svc := find[corev1.Service](t, m, "Service", ns, name)
				if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return uint32(p.Port) == r.Destination.Port.GetNumber() }) {
					t.Errorf("route %s goes to port %d of Service %s/%s, which has no such port", h.Name, r.Destination.Port.GetNumber(), ns, name)
				}
				routed[name] = true
			}
		}
		if !routed[backendName] {
			t.Errorf("no route goes to the backend Service %s", backendName)
		}
	})
	t.Run("the backend checks the gateway's machine allowlist and audience", func(t *testing.T) {
		ra := find[istiosec.RequestAuthentication](t, m, "RequestAuthentication", ingressNamespace, "identity-platform-jwt")
		var audiences []string
		for _, r := range ra.Spec.JwtRules {
			if r.Issuer == "https://accounts.google.com" {
				audiences = r.Audiences
			}
		}
		ap := find[istiosec.AuthorizationPolicy](t, m, "AuthorizationPolicy", ingressNamespace, "api-gateway")
		var allowed []string
		for _, r := range ap.Spec.Rules {
			for _, c := range r.When {
				if c.Key == "request.auth.claims[email]" {
					allowed = append(allowed, c.Values...)
				}
			}
		}
		dep := find[appsv1.Deployment](t, m, "Deployment", apiNamespace, backendName)
		env := map[string]string{}
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		if len(allowed) == 0 || env["MACHINE_CALLERS"] != strings.Join(allowed, ",") {
			t.Errorf("backend MACHINE_CALLERS=%q, want the gateway's allowlist %q", env["MACHINE_CALLERS"], allowed)
		}
		if len(audiences) != 1 || env["API_AUDIENCE"] != audiences[0] {
			t.Errorf("backend API_AUDIENCE=%q, want the Google rule's audience %v", env["API_AUDIENCE"], audiences)
		}
	})
	t.Run("the token rules and the principals name this project and the frontend", func(t *testing.T) {
		project := projectID(t)
		ra := find[istiosec.RequestAuthentication](t, m, "RequestAuthentication", ingressNamespace, "identity-platform-jwt")
		for _, r := range ra.Spec.JwtRules {
			if r.Issuer == "https://accounts.google.com" {
				// Workloads' Google ID tokens: the audience the apiclient job asks for.
				var jobAudience string
				for _, e := range readAPIClientJob(t).Spec.Template.Spec.Template.Spec.Containers[0].Env {
					if e.Name == "API_AUDIENCE" {
						jobAudience = e.Value
					}
				}
				if !slices.Equal(r.Audiences, []string{jobAudience}) {
					t.Errorf("Google jwt rule audiences %v, want the apiclient job's API_AUDIENCE %q", r.Audiences, jobAudience)
				}
				continue
			}
			if r.Issuer != "https://securetoken.google.com/"+project || !slices.Equal(r.Audiences, []string{project}) {
				t.Errorf("jwt rule issuer %q audiences %v, want the issuer and audience of project %s", r.Issuer, r.Audiences, project)
			}
		}
		ap := find[istiosec.AuthorizationPolicy](t, m, "AuthorizationPolicy", ingressNamespace, "api-gateway")
		var principals []string
		for _, r := range ap.Spec.Rules {
			for _, f := range r.From {
				principals = append(principals, f.Source.Principals...)
			}
		}
		if !slices.Contains(principals, frontendIdentity) {
			t.Errorf("gateway principals %v lack the frontend's certificate identity %s", principals, frontendIdentity)
		}
		backendPolicy := find[istiosec.AuthorizationPolicy](t, m, "AuthorizationPolicy", apiNamespace, backendName)
		wantGW := "cluster.local/ns/" + ingressNamespace + "/sa/" + gatewayName
		if len(backendPolicy.Spec.Rules) == 0 || !slices.Contains(backendPolicy.Spec.Rules[0].From[0].Source.Principals, wantGW) {
			t.Errorf("backend policy %v does not admit the gateway's identity %s", backendPolicy.Spec.Rules, wantGW)
		}
		dep := find[appsv1.Deployment](t, m, "Deployment", apiNamespace, backendName)
		if !labels.SelectorFromSet(backendPolicy.Spec.GetSelector().GetMatchLabels()).Matches(labels.Set(dep.Spec.Template.Labels)) {
			t.Errorf("backend policy selects %v, not the backend pods %v", backendPolicy.Spec.GetSelector().GetMatchLabels(), dep.Spec.Template.Labels)
		}
	})
}

func TestDecodeRefusesWhatTheAPIServerWould(t *testing.T) {
	tests := []struct{ name, json, want string }{
		{"a misspelt Deployment field is an error",
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replica":2}}`, `unknown field "replica"`},
		{"a misspelt AuthorizationPolicy field is an error, not an open door",
			`{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"name":"x"},"spec":{"rules":[{"form":[]}]}}`, `unknown field "form"`},
		{"an unknown envelope field on an Istio object is an error",
			`{"apiVersion":"networking.istio.io/v1","kind":"Gateway","metadata":{"name":"x"},"spec":{},"extra":1}`, `unknown field "extra"`},
		{"an unexpected kind is an error",
			`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}`, "no upstream type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decode: got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// checkUnprivileged checks what every workload of ours must be: one
// container, run as non-root under its own service account, with a
// read-only root file system, no privilege escalation and no capabilities.
func checkUnprivileged(t *testing.T, m manifests, pod corev1.PodSpec, namespace, name string) {
	t.Helper()
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("pod securityContext.runAsNonRoot is not true: %+v", pod.SecurityContext)
	}
	if pod.ServiceAccountName != name {
		t.Errorf("serviceAccountName = %q, want %q", pod.ServiceAccountName, name)
	}
	find[corev1.ServiceAccount](t, m, "ServiceAccount", namespace, name)
	if len(pod.Containers) != 1 {
		t.Fatalf("got %d containers, want the one %s container", len(pod.Containers), name)
	}
	sc := pod.Containers[0].SecurityContext
	switch {
	case sc == nil:
		t.Fatalf("the %s container has no securityContext", name)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
		t.Errorf("capabilities drop %v, want ALL", sc.Capabilities)
	}
}

// checkResourcesAndProbes checks that c asks for CPU and memory, caps its
// memory, serves one port, and is probed for readiness and liveness with
// an HTTP GET of path on that port.
func checkResourcesAndProbes(t *testing.T, c corev1.Container, port int32, path string) {
	t.Helper()
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port {
		t.Fatalf("ports %+v, want the one container port %d", c.Ports, port)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe %+v: want an HTTP GET", name, p)
			continue
		}
		if p.HTTPGet.Path != path || p.HTTPGet.Port.String() != c.Ports[0].Name {
			t.Errorf("%s probe GET %s on port %s, want %s on %q", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), path, c.Ports[0].Name)
		}
	}
}

// serviceSelectsDeploymentPods checks that the Deployment's selector and the
// Service's both match the Deployment's pod template, and returns its labels.
func serviceSelectsDeploymentPods(t *testing.T, dep *appsv1.Deployment, svc *corev1.Service) labels.Set {
	t.Helper()
	podLabels := labels.Set(dep.Spec.Template.Labels)
	if !labels.SelectorFromSet(dep.Spec.Selector.MatchLabels).Matches(podLabels) {
		t.Errorf("Deployment selector %v does not match its pods %v", dep.Spec.Selector.MatchLabels, podLabels)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Errorf("Service selector %v does not match the pods %v", svc.Spec.Selector, podLabels)
	}
	return podLabels
}

// TestGoogleCredentialsComeFromThePlatformOrTheDevelopersSecret checks where
// the backend and the frontend get the Application Default Credentials their
// Identity Platform calls need (the backend's revocation check, the
// frontend's revocation at sign-out). On GKE: the metadata server, through
// Workload Identity Federation, so no credentials file may be configured. On
// a laptop cluster, which has no metadata server: the developer's file, from
// the Secret google-adc the tutorial creates, readable by the pod's group
// and no one else.
func TestGoogleCredentialsComeFromThePlatformOrTheDevelopersSecret(t *testing.T) {
	const secret = "google-adc"
	adcFile := func(c corev1.Container) string {
		for _, e := range c.Env {
			if e.Name == "GOOGLE_APPLICATION_CREDENTIALS" {
				return e.Value
			}
		}
		return ""
	}
	t.Run("on GKE the backend names no credentials file: the metadata server gives its Workload Identity", func(t *testing.T) {
		dep := find[appsv1.Deployment](t, render(t, overlays["gke"]), "Deployment", apiNamespace, backendName)
		if f := adcFile(dep.Spec.Template.Spec.Containers[0]); f != "" {
			t.Errorf("GOOGLE_APPLICATION_CREDENTIALS = %q: a key file would bypass Workload Identity", f)
		}
	})
	m := render(t, overlays["local-cluster"])
	for _, w := range []struct{ namespace, name string }{{apiNamespace, backendName}, {frontendNamespace, frontendName}} {
		t.Run("on a laptop cluster "+w.namespace+"/"+w.name+" reads the developer's credentials from the Secret "+secret, func(t *testing.T) {
			pod := find[appsv1.Deployment](t, m, "Deployment", w.namespace, w.name).Spec.Template.Spec
			c := pod.Containers[0]
			file := adcFile(c)
			i := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
				return file != "" && strings.HasPrefix(file, vm.MountPath+"/")
			})
			if i < 0 {
				t.Fatalf("GOOGLE_APPLICATION_CREDENTIALS %q is not in any mount of %+v", file, c.VolumeMounts)
			}
			vm := c.VolumeMounts[i]
			j := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
			if j < 0 || pod.Volumes[j].Secret == nil || pod.Volumes[j].Secret.SecretName != secret {
				t.Fatalf("mount %s is not the Secret %s: %+v", vm.Name, secret, pod.Volumes)
			}
			if want := vm.MountPath + "/adc.json"; file != want || !vm.ReadOnly {
				t.Errorf("file %q from mount %+v: want %s, read-only", file, vm, want)
			}
			mode := pod.Volumes[j].Secret.DefaultMode
			if mode == nil || *mode&0o007 != 0 || *mode&0o040 == 0 {
				t.Errorf("secret defaultMode %v: want the group to read and others not", mode)
			}
			// Secret files belong to root unless fsGroup gives them the pod's group.
			if sc := pod.SecurityContext; sc == nil || sc.FSGroup == nil || sc.RunAsGroup == nil || *sc.FSGroup != *sc.RunAsGroup {
				t.Errorf("pod securityContext %+v: want fsGroup equal to runAsGroup, so the process can read the file", sc)
			}
		})
	}
}
