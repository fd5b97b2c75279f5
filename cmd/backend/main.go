// Command backend runs the private API (package backend) as it runs on GKE:
// it listens on $PORT, verifies ID tokens with Google's keys (or the local
// emulator's with -auth-emulator-host), logs JSON for Cloud
// Logging, and shuts down gracefully on SIGTERM.
package main

import (
	"context"
	"io"
	"os"

	"github.com/acme/cloudrun-istio-gke/backend"
	"github.com/acme/cloudrun-istio-gke/internal/command"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
)

func main() {
	command.Main("backend", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout) }, nil)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := backend.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	log := logging.New(stdout, cfg.LogLevel, cfg.ProjectID)
	log.Info("backend starting", "config", cfg)
	verifier, err := idtoken.New(ctx, idtoken.Config{ProjectID: cfg.ProjectID, EmulatorHost: cfg.AuthEmulatorHost,
		RevocationCheck: cfg.RevocationCheck})
	if err != nil {
		return err
	}
	b, err := backend.New(cfg, backend.Deps{Verifier: verifier, Logger: log})
	if err != nil {
		return err
	}
	ln, err := serve.Listen(ctx, cfg.Addr)
	if err != nil {
		return err
	}
	log.Info("backend listening", "addr", ln.Addr().String())
	return serve.Run(ctx, serve.Options{
		Name: "backend", Handler: b.Handler(), Listener: ln, Logger: log,
		Grace: cfg.Grace, Drain: cfg.Drain, OnShutdown: b.BeginDrain,
	})
}
