// Command backend runs the private API (package backend) as it runs on GKE:
// it listens on $PORT, verifies ID tokens with Google's keys (or the local
// emulator's when FIREBASE_AUTH_EMULATOR_HOST is set), logs JSON for Cloud
// Logging, and shuts down gracefully on SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/acme/cloudrun-istio-gke/backend"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
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
	return backend.New(cfg, verifier, log).Run(ctx)
}
