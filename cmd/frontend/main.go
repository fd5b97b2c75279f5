// Command frontend is the Cloud Run web app: it signs users in with Identity
// Platform and shows them the secret message from the private GKE backend,
// fetched through the Istio ingress gateway over mutual TLS. All the logic
// is in package frontend; this wires configuration to it.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/acme/cloudrun-istio-gke/frontend"
	"github.com/acme/cloudrun-istio-gke/internal/command"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

func main() {
	command.Main("frontend", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout) }, nil)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := frontend.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	log := logging.New(stdout, slog.LevelInfo, cfg.ProjectID).With(
		// Cloud Run names the service and revision; both help read the logs.
		"service", getenv("K_SERVICE"), "revision", getenv("K_REVISION"))
	log.Info("starting frontend", "config", cfg)

	// One Admin SDK client verifies tokens and revokes sessions at sign-out
	// (Application Default Credentials: Cloud Run's service account).
	idp, err := idtoken.New(ctx, idtoken.Config{ProjectID: cfg.ProjectID, EmulatorHost: cfg.AuthEmulatorHost})
	if err != nil {
		return err
	}
	certs, err := tlsdir.Open(tlsdir.Config{
		Dir: cfg.ClientTLSDir, CertFile: cfg.ClientCertFile, KeyFile: cfg.ClientKeyFile, CAFile: cfg.ClientCAFile,
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("loading the client certificate: %w", err)
	}
	f, err := frontend.New(cfg, frontend.Deps{Verifier: idp, Revoker: idp, GatewayTLS: certs, Logger: log})
	if err != nil {
		return err
	}
	defer f.Close()
	ln, err := serve.Listen(ctx, cfg.Addr)
	if err != nil {
		return err
	}
	log.Info("serving", "url", "http://"+ln.Addr().String())
	return serve.Run(ctx, serve.Options{Name: "frontend", Handler: f.Handler(), Listener: ln, Logger: log})
}
