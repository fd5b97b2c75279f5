package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/acme/cloudrun-istio-gke/local/gateway"
)

// A running devstack serves its gateway in the same process as the emulator,
// the backend and the frontend, so its RSS and CPU say nothing about the
// gateway alone. For those figures the load tool starts a second gateway, in a
// process of its own, wired to the running stack exactly as devstack wires
// its own (gateway.LocalConfig), and measures that process.

// GatewayChild is what a gateway child process serves: IstioDir loaded for
// Project, wired to the stack described by StateDir, BackendAddr and
// IdentityURL, its CUSTOM policy asking the decision service at APIKeysAddr
// as MeshConfigFile names it. cmd/loadtest's serve-gateway subcommand takes
// each as a flag.
type GatewayChild struct {
	IstioDir, Project, StateDir, BackendAddr, IdentityURL string
	// CPUProfile, when set, is where the whole run's CPU profile is written.
	CPUProfile                  string
	APIKeysAddr, MeshConfigFile string
}

// ServeGateway is the child's side: it serves c on a free loopback port,
// prints "listening ADDR" on stdout, and runs until ctx ends.
func ServeGateway(ctx context.Context, c GatewayChild, stdout io.Writer) error {
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := gateway.Load(c.IstioDir, c.Project)
	if err != nil {
		return err
	}
	mesh, err := gateway.LoadMeshConfig(c.MeshConfigFile)
	if err != nil {
		return err
	}
	ln, err := serve.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	// Info, so that start-up and shutdown show, down to the "stopped" a
	// SIGTERM must end in; requests go to the access log below.
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := gateway.LocalConfig(res, gateway.Local{
		CredentialDir: filepath.Join(c.StateDir, "pki", "gateway"), Upstream: c.BackendAddr, Logger: log,
		JWKS: gateway.KeysAt(res, c.IdentityURL), MeshConfig: mesh, ExtAuthz: c.APIKeysAddr,
	})
	if err != nil {
		ln.Close()
		return err
	}
	// The access log is written as a real gateway writes it, one JSON line
	// per request to a file (Envoy's /dev/stdout in a pod), so its cost is
	// measured; to /dev/null, so a long run fills no disk.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		ln.Close()
		return err
	}
	defer null.Close()
	cfg.AccessLog = slog.New(slog.NewJSONHandler(null, nil))
	gw, err := gateway.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintln(stdout, "listening", ln.Addr())
	err = serve.Run(ctx, serve.Options{Name: "gateway", Handler: gw.Handler(), Listener: gw.Listener(ln), Logger: log})
	return errors.Join(err, gw.Close())
}

// GatewayProcess is a gateway running in a child process.
type GatewayProcess struct {
	Addr string
	Pid  int
	cmd  *exec.Cmd
}

// StartGatewayProcess re-executes this binary with args, its log going to
// logTo, and waits for it to print "listening ADDR". For cmd/loadtest, args
// are its serve-gateway or serve-bare-proxy subcommand and their flags
// (ServeGateway, ServeBareProxy). procs > 0 sets its GOMAXPROCS, as a CPU limit on
// its pod would (Go sizes GOMAXPROCS from the cgroup's limit); 0 leaves Go's
// default, one per core.
func StartGatewayProcess(ctx context.Context, logTo io.Writer, procs int, args ...string) (*GatewayProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = logTo
	if procs > 0 {
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", procs))
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the gateway process: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the gateway process did not start (said %q): %v", line, err)
	}
	return &GatewayProcess{Addr: addr, Pid: cmd.Process.Pid, cmd: cmd}, nil
}

// Stop sends SIGTERM, as Kubernetes does, and waits for a graceful exit.
func (p *GatewayProcess) Stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return p.cmd.Wait()
}
