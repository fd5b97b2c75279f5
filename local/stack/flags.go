package stack

import (
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/acme/cloudrun-istio-gke/internal/config"
)

// ParseFlags reads devstack's command line, falling back to the environment.
func ParseFlags(args []string, getenv func(string) string, usage io.Writer) (Config, slog.Level, error) {
	c := Defaults
	level := slog.LevelWarn
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() {
		fmt.Fprint(usage, `Usage: go run ./cmd/devstack [flags]

Runs the whole flow on this machine: the Identity Platform emulator, the
Google metadata-server and token stand-in, the backend, the local Istio
gateway (enforcing istio/) and the frontend, each on loopback. Prints one line
per component, the command that calls the API as a workload, the demo user,
then "ready".
Ctrl-C (SIGINT) or SIGTERM shuts everything down gracefully.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "directory for the dev PKI, emulator accounts and signing keys")
	fs.StringVar(&c.ProjectID, "project", c.ProjectID, "local Google Cloud project id (token issuer and audience)")
	fs.StringVar(&c.IstioDir, "istio-dir", c.IstioDir, "the istio/ kustomize base the gateway enforces")
	fs.StringVar(&c.IdentityAddr, "identity-addr", c.IdentityAddr, "listen address of the Identity Platform emulator")
	fs.StringVar(&c.GoogleAddr, "google-addr", c.GoogleAddr, "listen address of the Google metadata-server and token stand-in (GCE_METADATA_HOST for workloads)")
	fs.StringVar(&c.BackendAddr, "backend-addr", c.BackendAddr, "listen address of the backend")
	fs.StringVar(&c.GatewayAddr, "gateway-addr", c.GatewayAddr, "listen address of the gateway (HTTPS, mTLS)")
	fs.StringVar(&c.FrontendAddr, "frontend-addr", c.FrontendAddr, "listen address of the frontend")
	fs.StringVar(&c.APIKeysAddr, "apikeys-addr", c.APIKeysAddr, "listen address of the API-key decision service (gRPC ext_authz, asked by the gateway)")
	fs.StringVar(&c.MeshConfigFile, "mesh-config", c.MeshConfigFile, "the Istio install file whose meshConfig names the gateway's ext_authz provider (default: deploy/istio/operator.yaml beside -istio-dir)")
	fs.StringVar(&c.ProductsFile, "api-products", c.ProductsFile, "the API products of partner keys (default: deploy/kubernetes/apikeys/products.yaml beside -istio-dir)")
	fs.BoolVar(&c.AllowNonLoopback, "allow-non-loopback", c.AllowNonLoopback, "allow listen addresses beyond loopback (exposes the emulator's admin API and the backend to the network)")
	fs.StringVar(&c.DemoEmail, "demo-email", c.DemoEmail, "email of the demo user, created if missing")
	fs.StringVar(&c.DemoPassword, "demo-password", c.DemoPassword, "password of the demo user")
	fs.TextVar(&level, "log-level", level, "minimum level of the JSON component logs on stderr: DEBUG, INFO, WARN, ERROR")
	err := config.Parse(fs, args, getenv, map[string]string{
		"state-dir":     "DEVSTACK_STATE_DIR",
		"project":       "DEVSTACK_PROJECT",
		"demo-email":    "DEMO_EMAIL",
		"demo-password": "DEMO_PASSWORD",
		"log-level":     "LOG_LEVEL",
	})
	return c, level, err
}

// PrintSummary writes the lines devstack promises: one per component with its
// address and role, the local difference from production, the demo user.
func (s *Stack) PrintSummary(w io.Writer) {
	fmt.Fprintf(w, "identity  %-24s Identity Platform emulator (stands in for Google Identity Platform)\n", s.IdentityURL)
	fmt.Fprintf(w, "google    %-24s metadata server + OAuth token endpoint + certs (stands in for Google, for workloads)\n", s.GoogleURL)
	fmt.Fprintf(w, "backend   %-24s private API (stands in for the GKE backend in namespace api)\n", s.BackendURL)
	fmt.Fprintf(w, "gateway   %-24s Istio ingress gateway stand-in: mTLS + JWT + istio/ policy, host %s\n", s.GatewayURL, s.GatewayServerName)
	fmt.Fprintf(w, "frontend  %-24s the web app (stands in for Cloud Run) — open this\n", s.FrontendURL)
	fmt.Fprintf(w, "apikeys   %-24s API-key decision service: Envoy ext_authz gRPC for the gateway's CUSTOM policy, in-memory store\n", "grpc://"+s.APIKeysAddr)
	for _, d := range s.LocalDifferences {
		fmt.Fprintf(w, "local     %s (a local difference from istio/: each issuer's keys come from its stand-in)\n", d)
	}
	fmt.Fprintf(w, "apiclient %s as %s (key file: GOOGLE_APPLICATION_CREDENTIALS=%s)\n", s.MachineTLSDir, s.MachineAccount, s.MachineKeyFile)
	fmt.Fprintf(w, "call API  %s\n", s.APIClientCommand())
	fmt.Fprintf(w, "demo user %s / %s\n", s.DemoEmail, s.DemoPassword)
	// The key is shown here only: the service keeps its hash.
	fmt.Fprintf(w, "demo key  %s (app %s, product %s; shown once), call the API as a partner through the frontend:\n", s.DemoAPIKey, s.DemoAppID, DemoProduct)
	fmt.Fprintf(w, "          go run ./cmd/apiclient -url %s/api/secure.json -api-key %s\n", s.FrontendURL, s.DemoAPIKey)
	fmt.Fprintf(w, "          curl -H 'x-api-key: %s' %s/api/secure.json\n", s.DemoAPIKey, s.FrontendURL)
	for _, warning := range s.Warnings {
		fmt.Fprintf(w, "WARNING   %s\n", warning)
	}
	for _, n := range s.IdentityNotices {
		fmt.Fprintf(w, "WARNING   identity state: %s\n", n)
	}
}
