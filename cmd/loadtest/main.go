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
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/acme/cloudrun-istio-gke/e2e/load"
	"github.com/acme/cloudrun-istio-gke/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) == 10 && os.Args[1] == load.GatewayChildArg {
		a := os.Args[2:]
		if err := load.ServeGateway(ctx, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest gateway process:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 4 && os.Args[1] == load.BareProxyChildArg {
		if err := load.ServeBareProxy(ctx, os.Args[2], os.Args[3], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest bare proxy process:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var (
		s        load.Stack
		stateDir string
		targets  string
		rates    string
		workers  string
		duration time.Duration
		pid      int
		ownGW    bool
		istioDir string
		project  string
		rules    string
		rssEvery time.Duration
		cpuProf  string
		gwProcs  int
		keysAddr string
		meshFile string
	)
	fs.StringVar(&s.IdentityURL, "identity-url", "http://127.0.0.1:9099", "the Identity Platform emulator (to sign in)")
	fs.StringVar(&s.BackendURL, "backend-url", "http://127.0.0.1:8081", "the backend, reached directly")
	fs.StringVar(&s.GatewayURL, "gateway-url", "https://127.0.0.1:8443", "the gateway")
	fs.StringVar(&s.FrontendURL, "frontend-url", "http://127.0.0.1:8080", "the frontend")
	fs.StringVar(&s.GatewayServerName, "gateway-server-name", "api.internal.example", "the gateway's TLS server name and Host")
	fs.StringVar(&stateDir, "state-dir", ".devstack", "devstack's state dir: the client certificate is in pki/frontend")
	fs.StringVar(&s.Email, "email", "demo@acme.test", "user to sign in as")
	fs.StringVar(&s.Password, "password", "correct-horse-battery", "that user's password")
	fs.StringVar(&targets, "targets", "backend,gateway", "comma-separated: backend, gateway, bare-proxy (the control: net/http's mTLS + HTTP/2 + ReverseProxy alone), frontend; run one after the other, side by side")
	fs.StringVar(&rates, "rate", "500", "requests per second, comma-separated for a sweep; 0 = as fast as the workers go")
	fs.StringVar(&workers, "workers", "64", "concurrent requests (≈ connections), comma-separated for a sweep")
	fs.DurationVar(&duration, "duration", 10*time.Second, "length of each run (at most 10m)")
	fs.IntVar(&pid, "pid", 0, "process to sample for CPU and RSS (the devstack); 0 = none")
	fs.BoolVar(&ownGW, "own-gateway", true, "load a gateway started in a process of its own (measured alone) instead of devstack's")
	fs.StringVar(&istioDir, "istio-dir", "istio", "istio/ for the gateway process")
	fs.StringVar(&project, "project", "demo-acme", "project id the stack runs with")
	fs.StringVar(&keysAddr, "apikeys-addr", "127.0.0.1:9191", "own gateway only: devstack's API-key decision service (gRPC), the CUSTOM policy's provider")
	fs.StringVar(&meshFile, "mesh-config", "deploy/istio/operator.yaml", "own gateway only: the Istio install file naming the CUSTOM provider")
	fs.StringVar(&rules, "policy-rules", "0", "own gateway only: a DENY AuthorizationPolicy of this many never-matching rules added to istio/, comma-separated for a sweep")
	fs.DurationVar(&rssEvery, "rss-every", 0, "also print the measured process's RSS at every multiple of this (a soak's curve); 0 = peak and end only")
	fs.BoolVar(&s.GatewayHTTP1, "http1", false, "speak HTTP/1.1 to the gateway, one kept-alive connection per worker (default HTTP/2, as the frontend does: one connection)")
	fs.IntVar(&gwProcs, "gateway-procs", 0, "own gateway and bare proxy: their GOMAXPROCS, as a CPU limit on a pod would set it (0: one per core)")
	fs.StringVar(&cpuProf, "gateway-cpuprofile", "", "own gateway only: write its CPU profile to this file (with -policy-rules, one file per size: FILE.N)")
	if err := config.Parse(fs, args, getenv, map[string]string{"email": "DEMO_EMAIL", "password": "DEMO_PASSWORD", "state-dir": "DEVSTACK_STATE_DIR"}); err != nil {
		return err
	}
	s.ClientCertDir = filepath.Join(stateDir, "pki", "frontend")
	rateList, err := ints("rate", rates)
	if err != nil {
		return err
	}
	workerList, err := ints("workers", workers)
	if err != nil {
		return err
	}
	ruleList, err := ints("policy-rules", rules)
	if err != nil {
		return err
	}
	if !ownGW && (len(ruleList) > 1 || ruleList[0] != 0) {
		return errors.New("-policy-rules needs -own-gateway: devstack's gateway serves istio/ as it is")
	}
	// Checked before anything runs, so that a typo in the last target does
	// not surface only after the first ones have been loaded for minutes.
	var names []string
	for _, name := range strings.Split(targets, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains([]string{"backend", "gateway", "bare-proxy", "frontend"}, name) {
			return fmt.Errorf("-targets: unknown target %q (backend, gateway, bare-proxy, frontend)", name)
		}
		names = append(names, name)
	}

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tdeny rules\tworkers\trate\treq/s\tp50\tp90\tp99\tmax\terrors\tdropped\tCPU\tRSS peak\tRSS end\tanon peak\t")
	sweep := func(t load.Target, rules, pid int) error {
		for _, w := range workerList {
			for _, rate := range rateList {
				if err := runOne(ctx, tw, t, rules, w, rate, duration, pid, rssEvery); err != nil {
					return err
				}
				tw.Flush()
			}
		}
		return nil
	}
	for _, name := range names {
		if name == "bare-proxy" {
			if err := sweepBareProxy(ctx, stdout, s, stateDir, gwProcs, workerList[0], func(t load.Target, pid int) error {
				return sweep(t, 0, pid)
			}); err != nil {
				return err
			}
			continue
		}
		if name == "gateway" && ownGW {
			for _, n := range ruleList {
				prof := cpuProf
				if prof != "" && len(ruleList) > 1 {
					prof = fmt.Sprintf("%s.%d", cpuProf, n)
				}
				if err := sweepOwnGateway(ctx, stdout, s, istioDir, project, stateDir, prof, keysAddr, meshFile, n, gwProcs, workerList[0], func(t load.Target, pid int) error {
					return sweep(t, n, pid)
				}); err != nil {
					return err
				}
			}
			continue
		}
		all, err := s.Targets(ctx, max(workerList[0], 1))
		if err != nil {
			return err
		}
		if err := sweep(all[name], 0, pid); err != nil {
			return err
		}
	}
	return tw.Flush()
}

// sweepOwnGateway starts a gateway in a process of its own, serving istio/
// plus a DENY policy of rules rules when rules > 0, and runs f against it.
func sweepOwnGateway(ctx context.Context, stdout io.Writer, s load.Stack, istioDir, project, stateDir, cpuProfile, keysAddr, meshFile string, rules, procs, workers int, f func(load.Target, int) error) error {
	backend, err := url.Parse(s.BackendURL)
	if err != nil {
		return fmt.Errorf("-backend-url: %w", err)
	}
	dir := istioDir
	if rules > 0 {
		tmp, err := os.MkdirTemp("", "loadtest-istio-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := load.WithDenyRules(istioDir, tmp, rules); err != nil {
			return err
		}
		dir = tmp
	}
	return sweepChild(ctx, stdout, s, procs, workers, fmt.Sprintf("gateway process (%d extra deny rules)", rules), "", f,
		load.GatewayChildArg, dir, project, stateDir, backend.Host, s.IdentityURL, cpuProfile, keysAddr, meshFile)
}

// sweepBareProxy starts the control, a bare net/http proxy with the
// gateway's TLS credentials (load.ServeBareProxy), and runs f against it.
func sweepBareProxy(ctx context.Context, stdout io.Writer, s load.Stack, stateDir string, procs, workers int, f func(load.Target, int) error) error {
	backend, err := url.Parse(s.BackendURL)
	if err != nil {
		return fmt.Errorf("-backend-url: %w", err)
	}
	return sweepChild(ctx, stdout, s, procs, workers, "bare proxy process", "bare net/http proxy (mTLS + proxy only)", f,
		load.BareProxyChildArg, filepath.Join(stateDir, "pki", "gateway"), backend.Host)
}

// sweepChild starts this binary as the child args describe, with its log in
// a temporary file, and runs f against it as the gateway target (renamed
// name, unless empty), measuring the child's process.
func sweepChild(ctx context.Context, stdout io.Writer, s load.Stack, procs, workers int, what, name string, f func(load.Target, int) error, args ...string) error {
	// Its log (start-up, JWKS fetches, shutdown) to a file, so that it does
	// not interleave with the table; requests go to its access log.
	logFile, err := os.CreateTemp("", "loadtest-child-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	child, err := load.StartGatewayProcess(ctx, logFile, procs, args...)
	if err != nil {
		return fmt.Errorf("%w (its log: %s)", err, logFile.Name())
	}
	defer child.Stop()
	fmt.Fprintf(stdout, "%s %d on %s (log %s)\n", what, child.Pid, child.Addr, logFile.Name())
	s.GatewayURL = "https://" + child.Addr
	all, err := s.Targets(ctx, max(workers, 1))
	if err != nil {
		return err
	}
	t := all["gateway"]
	if name != "" {
		t.Name = name
	}
	return f(t, child.Pid)
}

func runOne(ctx context.Context, w io.Writer, t load.Target, rules, workers, rate int, d time.Duration, pid int, rssEvery time.Duration) error {
	// A fresh pool per run, sized to its workers, warmed so the first
	// handshakes are not counted.
	client := &http.Client{Timeout: t.Client.Timeout, Transport: t.Client.Transport.(*http.Transport).Clone()}
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = workers
	client.Transport.(*http.Transport).MaxConnsPerHost = workers
	defer client.CloseIdleConnections()
	cfg := load.Config{Target: t.URL, Rate: rate, Workers: workers, Duration: d, NewRequest: t.NewRequest, Client: client, WantStatus: http.StatusOK}
	warm := cfg
	warm.Rate, warm.Duration, warm.MaxRequests = 0, 5*time.Second, 4*workers
	if _, err := load.Run(ctx, warm); err != nil {
		return err
	}
	var sampler *load.Sampler
	if pid != 0 {
		var err error
		if sampler, err = load.Sample(pid, 200*time.Millisecond); err != nil {
			return err
		}
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	cpu, rssPeak, rssEnd, anonPeak := "-", "-", "-", "-"
	var usage load.Usage
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
		for _, p := range load.Every(usage.RSS, rssEvery) {
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
