package deploy

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// copyRepo copies what configure.sh edits and the tests render (deploy/,
// istio/, skaffold.yaml) into a new directory, a repository of its own.
func copyRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, dir := range []string{"deploy", "istio"} {
		if err := os.CopyFS(filepath.Join(root, dir), os.DirFS(filepath.Join(repoRoot, dir))); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "skaffold.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// configure runs the copy's deploy/gcp/configure.sh with PATH, HOME and env
// as its whole environment.
func configure(t *testing.T, root, home string, env ...string) {
	t.Helper()
	cmd := exec.Command("bash", "deploy/gcp/configure.sh")
	cmd.Dir = root
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("configure.sh %v: %v\n%s", env, err, out)
	}
}

// TestConfigureMakesEveryDeployedFileFollowConfig is config.sh as the one
// source of the settings: configure.sh writes other values into a copy of
// the repository, and then every deployed file, rendered as skaffold would
// (kustomize for GKE, the Cloud Run service, skaffold's region), holds them;
// and a new terminal, with nothing in its environment, gets every one back
// from `source deploy/gcp/config.sh`.
func TestConfigureMakesEveryDeployedFileFollowConfig(t *testing.T) {
	tests := []struct {
		name string
		runs [][]string // configure.sh's environments, in order, on one copy
	}{
		{"the defaults, with only the project set", [][]string{{"PROJECT_ID=tutorial-project"}}},
		{"another region, address, names, web API key and Direct VPC egress", [][]string{{
			"PROJECT_ID=other-project-2", "REGION=europe-west4", "GATEWAY_IP=10.10.0.77", "GATEWAY_ADDRESS_NAME=gw-ilb-2",
			"VPC_EGRESS=direct", "NETWORK=net-2", "RUN_SUBNET=run-2", "FRONTEND_SERVICE=web", "FRONTEND_SA_NAME=web-sa",
			"FIREBASE_API_KEY=AIzaSyTestKey",
		}}},
		{"configured twice: Direct VPC egress, then back to a connector in another region", [][]string{
			{"PROJECT_ID=twice-project", "VPC_EGRESS=direct"},
			{"PROJECT_ID=twice-project", "VPC_EGRESS=connector", "CONNECTOR=conn-2", "REGION=asia-east1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, home := copyRepo(t), t.TempDir()
			for _, env := range tt.runs {
				configure(t, root, home, env...)
			}
			// A new terminal: no PROJECT_ID, nothing but HOME.
			vars := shellVarsAt(t, root, "HOME="+home)
			last := tt.runs[len(tt.runs)-1]
			for _, kv := range last {
				k, v, _ := strings.Cut(kv, "=")
				if vars[k] != v {
					t.Errorf("a new terminal's source deploy/gcp/config.sh gives %s=%q, want the configured %q", k, vars[k], v)
				}
			}
			checkConfigFollowed(t, root, vars)
			svc := readCloudRunServiceAt(t, root)
			validateKnative(t, svc)
			for _, r := range platformRules {
				if r.check != nil {
					if err := r.check(artefactsAt(t, root)); err != nil {
						t.Errorf("the configured copy breaks a platform rule: %s: %v", r.rule, err)
					}
				}
			}
		})
	}
}

func TestConfigureRefusesAnUnknownEgress(t *testing.T) {
	cmd := exec.Command("bash", "deploy/gcp/configure.sh")
	cmd.Dir = copyRepo(t)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "PROJECT_ID=p", "VPC_EGRESS=peering"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "want connector or direct") {
		t.Errorf("configure.sh with VPC_EGRESS=peering: %v %q, want a refusal naming the two choices", err, out)
	}
}

// TestDirectVPCEgressSubnetIsCreated checks the Direct VPC variant has what
// it names: setup.sh creates RUN_SUBNET when VPC_EGRESS=direct (and the
// connector otherwise), and teardown.sh deletes both.
func TestDirectVPCEgressSubnetIsCreated(t *testing.T) {
	setup := readRepoFile(t, "deploy/gcp/setup.sh")
	direct := regexp.MustCompile(`(?s)if \[ "\$\{VPC_EGRESS\}" = direct \]; then\n(.*?)\nelse\n(.*?)\nfi\n`).FindStringSubmatch(setup)
	if direct == nil {
		t.Fatal(`setup.sh has no if [ "${VPC_EGRESS}" = direct ]; then ... else ... fi: the variant is not set up`)
	}
	if !strings.Contains(direct[1], `gcloud compute networks subnets create "${RUN_SUBNET}"`) || !strings.Contains(direct[1], `--range="${RUN_SUBNET_RANGE}"`) {
		t.Errorf("with VPC_EGRESS=direct setup.sh does not create ${RUN_SUBNET} in ${RUN_SUBNET_RANGE}:\n%s", direct[1])
	}
	if !strings.Contains(direct[2], `gcloud compute networks vpc-access connectors create "${CONNECTOR}"`) {
		t.Errorf("otherwise setup.sh does not create the connector:\n%s", direct[2])
	}
	teardown := readRepoFile(t, "deploy/gcp/teardown.sh")
	for _, want := range []string{`subnets delete "${RUN_SUBNET}"`, `connectors delete "${CONNECTOR}"`} {
		if !strings.Contains(teardown, want) {
			t.Errorf("teardown.sh lacks %s", want)
		}
	}
}

// TestNetworkRangesFit checks config.sh's address plan: no two ranges
// overlap (GCP refuses overlapping subnets and ranges in one VPC), and the
// gateway's reserved address is in the nodes' subnet, where setup.sh
// reserves it. The broken plans show the check can say no.
func TestNetworkRangesFit(t *testing.T) {
	ranges := []string{"GKE_SUBNET_RANGE", "PODS_RANGE", "SERVICES_RANGE", "CONTROL_PLANE_RANGE", "CONNECTOR_RANGE", "RUN_SUBNET_RANGE"}
	check := func(vars map[string]string) []string {
		var problems []string
		prefixes := map[string]netip.Prefix{}
		for _, name := range ranges {
			p, err := netip.ParsePrefix(vars[name])
			if err != nil {
				problems = append(problems, name+": "+err.Error())
				continue
			}
			for other, q := range prefixes {
				if p.Overlaps(q) {
					problems = append(problems, name+" "+p.String()+" overlaps "+other+" "+q.String())
				}
			}
			prefixes[name] = p
		}
		ip, err := netip.ParseAddr(vars["GATEWAY_IP"])
		if err != nil || !prefixes["GKE_SUBNET_RANGE"].Contains(ip) {
			problems = append(problems, "GATEWAY_IP "+vars["GATEWAY_IP"]+" is not in GKE_SUBNET_RANGE "+vars["GKE_SUBNET_RANGE"])
		}
		slices.Sort(problems)
		return problems
	}
	vars := shellVars(t, "tutorial-project")
	if p := check(vars); len(p) > 0 {
		t.Errorf("config.sh's address plan: %s", strings.Join(p, "; "))
	}
	for _, broken := range []map[string]string{{"RUN_SUBNET_RANGE": "10.10.8.0/24"}, {"GATEWAY_IP": "10.8.0.5"}} {
		v := map[string]string{}
		for k, x := range vars {
			v[k] = x
		}
		for k, x := range broken {
			v[k] = x
		}
		if p := check(v); len(p) == 0 {
			t.Errorf("the plan with %v passed: the check cannot see an overlap or a misplaced address", broken)
		}
	}
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
