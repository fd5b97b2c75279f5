package deploy

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	istiosec "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// podMonitoring mirrors the fields of Managed Service for Prometheus's
// PodMonitoring (monitoring.googleapis.com/v1) that this repository uses.
// The operator's Go types are not a dependency of this module; the fields
// are those of the API reference,
// https://github.com/GoogleCloudPlatform/prometheus-engine/blob/main/doc/api.md#monitoring.googleapis.com/v1.PodMonitoringSpec
// and #monitoring.googleapis.com/v1.ScrapeEndpoint. Decoding refuses any
// other field, so a misspelt one fails here rather than being ignored.
type podMonitoring struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []scrapeEndpoint     `json:"endpoints"`
	} `json:"spec"`
}

type scrapeEndpoint struct {
	// Port is the name or number of a container port of the selected pods.
	Port intstr.IntOrString `json:"port"`
	// Path defaults to /metrics.
	Path     string `json:"path,omitempty"`
	Scheme   string `json:"scheme,omitempty"`
	Interval string `json:"interval,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
}

func TestPodMonitoringDecodesStrictly(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"the documented fields decode", "spec: {selector: {matchLabels: {app: a}}, endpoints: [{port: metrics, path: /metrics, interval: 30s}]}", ""},
		{"a misspelt endpoint field is refused", "spec: {selector: {matchLabels: {app: a}}, endpoints: [{port: metrics, intervall: 30s}]}", "intervall"},
		{"a field of another CRD is refused", "spec: {selector: {matchLabels: {app: a}}, podMetricsEndpoints: [{port: metrics}]}", "podMetricsEndpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, err := yaml.YAMLToJSON([]byte("apiVersion: monitoring.googleapis.com/v1\nkind: PodMonitoring\nmetadata: {name: x}\n" + tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			_, err = strict[podMonitoring](js)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
}

// TestManagedPrometheusScrapesTheDecisionService follows a scrape: the
// PodMonitoring's selector to the apikeys pods, its port to the container
// port cmd/apikeys serves /metrics on, and the mesh policies of that port,
// which must let a caller without a sidecar GET /metrics there and nothing
// more, while every other port stays mTLS and gateway-only.
func TestManagedPrometheusScrapesTheDecisionService(t *testing.T) {
	m := render(t, overlays["gke"])
	pm := find[podMonitoring](t, m, "PodMonitoring", apiNamespace, apikeysName)
	dep := find[appsv1.Deployment](t, m, "Deployment", apiNamespace, apikeysName)
	podLabels := labels.Set(dep.Spec.Template.Labels)

	t.Run("the selector picks the apikeys pods and no other Deployment's", func(t *testing.T) {
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Empty() || !sel.Matches(podLabels) {
			t.Fatalf("selector %q does not match the apikeys pods %v", sel, podLabels)
		}
		for _, o := range m.objects {
			if d, ok := o.Obj.(*appsv1.Deployment); ok && o.Namespace == apiNamespace && d.Name != apikeysName &&
				sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("selector %q also matches %s, which has no metrics port", sel, o)
			}
		}
	})

	if len(pm.Spec.Endpoints) != 1 {
		t.Fatalf("endpoints %+v: want exactly one, the metrics port", pm.Spec.Endpoints)
	}
	ep := pm.Spec.Endpoints[0]
	var port int32
	t.Run("the endpoint is a named container port on which cmd/apikeys serves /metrics", func(t *testing.T) {
		if ep.Port.Type != intstr.String {
			t.Fatalf("port %s: want a container port's name (a number does not follow the Deployment)", ep.Port.String())
		}
		c := dep.Spec.Template.Spec.Containers[0]
		i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == ep.Port.StrVal })
		if i < 0 {
			t.Fatalf("port %q is no container port of %s: %+v", ep.Port.StrVal, c.Name, c.Ports)
		}
		port = c.Ports[i].ContainerPort
		if got, want := envOf(c)["METRICS_ADDR"], ":"+strconv.Itoa(int(port)); got != want {
			t.Errorf("METRICS_ADDR = %q, want %q (the container port scraped)", got, want)
		}
		if ep.Path != "" && ep.Path != "/metrics" {
			t.Errorf("path %q, want /metrics (the only path of the metrics port)", ep.Path)
		}
		if ep.Scheme != "" && ep.Scheme != "http" {
			t.Errorf("scheme %q, want http: the collector has no mesh certificate", ep.Scheme)
		}
		// Prometheus durations such as 30s or 1m are also Go durations.
		if d, err := time.ParseDuration(ep.Interval); err != nil || d <= 0 {
			t.Errorf("interval %q: want a positive duration (%v)", ep.Interval, err)
		}
		// The collector scrapes pod IPs, but the sidecar takes a port's
		// protocol from the Service port that targets it
		// (https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/);
		// an ALLOW rule's paths and methods match only HTTP.
		svc := find[corev1.Service](t, m, "Service", apiNamespace, apikeysName)
		j := slices.IndexFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.TargetPort.String() == ep.Port.StrVal })
		if j < 0 {
			t.Errorf("no port of Service %s targets %q: Istio would have to guess its protocol", svc.Name, ep.Port.StrVal)
		} else if sp := svc.Spec.Ports[j]; sp.Name != "http" && !strings.HasPrefix(sp.Name, "http-") {
			t.Errorf("Service port %d targets %q but is named %q: Istio would not parse it as HTTP, and the GET /metrics rule could never match", sp.Port, ep.Port.StrVal, sp.Name)
		}
	})
	if port == 0 {
		return
	}

	t.Run("only the metrics port accepts plaintext", func(t *testing.T) {
		var found bool
		for _, o := range m.objects {
			pa, ok := o.Obj.(*istiosec.PeerAuthentication)
			if !ok || o.Namespace != apiNamespace || pa.Spec.GetSelector() == nil ||
				!labels.SelectorFromSet(pa.Spec.GetSelector().GetMatchLabels()).Matches(podLabels) {
				continue
			}
			found = true
			if got := pa.Spec.GetMtls().GetMode().String(); got != "STRICT" {
				t.Errorf("%s: mtls.mode %s, want STRICT for every port but the metrics port", o, got)
			}
			for p, mt := range pa.Spec.GetPortLevelMtls() {
				want := "STRICT"
				if p == uint32(port) {
					want = "PERMISSIVE"
				}
				if got := mt.GetMode().String(); got != want && !(p != uint32(port) && got == "UNSET") {
					t.Errorf("%s: port %d mode %s, want %s", o, p, got, want)
				}
			}
			if mt := pa.Spec.GetPortLevelMtls()[uint32(port)]; mt.GetMode().String() != "PERMISSIVE" {
				t.Errorf("%s: port %d is %v, want PERMISSIVE: the collector has no sidecar, STRICT refuses it", o, port, mt.GetMode())
			}
		}
		if !found {
			t.Errorf("no PeerAuthentication with a selector matches the apikeys pods %v: the namespace's STRICT refuses the collector on port %d", podLabels, port)
		}
	})

	t.Run("a caller without a principal may GET /metrics on the metrics port and nothing else", func(t *testing.T) {
		var admitted bool
		for _, o := range m.objects {
			ap, ok := o.Obj.(*istiosec.AuthorizationPolicy)
			if !ok || o.Namespace != apiNamespace || ap.Spec.GetAction().String() != "ALLOW" ||
				!labels.SelectorFromSet(ap.Spec.GetSelector().GetMatchLabels()).Matches(podLabels) {
				continue
			}
			for i, r := range ap.Spec.GetRules() {
				if len(r.GetFrom()) > 0 {
					continue // principals need mTLS: these cannot admit the collector
				}
				ok := len(r.GetTo()) > 0 && len(r.GetWhen()) == 0
				for _, to := range r.GetTo() {
					op := to.GetOperation()
					ok = ok && slices.Equal(op.GetPorts(), []string{strconv.Itoa(int(port))}) &&
						slices.Equal(op.GetMethods(), []string{"GET"}) && slices.Equal(op.GetPaths(), []string{"/metrics"}) &&
						len(op.GetHosts())+len(op.GetNotPorts())+len(op.GetNotMethods())+len(op.GetNotPaths())+len(op.GetNotHosts()) == 0
				}
				if !ok {
					t.Errorf("%s rule %d admits callers without a principal beyond GET /metrics on port %d: %v", o, i, port, r)
				}
				admitted = admitted || ok
			}
		}
		if !admitted {
			t.Errorf("no ALLOW rule admits GET /metrics on port %d without a principal: the policies deny the collector", port)
		}
	})
}
