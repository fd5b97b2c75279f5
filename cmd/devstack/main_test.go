package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/loadtest"
)

// freePorts runs every component on a port the kernel picks.
var freePorts = []string{"-identity-addr", "127.0.0.1:0", "-google-addr", "127.0.0.1:0", "-backend-addr", "127.0.0.1:0",
	"-gateway-addr", "127.0.0.1:0", "-frontend-addr", "127.0.0.1:0", "-apikeys-addr", "127.0.0.1:0"}

func args(t testing.TB) []string {
	return append([]string{"-state-dir", t.TempDir(), "-istio-dir", filepath.Join("..", "..", "istio")}, freePorts...)
}

func TestRunPrintsOneLinePerComponentThenReadyAndStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args(t), func(string) string { return "" }, w, io.Discard)
		w.Close()
	}()

	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "ready" {
			break
		}
	}
	want := []string{"identity  http://127.0.0.1:", "google    http://127.0.0.1:", "backend   http://127.0.0.1:", "gateway   https://127.0.0.1:",
		"frontend  http://127.0.0.1:", "apikeys   grpc://127.0.0.1:",
		"local     issuer https://accounts.google.com: jwksUri https://www.googleapis.com/oauth2/v3/certs → http://127.0.0.1:",
		"local     issuer https://securetoken.google.com/demo-acme: jwksUri https://www.googleapis.com/", "apiclient ",
		"call API  GCE_METADATA_HOST=127.0.0.1:", "demo user demo@acme.test / ",
		"demo key  ak_", "          go run ./cmd/apiclient -url http://127.0.0.1:", "          curl -H 'x-api-key: ak_", "ready"}
	if len(lines) != len(want) {
		t.Fatalf("devstack printed %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, prefix := range want {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i], prefix)
		}
	}
	cancel()
	go io.Copy(io.Discard, r)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after SIGINT: %v, want a clean shutdown", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("devstack did not shut down within 15 s of its context ending")
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, io.Discard, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h: %v, want flag.ErrHelp", err)
	}
	for _, f := range []string{"-state-dir", "-project", "-istio-dir", "-identity-addr", "-google-addr", "-backend-addr", "-gateway-addr",
		"-frontend-addr", "-apikeys-addr", "-mesh-config", "-api-products", "-demo-email", "DEMO_EMAIL", "-demo-password", "DEMO_PASSWORD", "-log-level"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("-h does not mention %s:\n%s", f, stderr.String())
		}
	}
}

// BenchmarkStartToReady builds the real binary and measures, per start, the
// time from exec to its "ready" line: first in an empty state dir (the dev
// PKI and the emulator's signing key are created), then reusing it. Each
// start ends with SIGTERM and a graceful exit.
//
//	go test -run '^$' -bench StartToReady -benchtime 10x ./cmd/devstack
func BenchmarkStartToReady(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "devstack")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	state := b.TempDir()
	start := func() (time.Duration, int64) {
		cmd := exec.Command(bin, append([]string{"-state-dir", state, "-istio-dir", filepath.Join("..", "..", "istio")}, freePorts...)...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() && sc.Text() != "ready" {
		}
		took := time.Since(t0)
		if sc.Err() != nil || took <= 0 {
			b.Fatalf("no ready line: %v", sc.Err())
		}
		p, err := loadtest.ReadProc(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		cmd.Process.Signal(os.Interrupt)
		go io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("devstack exited with %v after SIGINT, want a clean exit", err)
		}
		return took, p.RSS
	}
	first, _ := start() // fresh state: dev PKI and signing key created
	var reuse, rss []float64
	for b.Loop() {
		d, r := start()
		reuse = append(reuse, float64(d)/float64(time.Millisecond))
		rss = append(rss, float64(r)/(1<<20))
	}
	b.ReportMetric(float64(first)/float64(time.Millisecond), "first-start-ms")
	b.ReportMetric(median(reuse), "start-ms")
	b.ReportMetric(slices.Max(reuse), "start-max-ms")
	b.ReportMetric(median(rss), "ready-rss-MiB")
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}
