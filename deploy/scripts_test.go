package deploy

import (
	"bufio"
	"bytes"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	istionet "istio.io/client-go/pkg/apis/networking/v1"
	istiosec "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// needShellcheck returns shellcheck's path. CI installs it (.ci/run), so
// there a missing shellcheck fails; elsewhere the test is skipped with the
// way to get it.
func needShellcheck(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("shellcheck")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("shellcheck is not installed, and CI is set: .ci/run must install it (apt-get install -y shellcheck)")
	}
	t.Skip("shellcheck is not installed: apt-get install -y shellcheck (Debian) to run this test")
	return ""
}

// scripts lists every shell script in the repository: files named *.sh and
// files whose #! line runs a shell (.ci/run).
func scripts(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == ".devstack") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".sh") || shebangShell(path)) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shebangShell reports whether path starts with a #! line that runs bash
// or sh.
func shebangShell(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	if !strings.HasPrefix(line, "#!") {
		return false
	}
	f0 := strings.Fields(strings.TrimPrefix(line, "#!"))
	if len(f0) == 0 {
		return false
	}
	interp := filepath.Base(f0[0])
	if interp == "env" && len(f0) > 1 {
		interp = f0[1]
	}
	return interp == "bash" || interp == "sh"
}

func TestShellcheckEveryScript(t *testing.T) {
	shellcheck := needShellcheck(t)
	all := scripts(t)
	for _, want := range []string{"deploy/gcp/setup.sh", "deploy/gcp/teardown.sh", "deploy/gcp/config.sh", ".ci/run"} {
		if !slices.Contains(all, filepath.Join(repoRoot, want)) {
			t.Errorf("the scripts found, %v, do not include %s", all, want)
		}
	}
	for _, path := range all {
		rel, _ := filepath.Rel(repoRoot, path)
		t.Run(rel+" passes shellcheck", func(t *testing.T) {
			// -x follows `source` so variables from config.sh are known; run
			// from the repository root, where the source= directives point.
			cmd := exec.Command(shellcheck, "-x", "--severity=style", rel)
			cmd.Dir = repoRoot
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", rel, err, out)
			}
		})
	}
}

// shellVars evaluates deploy/gcp/config.sh in bash, as setup.sh does, and
// returns the variables it defines (arrays joined by spaces).
func shellVars(t *testing.T, project string) map[string]string {
	t.Helper()
	return shellVarsAt(t, repoRoot, "HOME=/home/tutorial", "PROJECT_ID="+project)
}

// shellVarsAt evaluates config.sh of the copy of the repository at root, with
// PATH and env as its whole environment.
func shellVarsAt(t *testing.T, root string, env ...string) map[string]string {
	t.Helper()
	script := `set -euo pipefail; source deploy/gcp/config.sh; set +u
for v in $(compgen -v); do
	declare -n ref="$v"
	if [[ "$(declare -p "$v" 2>/dev/null)" == "declare -a"* ]]; then printf '%s=%s\n' "$v" "${ref[*]}"; else printf '%s=%s\n' "$v" "${ref}"; fi
	unset -n ref
done`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = root
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing deploy/gcp/config.sh: %v\n%s", err, out)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	return vars
}

func TestConfigRefusesToRunWithoutAProject(t *testing.T) {
	// A copy with the committed placeholder, whatever project this clone
	// was configured for.
	root := copyRepo(t)
	if err := os.WriteFile(filepath.Join(root, "istio", "project.env"), []byte("PROJECT_ID="+localProject+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", "source deploy/gcp/config.sh")
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "set PROJECT_ID") {
		t.Errorf("sourcing config.sh without PROJECT_ID: got %v %q, want a failure that says to set PROJECT_ID", err, out)
	}
}

// TestScriptsAgreeWithTheManifests checks that the names setup.sh creates
// are the names the manifests and skaffold.yaml use.
func TestScriptsAgreeWithTheManifests(t *testing.T) {
	if p := projectID(t); p != localProject {
		t.Skipf("this clone is configured for project %s (deploy/gcp/configure.sh), whose settings are saved outside the repository; TestConfigureMakesEveryDeployedFileFollowConfig checks configure.sh on copies", p)
	}
	checkConfigFollowed(t, repoRoot, shellVars(t, localProject))
}

// checkConfigFollowed checks that the deployed files of the repository (or
// its copy) at root hold the values of config.sh's variables vars.
func checkConfigFollowed(t *testing.T, root string, vars map[string]string) {
	t.Helper()
	project := projectIDAt(t, root)
	m := renderAt(t, root, overlays["gke"])
	svc := find[corev1.Service](t, m, "Service", ingressNamespace, gatewayName)
	gw := find[istionet.Gateway](t, m, "Gateway", ingressNamespace, "api-gateway")
	run := readCloudRunServiceAt(t, root)
	tmpl := run.Spec.Template
	env := map[string]string{}
	for _, e := range tmpl.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	gatewayURL, _ := url.Parse(env["GATEWAY_URL"])
	job := readAPIClientJobAt(t, root)
	jobTask := job.Spec.Template.Spec.Template.Spec
	jobEnv := map[string]string{}
	for _, e := range jobTask.Containers[0].Env {
		jobEnv[e.Name] = e.Value
	}
	var jobSecrets []string
	for _, v := range jobTask.Volumes {
		if v.Secret != nil {
			jobSecrets = append(jobSecrets, v.Secret.SecretName)
		}
	}
	ra := find[istiosec.RequestAuthentication](t, m, "RequestAuthentication", ingressNamespace, "identity-platform-jwt")
	backend := find[appsv1.Deployment](t, m, "Deployment", apiNamespace, backendName)
	backendEnv := map[string]string{}
	for _, e := range backend.Spec.Template.Spec.Containers[0].Env {
		backendEnv[e.Name] = e.Value
	}
	var secretNames []string
	for _, v := range tmpl.Spec.Volumes {
		if v.Secret != nil {
			secretNames = append(secretNames, v.Secret.SecretName)
		}
	}
	tests := []struct {
		name, variable string
		want           []string // every place that must hold the variable's value
	}{
		{"the reserved address is the frontend's gateway URL", "GATEWAY_IP", []string{gatewayURL.Hostname()}},
		{"the reserved address's name is the one the load balancer takes", "GATEWAY_ADDRESS_NAME",
			[]string{svc.Annotations["networking.gke.io/load-balancer-ip-addresses"]}},
		{"the gateway host is the Gateway's host and the frontend's server name", "GATEWAY_HOST",
			[]string{gw.Spec.Servers[0].Hosts[0], env["GATEWAY_SERVER_NAME"]}},
		{"the gateway secret is the Gateway's credentialName", "GATEWAY_SECRET", []string{gw.Spec.Servers[0].Tls.CredentialName}},
		{"the gateway namespace is the manifests'", "GATEWAY_NAMESPACE", []string{svc.Namespace}},
		{"the VPC egress is the frontend's", "VPC_EGRESS", []string{egressOf(run)}},
		{"the frontend's secrets are the ones it mounts", "FRONTEND_SECRETS", []string{strings.Join(secretNames, " ")}},
		{"the frontend's account is the one it runs as", "FRONTEND_SA", []string{tmpl.Spec.ServiceAccountName}},
		{"the frontend's service is the Cloud Run service", "FRONTEND_SERVICE", []string{run.Name}},
		{"the apiclient job's secrets are the ones it mounts", "APICLIENT_SECRETS", []string{strings.Join(jobSecrets, " ")}},
		{"the apiclient job's account is the one it runs as and names", "APICLIENT_SA", []string{jobTask.ServiceAccountName, jobEnv["APICLIENT_SERVICE_ACCOUNT"]}},
		{"the apiclient job is the Cloud Run job", "APICLIENT_JOB", []string{job.Metadata.Name}},
		{"the apiclient job runs in the project and region", "PROJECT_ID", []string{job.Metadata.Namespace}},
		{"the apiclient job runs in the region", "REGION", []string{job.Metadata.Labels["cloud.googleapis.com/location"]}},
		{"the region is the Cloud Run service's", "REGION", []string{run.Labels["cloud.googleapis.com/location"]}},
		{"the project is istio/project.env's, the Cloud Run service's and, rendered, the backend's", "PROJECT_ID",
			[]string{project, run.Namespace, env["GOOGLE_CLOUD_PROJECT"], backendEnv["GOOGLE_CLOUD_PROJECT"]}},
		{"the backend's namespace is the one its Workload Identity principal names", "BACKEND_NAMESPACE", []string{backend.Namespace}},
		{"the backend's Kubernetes service account is the one its Workload Identity principal names", "BACKEND_KSA",
			[]string{backend.Spec.Template.Spec.ServiceAccountName}},
		{"the project's token issuer is the one the rendered gateway policy trusts", "PROJECT_ID",
			[]string{strings.TrimPrefix(ra.Spec.JwtRules[0].Issuer, "https://securetoken.google.com/")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := vars[tt.variable]
			if !ok {
				t.Fatalf("deploy/gcp/config.sh defines no %s", tt.variable)
			}
			for _, w := range tt.want {
				if got != w {
					t.Errorf("%s=%q in deploy/gcp/config.sh, but the manifests say %q", tt.variable, got, w)
				}
			}
		})
	}
	t.Run("the egress goes into the VPC by the connector or subnet config.sh names", func(t *testing.T) {
		switch vars["VPC_EGRESS"] {
		case "connector":
			if got := tmpl.Annotations["run.googleapis.com/vpc-access-connector"]; got != vars["CONNECTOR"] {
				t.Errorf("the frontend egresses through connector %q, config.sh names %q", got, vars["CONNECTOR"])
			}
		case "direct":
			nics := networkInterfaces(t, run)
			if len(nics) != 1 || nics[0].Network != vars["NETWORK"] || nics[0].Subnetwork != vars["RUN_SUBNET"] {
				t.Errorf("the frontend's network interfaces are %+v, want network %q subnet %q", nics, vars["NETWORK"], vars["RUN_SUBNET"])
			}
		}
	})
	t.Run("the web API key, once setup saved it, is the frontend's", func(t *testing.T) {
		want := vars["FIREBASE_API_KEY"]
		if want == "" {
			want = "FIREBASE_API_KEY" // the placeholder before setup
		}
		if env["FIREBASE_API_KEY"] != want {
			t.Errorf("FIREBASE_API_KEY = %q in the service, want %q", env["FIREBASE_API_KEY"], want)
		}
	})
	t.Run("the region is skaffold's Cloud Run region", func(t *testing.T) {
		var region struct {
			Region string `json:"region"`
		}
		cfg := profileConfigAt(t, root, "cloudrun")
		if err := yamlUnmarshal(cfg.Deploy["cloudrun"], &region); err != nil || region.Region != vars["REGION"] {
			t.Errorf("skaffold cloudrun region %q (%v), want %q", region.Region, err, vars["REGION"])
		}
	})
}

var (
	createLine = regexp.MustCompile(`^\s*gcloud ([a-z -]+?) (create|delete) (\S+)`)
	guardLine  = regexp.MustCompile(`^\s*if (! )?exists gcloud ([a-z -]+?) describe |^\s*if \[ (-z|-n) `)
)

// TestScriptsAreRerunnable checks the shape that makes setup.sh and
// teardown.sh idempotent: strict mode, every create and delete guarded by a
// look first, and every resource named by a variable from config.sh.
func TestScriptsAreRerunnable(t *testing.T) {
	for _, script := range []string{"deploy/gcp/setup.sh", "deploy/gcp/teardown.sh"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, script))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		t.Run(script+" runs in strict mode", func(t *testing.T) {
			if !slices.Contains(lines, "set -euo pipefail") {
				t.Error("no `set -euo pipefail` line")
			}
		})
		t.Run(script+" looks before every create or delete, by variable", func(t *testing.T) {
			n := 0
			for i, line := range lines {
				m := createLine.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				n++
				group, name := m[1], m[3]
				if !strings.HasPrefix(name, `"${`) && !strings.HasPrefix(name, `--`) {
					t.Errorf("line %d: %s names the resource literally (%s): name it once, in config.sh", i+1, group, name)
				}
				guarded := false
				for j := i - 1; j >= 0 && j >= i-8; j-- {
					if g := guardLine.FindStringSubmatch(lines[j]); g != nil {
						guarded = g[3] != "" || g[2] == group
						break
					}
				}
				if !guarded {
					t.Errorf("line %d: `gcloud %s %s` is not guarded by a describe of the same resource in the lines before it", i+1, group, m[2])
				}
			}
			if n < 5 {
				t.Errorf("found only %d create/delete lines: the pattern no longer matches the script", n)
			}
		})
	}
}

// TestTeardownUndoesEveryProjectGrant checks that every project-level role
// setup.sh grants, and every custom role it creates, teardown.sh removes:
// bindings on the project outlive the accounts they name.
func TestTeardownUndoesEveryProjectGrant(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(repoRoot, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	setup, teardown := read("deploy/gcp/setup.sh"), read("deploy/gcp/teardown.sh")
	removed := map[[2]string]bool{}
	for _, words := range gcloudCommands(teardown) {
		if len(words) > 2 && words[1] == "projects" && words[2] == "remove-iam-policy-binding" {
			removed[[2]string{flag(words, "member"), flag(words, "role")}] = true
		}
	}
	// Roles removed in a loop: for role in ROLE...; do ... --role="${role}".
	var loopRoles []string
	for _, m := range regexp.MustCompile(`(?m)^\s*for role in (.*); do$`).FindAllStringSubmatch(strings.ReplaceAll(teardown, "\\\n", " "), -1) {
		for _, r := range strings.Fields(m[1]) {
			loopRoles = append(loopRoles, strings.Trim(r, `"`))
		}
	}
	n := 0
	for _, words := range gcloudCommands(setup) {
		if len(words) < 3 || words[1] != "projects" || words[2] != "add-iam-policy-binding" {
			continue
		}
		n++
		member, role := flag(words, "member"), flag(words, "role")
		t.Run("teardown removes "+role+" from "+member, func(t *testing.T) {
			if !removed[[2]string{member, role}] && !(removed[[2]string{member, "${role}"}] && slices.Contains(loopRoles, role)) {
				t.Errorf("setup.sh grants %s to %s on the project; teardown.sh has no remove-iam-policy-binding with that member and role", role, member)
			}
		})
	}
	if n < 3 {
		t.Errorf("found %d project bindings in setup.sh: the pattern no longer matches the script", n)
	}
	for _, m := range customRoleLine.FindAllStringSubmatch(setup, -1) {
		t.Run("teardown deletes the custom role "+m[1], func(t *testing.T) {
			if !slices.Contains(loopRoles, "${"+m[1]+"}") || !strings.Contains(teardown, `gcloud iam roles delete "${role}"`) {
				t.Errorf("setup.sh creates the custom role ${%s}; teardown.sh's `for role in ...` loop of `gcloud iam roles delete` does not name it", m[1])
			}
		})
	}
}
