package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

// artefacts are the deployed files the platform rules read, decoded.
type artefacts struct {
	run      *servingv1.Service // deploy/cloudrun/frontend.yaml
	gateway  *corev1.Service    // the gateway Service, as the gke overlay renders it
	setup    string             // deploy/gcp/setup.sh
	commands string             // the tutorial's sh blocks, in order
	prose    string             // the tutorial, whole
	skaffold skaffoldConfig
	operator istioOperator // deploy/istio/operator.yaml
	istioMod string        // the istio.io/istio version in tools/go.mod
}

// artefactsAt reads the artefacts of the repository, or of its copy at root
// (docs/ and tools/ come from the repository when the copy lacks them).
func artefactsAt(t *testing.T, root string) artefacts {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, os.ErrNotExist) {
			b, err = os.ReadFile(filepath.Join(repoRoot, name))
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	a := artefacts{
		run:      readCloudRunServiceAt(t, root),
		gateway:  find[corev1.Service](t, renderAt(t, root, overlays["gke"]), "Service", ingressNamespace, gatewayName),
		setup:    read("deploy/gcp/setup.sh"),
		prose:    read(tutorial),
		skaffold: profileConfigAt(t, root, "cloudrun"),
		operator: readIstioOperator(t, []byte(read(istioOperatorFile))),
	}
	blocks, err := parseBlocks(a.prose)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if b.lang == "sh" {
			a.commands += b.text
		}
	}
	m := regexp.MustCompile(`(?m)^\s*istio\.io/istio (\S+)`).FindStringSubmatch(read("tools/go.mod"))
	if m == nil {
		t.Fatal("tools/go.mod does not require istio.io/istio")
	}
	a.istioMod = m[1]
	return a
}

func (a artefacts) clone() artefacts {
	c := a
	c.run = a.run.DeepCopy()
	c.gateway = a.gateway.DeepCopy()
	return c
}

// The container: its resources, secrets and probe.
func (a artefacts) container() *corev1.Container { return &a.run.Spec.Template.Spec.Containers[0] }

// executionEnvironment is the service's, as far as the rules go: unset, Cloud
// Run may choose the second generation, so the stricter limits apply.
func (a artefacts) executionEnvironment() string {
	if env := a.run.Spec.Template.Annotations["run.googleapis.com/execution-environment"]; env == "gen1" {
		return env
	}
	return "gen2"
}

// istioReleases maps the istio.io/istio versions tools/go.mod may pin to the
// Istio release whose tag is at that commit
// (https://github.com/istio/istio/releases names each release's commit).
var istioReleases = map[string]string{
	"v0.0.0-20260827124520-eed52ebb66ad": "1.31.0",
}

// skaffoldMinimum is the first skaffold release that reads each config
// version the repository has used.
var skaffoldMinimum = map[string]string{
	// "This release comes with a new config version, v4beta14"
	// (https://github.com/GoogleContainerTools/skaffold/releases/tag/v2.19.0).
	"skaffold/v4beta14": "2.19.0",
}

// platformRule is one documented limit of a platform that an artefact relies
// on. check says how the artefacts break it (nil if they do not); breakIt
// changes a copy so that it does, to show check can fail.
type platformRule struct {
	rule, doc string
	check     func(artefacts) error
	breakIt   func(*artefacts)
}

const (
	runSecretsDoc = "https://cloud.google.com/run/docs/configuring/services/secrets"
	runMemoryDoc  = "https://cloud.google.com/run/docs/configuring/services/memory-limits"
	gkeLBDoc      = "https://cloud.google.com/kubernetes-engine/docs/concepts/service-load-balancer-parameters"
)

var platformRules = []platformRule{
	{
		rule: "a Cloud Run service names its execution environment, on which its memory floor and secret ownership depend",
		doc:  "https://cloud.google.com/run/docs/about-execution-environments",
		check: func(a artefacts) error {
			if env := a.run.Spec.Template.Annotations["run.googleapis.com/execution-environment"]; env != "gen1" && env != "gen2" {
				return fmt.Errorf("execution environment %q: unset, Cloud Run picks gen1 or gen2 by the features used", env)
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			delete(a.run.Spec.Template.Annotations, "run.googleapis.com/execution-environment")
		},
	},
	{
		rule: "Cloud Run memory is at least 128 MiB in gen1 and 512 MiB in gen2",
		doc:  runMemoryDoc,
		check: func(a artefacts) error {
			floor := map[string]string{"gen1": "128Mi", "gen2": "512Mi"}[a.executionEnvironment()]
			mem := a.container().Resources.Limits[corev1.ResourceMemory]
			if mem.Cmp(resource.MustParse(floor)) < 0 {
				return fmt.Errorf("memory %s is below %s's minimum %s", mem.String(), a.executionEnvironment(), floor)
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			a.run.Spec.Template.Annotations["run.googleapis.com/execution-environment"] = "gen2"
			a.container().Resources.Limits[corev1.ResourceMemory] = resource.MustParse("256Mi")
		},
	},
	{
		rule: "Cloud Run memory fits the CPU: up to 512 MiB below 0.5 vCPU, 1 GiB below 1, 4 GiB for 1, 8 GiB for 2, 2-16 GiB for 4, 4-24 GiB for 6, 4-32 GiB for 8",
		doc:  runMemoryDoc,
		check: func(a artefacts) error {
			cpu := a.container().Resources.Limits[corev1.ResourceCPU]
			mem := a.container().Resources.Limits[corev1.ResourceMemory]
			milli := cpu.MilliValue()
			var lo, hi string
			switch {
			case milli < 500:
				lo, hi = "0", "512Mi"
			case milli < 1000:
				lo, hi = "0", "1Gi"
			default:
				r, ok := map[int64][2]string{1000: {"0", "4Gi"}, 2000: {"0", "8Gi"}, 4000: {"2Gi", "16Gi"}, 6000: {"4Gi", "24Gi"}, 8000: {"4Gi", "32Gi"}}[milli]
				if !ok {
					return fmt.Errorf("cpu %s: above 1, Cloud Run offers 2, 4, 6 or 8", cpu.String())
				}
				lo, hi = r[0], r[1]
			}
			if mem.Cmp(resource.MustParse(lo)) < 0 || mem.Cmp(resource.MustParse(hi)) > 0 {
				return fmt.Errorf("memory %s with cpu %s: want %s to %s", mem.String(), cpu.String(), lo, hi)
			}
			return nil
		},
		breakIt: func(a *artefacts) { a.container().Resources.Limits[corev1.ResourceMemory] = resource.MustParse("8Gi") },
	},
	{
		rule: "a non-root container can read its secret files: in gen1 with one container they are its user's, otherwise root's, so there uid 65532 needs the others-read bit",
		doc:  runSecretsDoc,
		check: func(a artefacts) error {
			ownerIsUser := a.executionEnvironment() == "gen1" && len(a.run.Spec.Template.Spec.Containers) == 1
			for _, v := range a.run.Spec.Template.Spec.Volumes {
				if v.Secret == nil {
					continue
				}
				for _, it := range v.Secret.Items {
					mode := int32(0o444) // the API's default
					switch {
					case it.Mode != nil:
						mode = *it.Mode
					case v.Secret.DefaultMode != nil:
						mode = *v.Secret.DefaultMode
					}
					mode &^= 0o222 // "a umask of 0222 will be applied"
					if ownerIsUser && mode&0o400 == 0 || !ownerIsUser && mode&0o004 == 0 {
						owner := map[bool]string{true: "the container's user", false: "root"}[ownerIsUser]
						return fmt.Errorf("%s/%s has mode %04o and belongs to %s in %s: the frontend (uid 65532) cannot read it", v.Name, it.Path, mode, owner, a.executionEnvironment())
					}
				}
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			a.run.Spec.Template.Annotations["run.googleapis.com/execution-environment"] = "gen2"
		},
	},
	{
		rule: "a Cloud Run mount path holds one volume, so each secret has a path of its own",
		doc:  runSecretsDoc,
		check: func(a artefacts) error {
			seen := map[string]string{}
			for _, m := range a.container().VolumeMounts {
				if other, ok := seen[m.MountPath]; ok {
					return fmt.Errorf("volumes %s and %s are both mounted at %s", other, m.Name, m.MountPath)
				}
				seen[m.MountPath] = m.Name
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			mounts := a.container().VolumeMounts
			mounts[1].MountPath = mounts[0].MountPath
		},
	},
	{
		rule: "a secret version of latest is for volumes, read when used; a secret in an environment variable is read once at start and pins a version",
		doc:  runSecretsDoc,
		check: func(a artefacts) error {
			for _, e := range a.container().Env {
				if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && (r.SecretKeyRef.Key == "latest" || r.SecretKeyRef.Key == "") {
					return fmt.Errorf("env %s takes secret %s at version %q", e.Name, r.SecretKeyRef.Name, r.SecretKeyRef.Key)
				}
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			c := a.container()
			c.Env = append(c.Env, corev1.EnvVar{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "token"}, Key: "latest"}}})
		},
	},
	{
		rule: "Cloud Run's maximum concurrency is 1 to 1000 requests per instance",
		doc:  "https://cloud.google.com/run/docs/about-concurrency",
		check: func(a artefacts) error {
			if c := a.run.Spec.Template.Spec.ContainerConcurrency; c != nil && (*c < 1 || *c > 1000) {
				return fmt.Errorf("containerConcurrency %d", *c)
			}
			return nil
		},
		breakIt: func(a *artefacts) { n := int64(2000); a.run.Spec.Template.Spec.ContainerConcurrency = &n },
	},
	{
		rule: "Cloud Run's request timeout is 1 to 3600 seconds",
		doc:  "https://cloud.google.com/run/docs/configuring/request-timeout",
		check: func(a artefacts) error {
			if s := a.run.Spec.Template.Spec.TimeoutSeconds; s != nil && (*s < 1 || *s > 3600) {
				return fmt.Errorf("timeoutSeconds %d", *s)
			}
			return nil
		},
		breakIt: func(a *artefacts) { n := int64(7200); a.run.Spec.Template.Spec.TimeoutSeconds = &n },
	},
	{
		// The limits per field are the Probe's in the Cloud Run Admin API
		// reference (https://cloud.google.com/run/docs/reference/rest/v2/Container#Probe).
		rule: "a Cloud Run startup probe checks the container port, waits 0-240 s, and runs every 1-240 s with a timeout up to its period",
		doc:  "https://cloud.google.com/run/docs/configuring/healthchecks",
		check: func(a artefacts) error {
			c := a.container()
			p := c.StartupProbe
			if p == nil {
				return nil // Cloud Run's default TCP probe
			}
			if p.HTTPGet != nil && (len(c.Ports) != 1 || p.HTTPGet.Port.IntValue() != int(c.Ports[0].ContainerPort)) {
				return fmt.Errorf("probe port %s is not the container port", p.HTTPGet.Port.String())
			}
			// Zero is the API's default: period 10 s, timeout 1 s, 3 failures.
			period, timeout, failures := or(p.PeriodSeconds, 10), or(p.TimeoutSeconds, 1), or(p.FailureThreshold, 3)
			switch {
			case failures < 1:
				return fmt.Errorf("failureThreshold %d", failures)
			case p.InitialDelaySeconds < 0 || p.InitialDelaySeconds > 240:
				return fmt.Errorf("initialDelaySeconds %d", p.InitialDelaySeconds)
			case period < 1 || period > 240:
				return fmt.Errorf("periodSeconds %d", period)
			case timeout < 1 || timeout > period:
				return fmt.Errorf("timeoutSeconds %d with periodSeconds %d", timeout, period)
			}
			return nil
		},
		breakIt: func(a *artefacts) { a.container().StartupProbe.PeriodSeconds = 300 },
	},
	{
		rule: "a Cloud Run service reaches a VPC through a connector or by Direct VPC egress, not both",
		doc:  "https://cloud.google.com/run/docs/configuring/connecting-vpc",
		check: func(a artefacts) error {
			if got := egressOf(a.run); got != "connector" && got != "direct" {
				return fmt.Errorf("the service has %s", got)
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			a.run.Spec.Template.Annotations["run.googleapis.com/vpc-access-connector"] = "api-connector"
			a.run.Spec.Template.Annotations["run.googleapis.com/network-interfaces"] = `[{"network":"api-vpc","subnetwork":"run-subnet"}]`
		},
	},
	{
		rule: "GKE makes an internal passthrough load balancer for a Service annotated networking.gke.io/load-balancer-type: Internal",
		doc:  gkeLBDoc,
		check: func(a artefacts) error {
			if a.gateway.Spec.Type != corev1.ServiceTypeLoadBalancer || a.gateway.Annotations["networking.gke.io/load-balancer-type"] != "Internal" {
				return fmt.Errorf("the gateway Service is %s with annotations %v: its load balancer would be external", a.gateway.Spec.Type, a.gateway.Annotations)
			}
			return nil
		},
		breakIt: func(a *artefacts) { delete(a.gateway.Annotations, "networking.gke.io/load-balancer-type") },
	},
	{
		rule: "GKE takes a load balancer's reserved address by name in networking.gke.io/load-balancer-ip-addresses; spec.loadBalancerIP is deprecated",
		doc:  gkeLBDoc,
		check: func(a artefacts) error {
			if a.gateway.Spec.LoadBalancerIP != "" {
				return fmt.Errorf("spec.loadBalancerIP %s is set", a.gateway.Spec.LoadBalancerIP)
			}
			if a.gateway.Annotations["networking.gke.io/load-balancer-ip-addresses"] == "" {
				return errors.New("no networking.gke.io/load-balancer-ip-addresses: the gateway's address would change with each Service")
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			delete(a.gateway.Annotations, "networking.gke.io/load-balancer-ip-addresses")
			a.gateway.Spec.LoadBalancerIP = "10.10.0.100"
		},
	},
	{
		rule: "a custom GKE node service account gets roles/container.defaultNodeServiceAccount, the minimum GKE documents, not the legacy logging and monitoring roles",
		doc:  "https://cloud.google.com/kubernetes-engine/security/configure-node-service-accounts",
		check: func(a artefacts) error {
			if !strings.Contains(a.setup, "--role=roles/container.defaultNodeServiceAccount") {
				return errors.New("setup.sh does not grant roles/container.defaultNodeServiceAccount")
			}
			for _, legacy := range []string{"roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/monitoring.viewer", "roles/stackdriver.resourceMetadata.writer"} {
				if strings.Contains(a.setup, legacy) {
					return fmt.Errorf("setup.sh grants %s", legacy)
				}
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			a.setup = strings.Replace(a.setup, "--role=roles/container.defaultNodeServiceAccount", "--role=roles/monitoring.metricWriter", 1)
		},
	},
	{
		rule: "a public Cloud Run service disables the invoker IAM check: an allUsers binding is refused under Domain Restricted Sharing",
		doc:  "https://cloud.google.com/run/docs/authenticating/public",
		check: func(a artefacts) error {
			if a.run.Annotations["run.googleapis.com/invoker-iam-disabled"] != "true" {
				return errors.New(`the service lacks run.googleapis.com/invoker-iam-disabled: "true"`)
			}
			if strings.Contains(a.commands, "allUsers") || strings.Contains(a.setup, "allUsers") {
				return errors.New("a command binds allUsers")
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			a.commands += "gcloud run services add-iam-policy-binding frontend --member=allUsers --role=roles/run.invoker\n"
		},
	},
	{
		rule: "skaffold reads a config version from the release that introduced it on, and the tutorial asks for at least that release",
		doc:  "https://github.com/GoogleContainerTools/skaffold/releases/tag/v2.19.0",
		check: func(a artefacts) error {
			min, ok := skaffoldMinimum[a.skaffold.APIVersion]
			if !ok {
				return fmt.Errorf("%s: add the first skaffold release that reads it to skaffoldMinimum", a.skaffold.APIVersion)
			}
			m := regexp.MustCompile(`skaffold\S* v?(\d+\.\d+\.\d+) or later`).FindStringSubmatch(a.prose)
			if m == nil {
				return errors.New(`the tutorial states no "skaffold X.Y.Z or later"`)
			}
			if compareVersions(m[1], min) < 0 {
				return fmt.Errorf("the tutorial asks for skaffold %s, but %s needs %s", m[1], a.skaffold.APIVersion, min)
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			a.prose = regexp.MustCompile(`(skaffold\S* )v?\d+\.\d+\.\d+ or later`).ReplaceAllString(a.prose, "${1}v2")
		},
	},
	{
		rule: "skaffold's Cloud Run deployer uses Application Default Credentials, so the tutorial sets them before deploying",
		doc:  "https://skaffold.dev/docs/deployers/cloudrun/",
		check: func(a artefacts) error {
			login := strings.Index(a.commands, "gcloud auth application-default login")
			deploy := strings.Index(a.commands, "skaffold run -p cloudrun")
			if login < 0 || deploy < 0 || login > deploy {
				return errors.New("no gcloud auth application-default login before skaffold run -p cloudrun")
			}
			return nil
		},
		breakIt: func(a *artefacts) {
			a.commands = strings.ReplaceAll(a.commands, "gcloud auth application-default login", "")
		},
	},
	{
		rule: "Istio is installed from a release hub and tag, never a testing hub or latest, of the release of the istioctl in tools/go.mod",
		doc:  "https://github.com/istio/istio/releases/tag/1.31.0",
		check: func(a artefacts) error {
			hub, tag := a.operator.Spec.Hub, a.operator.Spec.Tag
			release, ok := istioReleases[a.istioMod]
			switch {
			case !ok:
				return fmt.Errorf("tools/go.mod pins istio.io/istio %s, which istioReleases does not know: pin a release's commit and add it", a.istioMod)
			case hub == "" || strings.Contains(hub, "testing"):
				return fmt.Errorf("hub %q is not a release hub", hub)
			case tag != release:
				return fmt.Errorf("tag %q, but tools/go.mod's istioctl is release %s", tag, release)
			}
			return nil
		},
		breakIt: func(a *artefacts) { a.operator.Spec.Tag = "latest" },
	},
	{
		rule: "the backend's revocation check looks users up (accounts:lookup, firebaseauth.users.get) as its Kubernetes service account's Workload Identity Federation principal in the cluster's pool, and may do nothing else",
		doc:  "https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity",
		check: func(a artefacts) error {
			for _, words := range gcloudCommands(a.setup) {
				if len(words) > 3 && words[2] == "clusters" && words[3] == "create" {
					if pool := flag(words, "workload-pool"); pool != "${PROJECT_ID}.svc.id.goog" {
						return fmt.Errorf("the cluster's workload pool is %q, but the backend's principal is in ${PROJECT_ID}.svc.id.goog", pool)
					}
				}
			}
			return grantsExactly(a.setup, backendPrincipal, "firebaseauth.users.get")
		},
		breakIt: func(a *artefacts) {
			a.setup = strings.ReplaceAll(a.setup, backendPrincipal, "serviceAccount:${NODE_SA}")
		},
	},
	{
		rule: "the frontend's service account revokes refresh tokens at sign-out (accounts:update, firebaseauth.users.update), and may do nothing else to users",
		doc:  "https://cloud.google.com/identity-platform/docs/access-control",
		check: func(a artefacts) error {
			return grantsExactly(a.setup, "serviceAccount:${FRONTEND_SA}", "firebaseauth.users.update")
		},
		breakIt: func(a *artefacts) {
			a.setup = strings.Replace(a.setup, " firebaseauth.users.update ", " firebaseauth.users.update,firebaseauth.users.delete ", 1)
		},
	},
	{
		// The backend's Application Default Credentials come from the GKE
		// metadata server (169.254.169.254) and its lookups go to
		// identitytoolkit.googleapis.com, both outside the mesh's registry.
		rule: "the backend's sidecar passes its calls to the GKE metadata server and Identity Platform through: the mesh's outbound traffic policy stays ALLOW_ANY, Istio's default",
		doc:  "https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#MeshConfig-OutboundTrafficPolicy-Mode",
		check: func(a artefacts) error {
			if mode := a.operator.Spec.MeshConfig.OutboundTrafficPolicy.Mode; mode != "" && mode != "ALLOW_ANY" {
				return fmt.Errorf("outboundTrafficPolicy %s: the backend could reach neither the metadata server nor Identity Platform without ServiceEntries for them", mode)
			}
			return nil
		},
		breakIt: func(a *artefacts) { a.operator.Spec.MeshConfig.OutboundTrafficPolicy.Mode = "REGISTRY_ONLY" },
	},
}

func or(v, def int32) int32 {
	if v == 0 {
		return def
	}
	return v
}

// compareVersions compares dotted version numbers.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// TestPlatformRules checks the artefacts against each documented platform
// limit they rely on, and each rule against a copy broken on purpose, so
// that a rule that cannot fail is caught too.
func TestPlatformRules(t *testing.T) {
	a := artefactsAt(t, repoRoot)
	for _, r := range platformRules {
		t.Run(r.rule, func(t *testing.T) {
			if !strings.HasPrefix(r.doc, "https://") {
				t.Errorf("the rule cites %q, not a documentation page", r.doc)
			}
			if err := r.check(a); err != nil {
				t.Errorf("the repository breaks it: %v (see %s)", err, r.doc)
			}
			broken := a.clone()
			r.breakIt(&broken)
			if err := r.check(broken); err == nil {
				t.Error("a copy broken on purpose passed: the check cannot fail")
			}
		})
	}
}

// gcloudCommands returns each gcloud command of a shell script as its words,
// continued lines joined and quotes dropped (flags read --name=value).
func gcloudCommands(script string) [][]string {
	var out [][]string
	for _, line := range strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n") {
		words := strings.Fields(line)
		if len(words) == 0 || words[0] != "gcloud" {
			continue
		}
		for i, w := range words {
			words[i] = strings.NewReplacer(`"`, "", `'`, "").Replace(w)
		}
		out = append(out, words)
	}
	return out
}

// flag returns the value of --name=value in words.
func flag(words []string, name string) string {
	for _, w := range words {
		if v, ok := strings.CutPrefix(w, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// customRoleLine is setup.sh's call of its role function: role "${VAR}"
// PERMISSIONS "TITLE".
var customRoleLine = regexp.MustCompile(`(?m)^role "\$\{(\w+)\}" (\S+) `)

// projectGrants returns what script grants each member on the project: the
// permissions of the custom roles (setup.sh's role calls) and the names of
// predefined roles.
func projectGrants(script string) map[string][]string {
	custom := map[string][]string{}
	for _, m := range customRoleLine.FindAllStringSubmatch(script, -1) {
		custom["projects/${PROJECT_ID}/roles/${"+m[1]+"}"] = strings.Split(m[2], ",")
	}
	grants := map[string][]string{}
	for _, words := range gcloudCommands(script) {
		if len(words) < 3 || words[1] != "projects" || words[2] != "add-iam-policy-binding" {
			continue
		}
		member, role := flag(words, "member"), flag(words, "role")
		if perms, ok := custom[role]; ok {
			grants[member] = append(grants[member], perms...)
		} else {
			grants[member] = append(grants[member], role)
		}
	}
	return grants
}

// backendPrincipal is the backend's Kubernetes service account as an IAM
// principal of the cluster's workload identity pool, as setup.sh spells it.
const backendPrincipal = "principal://iam.googleapis.com/projects/${PROJECT_NUMBER}/locations/global/workloadIdentityPools/${PROJECT_ID}.svc.id.goog/subject/ns/${BACKEND_NAMESPACE}/sa/${BACKEND_KSA}"

// grantsExactly checks that member holds exactly the permissions want.
func grantsExactly(setup, member string, want ...string) error {
	got := projectGrants(setup)[member]
	if len(got) == 0 {
		return fmt.Errorf("setup.sh grants %s nothing on the project", member)
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		return fmt.Errorf("setup.sh grants %s %v, want exactly the permissions %v", member, got, want)
	}
	return nil
}
