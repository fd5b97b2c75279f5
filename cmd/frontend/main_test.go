package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/loadtest"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// env is a minimal local configuration: the emulator mode needs no Google
// credentials, and nothing is contacted before the first request.
func env(t testing.TB) map[string]string {
	t.Helper()
	b, err := pki.Ensure(pki.Config{Dir: t.TempDir(), GatewayHosts: []string{"api.internal.example"}})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"GOOGLE_CLOUD_PROJECT":        "demo-acme",
		"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9", // not contacted at start-up
		"GATEWAY_URL":                 "https://127.0.0.1:9",
		"CLIENT_TLS_DIR":              b.FrontendDir,
		"K_SERVICE":                   "frontend",
		"K_REVISION":                  "frontend-00001-abc",
	}
}

func TestRunServesThenShutsDownOnCancel(t *testing.T) {
	vars := env(t)
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", vars["FIREBASE_AUTH_EMULATOR_HOST"])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var logs logtest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, func(k string) string { return vars[k] }, io.MultiWriter(pw, &logs))
		pw.Close()
	}()
	url := serveURL(t, pr)
	go io.Copy(io.Discard, pr)

	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %d, want 200", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v, want a clean shutdown", err)
	}
	out := logs.String()
	for _, want := range []string{`"severity":"INFO"`, `"service":"frontend"`, `"revision":"frontend-00001-abc"`, `"gatewayUrl":"https://127.0.0.1:9"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
}

func TestRunRefusesBadConfigNamingTheField(t *testing.T) {
	vars := env(t)
	delete(vars, "GATEWAY_URL")
	err := run(context.Background(), nil, func(k string) string { return vars[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "GatewayURL") {
		t.Fatalf("run without a gateway: got %v, want an error naming GatewayURL", err)
	}
}

// serveURL reads log lines until the "serving" line and returns its URL.
func serveURL(t testing.TB, r io.Reader) string {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			URL     string `json:"url"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "serving" {
			return line.URL
		}
	}
	t.Fatalf("no serving line in the output (%v)", sc.Err())
	return ""
}

// BenchmarkStartToServing builds the real binary as skaffold.yaml builds the
// image (-tags=disable_grpc_modules) and measures, per start, the time from
// exec to the first 200 from /healthz, and the process's resident memory
// once it has served a few requests and is idle.
//
//	go test -run '^$' -bench StartToServing -benchtime 20x ./cmd/frontend
func BenchmarkStartToServing(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "frontend")
	if out, err := exec.Command("go", "build", "-tags=disable_grpc_modules", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	vars := env(b)
	var environ []string
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	client := &http.Client{Timeout: time.Second}
	var starts, cpu, rss []float64
	for i := 0; b.Loop(); i++ {
		port := 18000 + i%1000
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, "-addr", addr)
		cmd.Env = environ
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			resp, err := client.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Since(start) > 10*time.Second {
				cmd.Process.Kill()
				b.Fatalf("not serving after 10 s: %v", err)
			}
			time.Sleep(time.Millisecond) // polling a separate process; nothing to synchronise on
		}
		starts = append(starts, float64(time.Since(start))/float64(time.Millisecond))
		cpu = append(cpu, cpuMS(b, cmd.Process.Pid))
		for range 5 {
			if resp, err := client.Get("http://" + addr + "/"); err == nil {
				resp.Body.Close()
			}
		}
		p, err := loadtest.ReadProc(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		rss = append(rss, float64(p.RSS)/(1<<20))
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	b.ReportMetric(median(starts), "start-ms")
	b.ReportMetric(slices.Min(starts), "start-min-ms")
	b.ReportMetric(median(cpu), "start-cpu-ms")
	b.ReportMetric(median(rss), "rss-MB")
}

// cpuMS is the CPU time all the process's threads have run so far (from
// /proc/PID/task/*/schedstat, in ns): unlike wall time, other processes on a
// busy machine barely change it.
func cpuMS(b *testing.B, pid int) float64 {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("no schedstat for %d: %v", pid, err)
	}
	var ns float64
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		if fields := strings.Fields(string(data)); len(fields) > 0 {
			v, _ := strconv.ParseFloat(fields[0], 64)
			ns += v
		}
	}
	return ns / 1e6
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func TestHelpPrintsTheFlagsAndTheirVariables(t *testing.T) {
	var out bytes.Buffer
	// command.Main exits 0 on flag.ErrHelp.
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-gateway-url", "GATEWAY_URL", "CLIENT_TLS_CERT_FILE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h output lacks %s:\n%s", want, out.String())
		}
	}
}
