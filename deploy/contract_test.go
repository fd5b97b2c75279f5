package deploy

import (
	"io"
	"testing"

	"github.com/acme/cloudrun-istio-gke/backend"
	"github.com/acme/cloudrun-istio-gke/frontend"
	appsv1 "k8s.io/api/apps/v1"
)

// TestBackendAcceptsItsDeploymentEnvironment starts the backend's own
// configuration parsing with exactly the environment the Deployment gives
// the container, so a renamed variable fails here, not in a crash loop.
func TestBackendAcceptsItsDeploymentEnvironment(t *testing.T) {
	for profile, dir := range overlays {
		t.Run("the "+profile+" backend container's environment is a valid backend configuration", func(t *testing.T) {
			dep := find[appsv1.Deployment](t, render(t, dir), "Deployment", apiNamespace, backendName)
			c := dep.Spec.Template.Spec.Containers[0]
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			cfg, err := backend.ParseConfig(c.Args, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("backend.ParseConfig with env %v: %v", env, err)
			}
			if cfg.Addr != ":8080" || cfg.ProjectID != projectID(t) {
				t.Errorf("backend would listen on %q for project %q, want :8080 and %q", cfg.Addr, cfg.ProjectID, projectID(t))
			}
		})
	}
}

// TestFrontendAcceptsItsCloudRunEnvironment does the same for the frontend
// and the environment of deploy/cloudrun/frontend.yaml (Cloud Run sets PORT).
func TestFrontendAcceptsItsCloudRunEnvironment(t *testing.T) {
	c := readCloudRunService(t).Spec.Template.Spec.Containers[0]
	env := map[string]string{"PORT": "8080"}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	cfg, err := frontend.ParseConfig(c.Args, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("frontend.ParseConfig with the env of %s %v: %v", cloudRunService, env, err)
	}
	if cfg.ClientCertFile != env["CLIENT_TLS_CERT_FILE"] || cfg.ClientKeyFile != env["CLIENT_TLS_KEY_FILE"] || cfg.ClientCAFile != env["CLIENT_TLS_CA_FILE"] {
		t.Errorf("frontend reads cert %q key %q CA %q, want the mounted files %q %q %q", cfg.ClientCertFile, cfg.ClientKeyFile, cfg.ClientCAFile,
			env["CLIENT_TLS_CERT_FILE"], env["CLIENT_TLS_KEY_FILE"], env["CLIENT_TLS_CA_FILE"])
	}
	if cfg.ProjectID != projectID(t) || cfg.GatewayServerName != gatewayHost {
		t.Errorf("frontend project %q server name %q, want %q %q", cfg.ProjectID, cfg.GatewayServerName, projectID(t), gatewayHost)
	}
}

// TestFrontendAcceptsItsLocalClusterEnvironment does the same for the
// frontend Deployment of the local-cluster profile.
func TestFrontendAcceptsItsLocalClusterEnvironment(t *testing.T) {
	dep := find[appsv1.Deployment](t, render(t, overlays["local-cluster"]), "Deployment", frontendNamespace, frontendName)
	c := dep.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	cfg, err := frontend.ParseConfig(c.Args, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("frontend.ParseConfig with env %v: %v", env, err)
	}
	if cfg.Addr != ":8080" || cfg.ProjectID != projectID(t) || cfg.GatewayServerName != gatewayHost {
		t.Errorf("frontend would listen on %q for project %q with server name %q, want :8080, %q and %q",
			cfg.Addr, cfg.ProjectID, cfg.GatewayServerName, projectID(t), gatewayHost)
	}
	if cfg.ClientTLSDir == "" || cfg.ClientCertFile != "" || cfg.ClientKeyFile != "" || cfg.ClientCAFile != "" {
		t.Errorf("frontend reads dir %q, cert %q key %q CA %q: want the one Secret directory", cfg.ClientTLSDir, cfg.ClientCertFile, cfg.ClientKeyFile, cfg.ClientCAFile)
	}
	if cfg.AuthEmulatorHost != "" {
		t.Errorf("frontend points browsers at the auth emulator %q: the gateway checks real Identity Platform tokens", cfg.AuthEmulatorHost)
	}
}
