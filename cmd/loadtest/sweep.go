package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/config"
	"github.com/acme/cloudrun-istio-gke/loadtest"
	"github.com/acme/cloudrun-istio-gke/local/stack/defaults"
)

// options is a load run's command line, parsed and checked.
type options struct {
	stack    loadtest.Stack
	stateDir string
	targets  []string
	rates    []int
	workers  []int
	duration time.Duration
	pid      int
	ownGW    bool
	istioDir string
	project  string
	rules    []int
	rssEvery time.Duration
	cpuProf  string
	gwProcs  int
	keysAddr string
	meshFile string
}

// parseOptions parses args (with environment fallbacks from getenv) and
// checks them all before anything runs, so that a typo in the last target
// does not surface only after the first ones have been loaded for minutes.
func parseOptions(args []string, getenv func(string) string) (options, error) {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var (
		o                       options
		targets, rates, workers string
		rules                   string
	)
	s := &o.stack
	fs.StringVar(&s.IdentityURL, "identity-url", "http://"+defaults.IdentityAddr, "the Identity Platform emulator (to sign in)")
	fs.StringVar(&s.BackendURL, "backend-url", "http://"+defaults.BackendAddr, "the backend, reached directly")
	fs.StringVar(&s.GatewayURL, "gateway-url", "https://"+defaults.GatewayAddr, "the gateway")
	fs.StringVar(&s.FrontendURL, "frontend-url", "http://"+defaults.FrontendAddr, "the frontend")
	fs.StringVar(&s.GatewayServerName, "gateway-server-name", defaults.GatewayServerName, "the gateway's TLS server name and Host")
	fs.StringVar(&o.stateDir, "state-dir", defaults.StateDir, "devstack's state dir: the client certificate is in pki/frontend")
	fs.StringVar(&s.Email, "email", defaults.DemoEmail, "user to sign in as")
	fs.StringVar(&s.Password, "password", defaults.DemoPassword, "that user's password")
	fs.StringVar(&targets, "targets", "backend,gateway", "comma-separated: backend, gateway, bare-proxy (the control: net/http's mTLS + HTTP/2 + ReverseProxy alone), frontend; run one after the other, side by side")
	fs.StringVar(&rates, "rate", "500", "requests per second, comma-separated for a sweep; 0 = as fast as the workers go")
	fs.StringVar(&workers, "workers", "64", "concurrent requests (≈ connections), comma-separated for a sweep")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each run (at most 10m)")
	fs.IntVar(&o.pid, "pid", 0, "process to sample for CPU and RSS (the devstack); 0 = none")
	fs.BoolVar(&o.ownGW, "own-gateway", true, "load a gateway started in a process of its own (measured alone) instead of devstack's")
	fs.StringVar(&o.istioDir, "istio-dir", defaults.IstioDir, "istio/ for the gateway process")
	fs.StringVar(&o.project, "project", defaults.ProjectID, "project id the stack runs with")
	fs.StringVar(&o.keysAddr, "apikeys-addr", defaults.APIKeysAddr, "own gateway only: devstack's API-key decision service (gRPC), the CUSTOM policy's provider")
	fs.StringVar(&o.meshFile, "mesh-config", "deploy/istio/operator.yaml", "own gateway only: the Istio install file naming the CUSTOM provider")
	fs.StringVar(&rules, "policy-rules", "0", "own gateway only: a DENY AuthorizationPolicy of this many never-matching rules added to istio/, comma-separated for a sweep")
	fs.DurationVar(&o.rssEvery, "rss-every", 0, "also print the measured process's RSS at every multiple of this (a soak's curve); 0 = peak and end only")
	fs.BoolVar(&s.GatewayHTTP1, "http1", false, "speak HTTP/1.1 to the gateway, one kept-alive connection per worker (default HTTP/2, as the frontend does: one connection)")
	fs.IntVar(&o.gwProcs, "gateway-procs", 0, "own gateway and bare proxy: their GOMAXPROCS, as a CPU limit on a pod would set it (0: one per core)")
	fs.StringVar(&o.cpuProf, "gateway-cpuprofile", "", "own gateway only: write its CPU profile to this file (with -policy-rules, one file per size: FILE.N)")
	if err := config.Parse(fs, args, getenv, map[string]string{"email": "DEMO_EMAIL", "password": "DEMO_PASSWORD", "state-dir": "DEVSTACK_STATE_DIR"}); err != nil {
		return o, err
	}
	s.ClientCertDir = filepath.Join(o.stateDir, "pki", "frontend")
	var err error
	if o.rates, err = ints("rate", rates); err != nil {
		return o, err
	}
	if o.workers, err = ints("workers", workers); err != nil {
		return o, err
	}
	if o.rules, err = ints("policy-rules", rules); err != nil {
		return o, err
	}
	if !o.ownGW && (len(o.rules) > 1 || o.rules[0] != 0) {
		return o, errors.New("-policy-rules needs -own-gateway: devstack's gateway serves istio/ as it is")
	}
	for _, name := range strings.Split(targets, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains([]string{"backend", "gateway", "bare-proxy", "frontend"}, name) {
			return o, fmt.Errorf("-targets: unknown target %q (backend, gateway, bare-proxy, frontend)", name)
		}
		o.targets = append(o.targets, name)
	}
	return o, nil
}

// runLoad loads each target in turn, as args say, and prints one table row
// per run.
func runLoad(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parseOptions(args, getenv)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tdeny rules\tworkers\trate\treq/s\tp50\tp90\tp99\tmax\terrors\tdropped\tCPU\tRSS peak\tRSS end\tanon peak\t")
	sweep := func(t loadtest.Target, rules, pid int) error {
		for _, w := range o.workers {
			for _, rate := range o.rates {
				if err := runOne(ctx, tw, t, rules, w, rate, o.duration, pid, o.rssEvery); err != nil {
					return err
				}
				tw.Flush()
			}
		}
		return nil
	}
	for _, name := range o.targets {
		if name == "bare-proxy" {
			if err := sweepBareProxy(ctx, stdout, o, func(t loadtest.Target, pid int) error {
				return sweep(t, 0, pid)
			}); err != nil {
				return err
			}
			continue
		}
		if name == "gateway" && o.ownGW {
			for _, n := range o.rules {
				if err := sweepOwnGateway(ctx, stdout, o, n, func(t loadtest.Target, pid int) error {
					return sweep(t, n, pid)
				}); err != nil {
					return err
				}
			}
			continue
		}
		all, err := o.stack.Targets(ctx, max(o.workers[0], 1))
		if err != nil {
			return err
		}
		if err := sweep(all[name], 0, o.pid); err != nil {
			return err
		}
	}
	return tw.Flush()
}

func runOne(ctx context.Context, w io.Writer, t loadtest.Target, rules, workers, rate int, d time.Duration, pid int, rssEvery time.Duration) error {
	// A fresh pool per run, sized to its workers, warmed so the first
	// handshakes are not counted.
	client := &http.Client{Timeout: t.Client.Timeout, Transport: t.Client.Transport.(*http.Transport).Clone()}
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = workers
	client.Transport.(*http.Transport).MaxConnsPerHost = workers
	defer client.CloseIdleConnections()
	cfg := loadtest.Config{Target: t.URL, Rate: rate, Workers: workers, Duration: d, NewRequest: t.NewRequest, Client: client, WantStatus: http.StatusOK}
	warm := cfg
	warm.Rate, warm.Duration, warm.MaxRequests = 0, 5*time.Second, 4*workers
	if _, err := loadtest.Run(ctx, warm); err != nil {
		return err
	}
	var sampler *loadtest.Sampler
	if pid != 0 {
		var err error
		if sampler, err = loadtest.Sample(pid, 200*time.Millisecond); err != nil {
			return err
		}
	}
	res, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return err
	}
	cpu, rssPeak, rssEnd, anonPeak := "-", "-", "-", "-"
	var usage loadtest.Usage
	if sampler != nil {
		u, err := sampler.Stop()
		if err != nil {
			return err
		}
		usage = u
		cpu = fmt.Sprintf("%.2f", u.CPU)
		rssPeak, rssEnd, anonPeak = mib(u.PeakRSS), mib(u.EndRSS), mib(u.PeakAnonRSS)
	}
	fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", t.Name, rules, workers, rate, res.Throughput(),
		ms(res.Latencies.P50), ms(res.Latencies.P90), ms(res.Latencies.P99), ms(res.Latencies.Max),
		res.Errors, res.Dropped, cpu, rssPeak, rssEnd, anonPeak)
	for kind, n := range res.ErrorKinds {
		fmt.Fprintf(w, "  error\t%s ×%d\t\t\t\t\t\t\t\t\t\t\t\t\t\n", kind, n)
	}
	if rssEvery > 0 && sampler != nil {
		for _, p := range loadtest.Every(usage.RSS, rssEvery) {
			fmt.Fprintf(w, "  RSS at\t%s\t\t\t\t\t\t\t\t\t\t\t%s\t\t\n", p.At.Round(100*time.Millisecond), mib(p.RSS))
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }
func mib(b int64) string        { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

func ints(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n < 0 {
			return nil, fmt.Errorf("-%s: %q is not a non-negative number", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}
