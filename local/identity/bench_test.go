package identity

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/cputime"
	"github.com/acme/cloudrun-istio-gke/loadtest"
)

// Performance targets (docs/performance.md, "Identity Platform emulator"):
// sign-in >= 100 requests/s and refresh >= 1,000 requests/s on 2 cores, idle
// RSS <= 30 MB. The benchmarks drive a real server on loopback with many
// concurrent clients; the clients share the 2 cores, so the figures are a
// lower bound for the emulator alone.
//
//	go test ./local/identity -run '^$' -bench . -benchtime 5s

// report records throughput two ways. req/s is wall-clock, and so depends on
// what else the machine runs. cpu-ms/op is the CPU time of server and
// clients together per request; req/s@2cores = 2 s / cpu-ms/op is the rate
// two otherwise idle cores sustain, a lower bound since it also pays for the
// clients.
func report(b *testing.B, cpuStart time.Duration) {
	cpu := cputime.Used(b) - cpuStart
	perOp := cpu.Seconds() * 1000 / float64(b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(perOp, "cpu-ms/op")
	b.ReportMetric(2000/perOp, "req/s@2cores")
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

func benchPost(b *testing.B, c *http.Client, u, contentType, body string) {
	resp, err := c.Post(u, contentType, strings.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Errorf("status %d; want 200", resp.StatusCode)
	}
}

// BenchmarkSignIn measures accounts:signInWithPassword at the default
// password-hash cost: one scrypt verification and one RS256 signature each.
func BenchmarkSignIn(b *testing.B) {
	_, srv := newTestEmulator(b, func(c *Config) { c.PasswordHashCost = DefaultPasswordHashCost })
	signUp(b, srv, "bench@example.com", "bench password")
	benchPosts(b, srv.URL+signInPath, "application/json", `{"email":"bench@example.com","password":"bench password","returnSecureToken":true}`)
}

// BenchmarkRefresh measures the Secure Token API's refresh, as the JS SDK
// sends it (form-encoded): no password hash, one RS256 signature.
func BenchmarkRefresh(b *testing.B) {
	_, srv := newTestEmulator(b)
	out := signUp(b, srv, "bench@example.com", "bench password")
	body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {out["refreshToken"].(string)}}.Encode()
	benchPosts(b, srv.URL+tokenPath, "application/x-www-form-urlencoded", body)
}

// benchPosts POSTs body to u from 8×GOMAXPROCS concurrent keep-alive
// clients for the whole benchmark, and reports throughput and CPU per
// request.
func benchPosts(b *testing.B, u, contentType, body string) {
	c := benchClient()
	b.SetParallelism(8)
	b.ResetTimer()
	cpuStart := cputime.Used(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchPost(b, c, u, contentType, body)
		}
	})
	report(b, cpuStart)
}

// BenchmarkSignature calibrates: one RS256 signature of an ID token, the
// floor of the refresh path's cost, to compare with the 0.85 ms.
func BenchmarkSignature(b *testing.B) {
	e, _ := newTestEmulator(b)
	uid, err := e.EnsureUser(b.Context(), "bench@example.com", "bench password")
	if err != nil {
		b.Fatal(err)
	}
	a, _ := e.accounts.byUID(uid)
	now := time.Now()
	cpuStart := cputime.Used(b)
	for b.Loop() {
		if _, err := e.idToken(a, now, now); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cputime.Used(b) - cpuStart
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkPasswordHash calibrates: one scrypt verification at the default
// cost, the part of a sign-in that the refresh path does not have.
func BenchmarkPasswordHash(b *testing.B) {
	h := newPasswordHasher(DefaultPasswordHashCost)
	stored, err := h.hash(b.Context(), "bench password")
	if err != nil {
		b.Fatal(err)
	}
	cpuStart := cputime.Used(b)
	for b.Loop() {
		if !h.verify(b.Context(), stored, "bench password") {
			b.Fatal("the right password did not verify")
		}
	}
	cpu := cputime.Used(b) - cpuStart
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/op")
}

// TestIdleRSS measures the resident memory of a process running only the
// emulator (testdata/rssprobe, built here: the test binary itself links the
// Firebase Admin SDK, gRPC and more, and would measure those), after it has
// served a sign-up, a sign-in, a refresh and the JWKS.
func TestIdleRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a helper process")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the probe: %v", err)
	}
	probe := filepath.Join(t.TempDir(), "rssprobe")
	if out, err := exec.CommandContext(t.Context(), goTool, "build", "-o", probe, "./testdata/rssprobe").CombinedOutput(); err != nil {
		t.Fatalf("building testdata/rssprobe: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(t.Context(), probe, t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("rssprobe: %v\n%s", err, stderr.String())
		}
	}()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the probe's address: %v\n%s", err, stderr.String())
	}
	addr = strings.TrimSpace(addr)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("probe printed %q; want host:port", addr)
	}
	srv := &httptest.Server{URL: "http://" + addr}
	started, err := loadtest.ReadProc(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	out := signUp(t, srv, "rss@example.com", "rss password")
	if code, r := call(t, srv, "POST", signInPath, map[string]any{"email": "rss@example.com", "password": "rss password", "returnSecureToken": true}); code != 200 {
		t.Fatalf("sign-in = %d %v", code, r)
	}
	if code, _ := refreshForm(t, srv, out["refreshToken"].(string)); code != 200 {
		t.Fatalf("refresh = %d", code)
	}
	fetchJWKS(t, srv)

	idle, err := loadtest.ReadProc(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("emulator RSS: %.1f MB after start, %.1f MB idle after serving", float64(started.RSS)/(1<<20), float64(idle.RSS)/(1<<20))
	if kb := idle.RSS >> 10; kb > 30*1024 {
		t.Errorf("idle RSS %d kB; want at most 30 MB (30720 kB)", kb)
	}
}
