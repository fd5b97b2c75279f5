// Command loadtest drives bounded, fixed-rate load at a running local stack
// (go run ./cmd/devstack) and reports latency percentiles, throughput,
// errors, and the CPU and RSS of the process serving it. It sends traffic to
// loopback only and stops by itself. docs/performance.md records its figures.
//
//	go run ./cmd/devstack &
//	go run ./cmd/loadtest -targets backend,gateway -rate 500 -duration 20s -pid $(pgrep -f devstack)
//
// The gateway target is, by default, a second gateway the tool starts in a
// process of its own, wired to the running stack as devstack wires its own:
// its CPU and RSS are then the gateway's alone. -policy-rules gives that
// gateway a larger policy to evaluate (cost against policy size), -workers a
// list of concurrency levels, and -rss-every the RSS curve of a soak:
//
//	go run ./cmd/loadtest -targets gateway -rate 1000 -duration 5m -rss-every 1m
//
// The bare-proxy target is the control: the same kind of child process
// serving only net/http's mutual TLS and HTTP/2 and httputil.ReverseProxy,
// so that the gateway's figures can be split into its own work and the floor
// of any net/http proxy on the machine:
//
//	go run ./cmd/loadtest -targets backend,gateway,bare-proxy -rate 500 -duration 20s -workers 16
//
// Those child processes are this binary again, run as one of two
// subcommands (children.go); they are not meant to be typed by hand:
//
//	loadtest serve-gateway -istio-dir istio -project demo-acme -state-dir .devstack ...
//	loadtest serve-bare-proxy -cert-dir .devstack/pki/gateway -backend-addr 127.0.0.1:8081
package main

import (
	"context"
	"io"
	"os"

	"github.com/acme/cloudrun-istio-gke/internal/command"
)

func main() {
	command.Main("loadtest", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout) }, nil)
}

// run is the whole command: a child-process subcommand when the first
// argument names one, otherwise a load run configured by flags.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case serveGatewayCmd:
			return serveGateway(ctx, args[1:], stdout)
		case serveBareProxyCmd:
			return serveBareProxy(ctx, args[1:], stdout)
		}
	}
	return runLoad(ctx, args, getenv, stdout)
}
