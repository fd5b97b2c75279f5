package deploy

import (
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	istionet "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/apis"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

const cloudRunService = "deploy/cloudrun/frontend.yaml"

// readCloudRunService strictly decodes the frontend's service YAML into
// Knative's serving/v1 Service, the schema `gcloud run services replace` reads.
func readCloudRunService(t *testing.T) *servingv1.Service {
	t.Helper()
	return readCloudRunServiceAt(t, repoRoot)
}

// readCloudRunServiceAt is readCloudRunService for a copy of the repository
// at root.
func readCloudRunServiceAt(t *testing.T, root string) *servingv1.Service {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, cloudRunService))
	if err != nil {
		t.Fatal(err)
	}
	return decodeCloudRunService(t, b)
}

// decodeCloudRunService strictly decodes a Cloud Run service's YAML.
func decodeCloudRunService(t *testing.T, b []byte) *servingv1.Service {
	t.Helper()
	svc, err := strict[servingv1.Service](b)
	if err != nil {
		t.Fatalf("%s does not decode strictly into a Knative Service: %v", cloudRunService, err)
	}
	if svc.APIVersion != "serving.knative.dev/v1" || svc.Kind != "Service" {
		t.Fatalf("%s is %s %s, want serving.knative.dev/v1 Service", cloudRunService, svc.APIVersion, svc.Kind)
	}
	return svc
}

func TestCloudRunServiceIsAValidKnativeService(t *testing.T) {
	validateKnative(t, readCloudRunService(t))
}

func validateKnative(t *testing.T, svc *servingv1.Service) {
	t.Helper()
	// Knative's own validation, as a Knative API server would run it. Cloud
	// Run differs in one place: it takes the service account's email where
	// Knative takes a Kubernetes name, so the copy validated here carries the
	// account's name. Knative's warnings (it would like a securityContext,
	// which Cloud Run does not take) are not errors.
	v := svc.DeepCopy()
	sa := &v.Spec.Template.Spec.ServiceAccountName
	name, _, isEmail := strings.Cut(*sa, "@")
	if !isEmail {
		t.Errorf("serviceAccountName %q is not an email, which Cloud Run wants", *sa)
	}
	*sa = name
	if err := v.Validate(t.Context()).Filter(apis.ErrorLevel); err != nil {
		t.Errorf("Knative validation of %s: %v", cloudRunService, err)
	}
}

func TestCloudRunServiceReachesTheGatewayPrivately(t *testing.T) {
	svc := readCloudRunService(t)
	project := projectID(t)
	tmpl := svc.Spec.Template
	t.Run("it lives in the project of istio/project.env", func(t *testing.T) {
		if svc.Namespace != project {
			t.Errorf("metadata.namespace = %q, want the project id %q", svc.Namespace, project)
		}
		if want := "frontend@" + project + ".iam.gserviceaccount.com"; tmpl.Spec.ServiceAccountName != want {
			t.Errorf("serviceAccountName = %q, want %q", tmpl.Spec.ServiceAccountName, want)
		}
	})
	t.Run("only private ranges leave, through the VPC connector or Direct VPC egress", func(t *testing.T) {
		switch got := egressOf(svc); got {
		case "connector":
		case "direct":
			if nics := networkInterfaces(t, svc); len(nics) != 1 || nics[0].Network == "" || nics[0].Subnetwork == "" {
				t.Errorf("Direct VPC egress through %+v: want one interface naming a network and a subnet", nics)
			}
		default:
			t.Errorf("the frontend reaches the VPC through %s: it could not reach the internal load balancer", got)
		}
		if got := tmpl.Annotations["run.googleapis.com/vpc-access-egress"]; got != "private-ranges-only" {
			t.Errorf("vpc-access-egress = %q, want private-ranges-only", got)
		}
	})
	if len(tmpl.Spec.Containers) != 1 {
		t.Fatalf("got %d containers, want the frontend alone", len(tmpl.Spec.Containers))
	}
	c := tmpl.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("env %s comes from a secret: secrets are mounted as files, so that rotations apply", e.Name)
		}
		env[e.Name] = e.Value
	}
	t.Run("its environment names the project, the gateway's private address and its certificate name", func(t *testing.T) {
		if env["GOOGLE_CLOUD_PROJECT"] != project {
			t.Errorf("GOOGLE_CLOUD_PROJECT = %q, want %q", env["GOOGLE_CLOUD_PROJECT"], project)
		}
		u, err := url.Parse(env["GATEWAY_URL"])
		if err != nil || u.Scheme != "https" || !isPrivate(u.Hostname()) {
			t.Errorf("GATEWAY_URL = %q, want https:// and an address in the VPC's private ranges", env["GATEWAY_URL"])
		}
		gw := find[istionet.Gateway](t, render(t, overlays["gke"]), "Gateway", ingressNamespace, "api-gateway")
		if !slices.Contains(gw.Spec.Servers[0].Hosts, env["GATEWAY_SERVER_NAME"]) {
			t.Errorf("GATEWAY_SERVER_NAME = %q, not a host of the Gateway %v", env["GATEWAY_SERVER_NAME"], gw.Spec.Servers[0].Hosts)
		}
	})
	t.Run("the client certificate, key and CA are mounted from Secret Manager", func(t *testing.T) {
		volumes := map[string]corev1.Volume{}
		for _, v := range tmpl.Spec.Volumes {
			volumes[v.Name] = v
		}
		files := map[string]bool{}
		for _, m := range c.VolumeMounts {
			v, ok := volumes[m.Name]
			if !ok || v.Secret == nil {
				t.Errorf("mount %s is not a secret volume", m.Name)
				continue
			}
			if !m.ReadOnly {
				t.Errorf("mount %s is writable", m.Name)
			}
			for _, it := range v.Secret.Items {
				if it.Key != "latest" {
					t.Errorf("secret %s item %s pins version %q: use latest so rotations apply", v.Secret.SecretName, it.Path, it.Key)
				}
				files[filepath.Join(m.MountPath, it.Path)] = true
				if it.Path == "tls.key" && (it.Mode == nil || *it.Mode&0o077 != 0) {
					t.Errorf("tls.key mode %v: want it unreadable by group and others", it.Mode)
				}
			}
		}
		for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(files)), func(f string) bool { return filepath.Base(f) == name }) {
				t.Errorf("no mounted %s; mounted: %v", name, files)
			}
		}
		for k, v := range env {
			if strings.HasPrefix(k, "CLIENT_TLS_") && strings.HasPrefix(v, "/") && !files[v] {
				t.Errorf("%s=%s, which no secret volume provides (mounted: %v)", k, v, files)
			}
		}
	})
	t.Run("its health check is the frontend's /healthz on its port", func(t *testing.T) {
		p := c.StartupProbe
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || len(c.Ports) != 1 || p.HTTPGet.Port.IntValue() != int(c.Ports[0].ContainerPort) {
			t.Errorf("startup probe %+v ports %+v: want GET /healthz on the container port", p, c.Ports)
		}
	})
}

// isPrivate says whether host is an RFC 1918 address, the only kind that
// private-ranges-only egress sends through the connector.
func isPrivate(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.Is4() && a.IsPrivate()
}

// egressOf says how the service's private traffic enters the VPC, in
// config.sh's words: "connector", "direct", or what is wrong.
func egressOf(svc *servingv1.Service) string {
	a := svc.Spec.Template.Annotations
	_, connector := a["run.googleapis.com/vpc-access-connector"]
	_, direct := a["run.googleapis.com/network-interfaces"]
	switch {
	case connector && direct:
		return "both a connector and Direct VPC egress"
	case connector:
		return "connector"
	case direct:
		return "direct"
	}
	return "neither a connector nor Direct VPC egress"
}

// networkInterface is one entry of Cloud Run's Direct VPC egress annotation.
type networkInterface struct {
	Network    string   `json:"network"`
	Subnetwork string   `json:"subnetwork"`
	Tags       []string `json:"tags"`
}

func networkInterfaces(t *testing.T, svc *servingv1.Service) []networkInterface {
	t.Helper()
	raw := svc.Spec.Template.Annotations["run.googleapis.com/network-interfaces"]
	nics, err := strict[[]networkInterface]([]byte(raw))
	if err != nil {
		t.Errorf("run.googleapis.com/network-interfaces %q: %v", raw, err)
		return nil
	}
	return *nics
}
