package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/acme/cloudrun-istio-gke/loadtest"
)

// The gateway and bare-proxy targets run in child processes of their own, so
// that their CPU and RSS are theirs alone: this binary again, run as one of
// these subcommands. Their command lines are built and parsed here only.
const (
	serveGatewayCmd   = "serve-gateway"
	serveBareProxyCmd = "serve-bare-proxy"
)

// gatewayChildArgs is the command line that makes this binary serve c.
func gatewayChildArgs(c loadtest.GatewayChild) []string {
	return []string{serveGatewayCmd, "-istio-dir", c.IstioDir, "-project", c.Project, "-state-dir", c.StateDir,
		"-backend-addr", c.BackendAddr, "-identity-url", c.IdentityURL, "-cpuprofile", c.CPUProfile,
		"-apikeys-addr", c.APIKeysAddr, "-mesh-config", c.MeshConfigFile}
}

// serveGateway is the serve-gateway subcommand: the child's side of
// gatewayChildArgs.
func serveGateway(ctx context.Context, args []string, stdout io.Writer) error {
	var c loadtest.GatewayChild
	fs := flag.NewFlagSet(serveGatewayCmd, flag.ContinueOnError)
	fs.StringVar(&c.IstioDir, "istio-dir", "", "istio/ to load (required)")
	fs.StringVar(&c.Project, "project", "", "project id the stack runs with (required)")
	fs.StringVar(&c.StateDir, "state-dir", "", "devstack's state dir: the gateway's credentials are in pki/gateway (required)")
	fs.StringVar(&c.BackendAddr, "backend-addr", "", "the backend's host:port (required)")
	fs.StringVar(&c.IdentityURL, "identity-url", "", "the Identity Platform emulator, for the JWKS (required)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the run's CPU profile to this file")
	fs.StringVar(&c.APIKeysAddr, "apikeys-addr", "", "the API-key decision service (gRPC), the CUSTOM policy's provider")
	fs.StringVar(&c.MeshConfigFile, "mesh-config", "", "the Istio install file naming the CUSTOM provider (required)")
	if err := parseChild(fs, args, "istio-dir", "project", "state-dir", "backend-addr", "identity-url", "mesh-config"); err != nil {
		return err
	}
	if err := loadtest.ServeGateway(ctx, c, stdout); err != nil {
		return fmt.Errorf("gateway process: %w", err)
	}
	return nil
}

// bareProxyChildArgs is the command line that makes this binary serve the
// bare proxy with the credentials in certDir, forwarding to backendAddr.
func bareProxyChildArgs(certDir, backendAddr string) []string {
	return []string{serveBareProxyCmd, "-cert-dir", certDir, "-backend-addr", backendAddr}
}

// serveBareProxy is the serve-bare-proxy subcommand: the child's side of
// bareProxyChildArgs.
func serveBareProxy(ctx context.Context, args []string, stdout io.Writer) error {
	var certDir, backendAddr string
	fs := flag.NewFlagSet(serveBareProxyCmd, flag.ContinueOnError)
	fs.StringVar(&certDir, "cert-dir", "", "tls.crt, tls.key and ca.crt: the gateway's (required)")
	fs.StringVar(&backendAddr, "backend-addr", "", "the backend's host:port (required)")
	if err := parseChild(fs, args, "cert-dir", "backend-addr"); err != nil {
		return err
	}
	if err := loadtest.ServeBareProxy(ctx, certDir, backendAddr, stdout); err != nil {
		return fmt.Errorf("bare proxy process: %w", err)
	}
	return nil
}

// parseChild parses a subcommand's flags, which are all it takes, and checks
// that each of required is set.
func parseChild(fs *flag.FlagSet, args []string, required ...string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			return fmt.Errorf("%s: -%s is required", fs.Name(), name)
		}
	}
	return nil
}

// sweepOwnGateway starts a gateway in a process of its own, serving istio/
// plus a DENY policy of rules rules when rules > 0, and runs f against it.
func sweepOwnGateway(ctx context.Context, stdout io.Writer, o options, rules int, f func(loadtest.Target, int) error) error {
	backend, err := url.Parse(o.stack.BackendURL)
	if err != nil {
		return fmt.Errorf("-backend-url: %w", err)
	}
	dir := o.istioDir
	if rules > 0 {
		tmp, err := os.MkdirTemp("", "loadtest-istio-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := loadtest.WithDenyRules(o.istioDir, tmp, rules); err != nil {
			return err
		}
		dir = tmp
	}
	prof := o.cpuProf
	if prof != "" && len(o.rules) > 1 {
		prof = fmt.Sprintf("%s.%d", o.cpuProf, rules)
	}
	return sweepChild(ctx, stdout, o, fmt.Sprintf("gateway process (%d extra deny rules)", rules), "", f,
		gatewayChildArgs(loadtest.GatewayChild{IstioDir: dir, Project: o.project, StateDir: o.stateDir, BackendAddr: backend.Host,
			IdentityURL: o.stack.IdentityURL, CPUProfile: prof, APIKeysAddr: o.keysAddr, MeshConfigFile: o.meshFile})...)
}

// sweepBareProxy starts the control, a bare net/http proxy with the
// gateway's TLS credentials (loadtest.ServeBareProxy), and runs f against it.
func sweepBareProxy(ctx context.Context, stdout io.Writer, o options, f func(loadtest.Target, int) error) error {
	backend, err := url.Parse(o.stack.BackendURL)
	if err != nil {
		return fmt.Errorf("-backend-url: %w", err)
	}
	return sweepChild(ctx, stdout, o, "bare proxy process", "bare net/http proxy (mTLS + proxy only)", f,
		bareProxyChildArgs(filepath.Join(o.stateDir, "pki", "gateway"), backend.Host)...)
}

// sweepChild starts this binary as the child args describe, with its log in
// a temporary file, and runs f against it as the gateway target (renamed
// name, unless empty), measuring the child's process.
func sweepChild(ctx context.Context, stdout io.Writer, o options, what, name string, f func(loadtest.Target, int) error, args ...string) error {
	// Its log (start-up, JWKS fetches, shutdown) to a file, so that it does
	// not interleave with the table; requests go to its access log.
	logFile, err := os.CreateTemp("", "loadtest-child-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	child, err := loadtest.StartGatewayProcess(ctx, logFile, o.gwProcs, args...)
	if err != nil {
		return fmt.Errorf("%w (its log: %s)", err, logFile.Name())
	}
	defer child.Stop()
	fmt.Fprintf(stdout, "%s %d on %s (log %s)\n", what, child.Pid, child.Addr, logFile.Name())
	s := o.stack
	s.GatewayURL = "https://" + child.Addr
	all, err := s.Targets(ctx, max(o.workers[0], 1))
	if err != nil {
		return err
	}
	t := all["gateway"]
	if name != "" {
		t.Name = name
	}
	return f(t, child.Pid)
}
