// Command devstack runs the whole flow on one machine: no cloud account,
// Docker or Kubernetes. See package local/stack.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/acme/cloudrun-istio-gke/internal/command"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/local/stack"
)

func main() {
	command.Main("devstack", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr) }, nil)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, level, err := stack.ParseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg.Logger = logging.New(stderr, level, cfg.ProjectID)
	cfg.Outbox = stdout
	lns, err := stack.Listen(ctx, cfg)
	if err != nil {
		return err
	}
	// The Firebase Admin SDK finds the emulator through the process
	// environment only, so this process's owner sets it, once, here.
	if err := os.Setenv(idtoken.EmulatorHostEnv, lns.AuthEmulatorHost()); err != nil {
		lns.Close()
		return err
	}
	s, err := stack.Start(ctx, lns)
	if err != nil {
		return err
	}
	s.PrintSummary(stdout)
	fmt.Fprintln(stdout, "ready")
	return s.Wait()
}
