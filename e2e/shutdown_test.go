package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/loadtest"
)

// killAfter is when Cloud Run and Kubernetes (terminationGracePeriodSeconds)
// send SIGKILL after SIGTERM by default: a graceful exit must come sooner.
const killAfter = 10 * time.Second

// slowUpstreamDelay keeps requests in flight: at the load's rate, dozens are
// waiting on it when SIGTERM comes.
const slowUpstreamDelay = 250 * time.Millisecond

// TestSIGTERMUnderLoad builds each server binary, runs it on loopback under
// open-loop load over kept-alive connections, with a slow upstream where the
// test can put one, so that dozens of requests are in flight, and sends it a
// real SIGTERM. Besides, clients hold requests in flight, withholding their
// last bytes until the component logs "shutting down": for every target a
// GET whose headers are still arriving (a slow client, on a connection the
// server accepted before the signal), and where a handler reads a body, a
// POST whose handler is already reading it (the server said 100 Continue):
// devstack's components call each other, and a held sign-in at its frontend
// asks its emulator to check the token after the signal.
//
// Every request must get its normal answer or be refused cleanly (refused or
// reset while connecting, once the listener has closed: see refusedAtDial):
// no reset of a made connection, no EOF, no 5xx. Every
// held request must be answered normally, the process must exit 0 well
// before the SIGKILL would come, and log "stopped" for each component.
func TestSIGTERMUnderLoad(t *testing.T) {
	st := requireLocal(t, "the servers are built from this tree and wired to the local stack's emulator and PKI")
	if testing.Short() {
		t.Skip("builds four binaries and runs each under load")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bins := buildCommands(t, root, "backend", "frontend", "devstack", "loadtest")
	tok := userTokens(t).valid
	emulatorHost := strings.TrimPrefix(st.IdentityURL, "http://")
	slowBackend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(slowUpstreamDelay) // the slow endpoint itself, not synchronisation
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"Hello World"}`)
	}))
	t.Cleanup(slowBackend.Close)
	bearer := http.Header{"Authorization": {"Bearer " + tok}}

	tests := []struct {
		name  string
		start func(t *testing.T) *serverUnderTest
	}{
		{"backend, its token lookups slow", func(t *testing.T) *serverUnderTest {
			emu := slowLookups(t, st.Emulator.Handler())
			p := startServer(t, bins["backend"], []string{"-addr", "127.0.0.1:0"},
				"GOOGLE_CLOUD_PROJECT=demo-acme", "FIREBASE_AUTH_EMULATOR_HOST="+emu)
			addr := p.logField(t, "backend listening", "addr")
			p.targets = []shutdownTarget{{component: "backend", url: "http://" + addr + "/api/secure.json", header: bearer}}
			return p
		}},
		{"backend draining as on GKE: readiness fails at once, the API answers until the listener closes", func(t *testing.T) *serverUnderTest {
			emu := slowLookups(t, st.Emulator.Handler())
			p := startServer(t, bins["backend"], []string{"-addr", "127.0.0.1:0", "-drain", "1s"},
				"GOOGLE_CLOUD_PROJECT=demo-acme", "FIREBASE_AUTH_EMULATOR_HOST="+emu)
			addr := p.logField(t, "backend listening", "addr")
			p.targets = []shutdownTarget{{component: "backend", url: "http://" + addr + "/api/secure.json", header: bearer}}
			p.drain, p.readiness = time.Second, &shutdownTarget{component: "backend", url: "http://" + addr + "/api/healthz"}
			return p
		}},
		{"frontend, relaying to a gateway whose backend is slow", func(t *testing.T) *serverUnderTest {
			gw := startOwnGateway(t, ownGatewayOptions{upstream: slowBackend.Listener.Addr().String()})
			p := startServer(t, bins["frontend"], []string{"-addr", "127.0.0.1:0"},
				"GOOGLE_CLOUD_PROJECT=demo-acme", "FIREBASE_AUTH_EMULATOR_HOST="+emulatorHost,
				"GATEWAY_URL="+gw.url, "CLIENT_TLS_DIR="+env.clientCertDir)
			u := p.logField(t, "serving", "url")
			p.targets = []shutdownTarget{{component: "frontend", url: u + "/api/secure.json", header: http.Header{"Authorization": {"Bearer " + tok}}}}
			p.held = []heldPost{newSession("frontend", u, tok)}
			return p
		}},
		{"gateway in a process of its own, its backend slow", func(t *testing.T) *serverUnderTest {
			p := startServer(t, bins["loadtest"], []string{"serve-gateway", "-istio-dir", filepath.Join(root, "istio"), "-project", st.ProjectID,
				"-state-dir", filepath.Dir(st.PKIDir), "-backend-addr", slowBackend.Listener.Addr().String(), "-identity-url", st.IdentityURL,
				"-apikeys-addr", st.APIKeysAddr, "-mesh-config", filepath.Join(root, "deploy", "istio", "operator.yaml")})
			addr := strings.TrimPrefix(p.waitLine(t, "the gateway's address", func(l string) bool { return strings.HasPrefix(l, "listening ") }), "listening ")
			p.targets = []shutdownTarget{{component: "gateway", url: "https://" + addr + "/api/secure.json", host: env.gatewayServerName,
				header: bearer, tls: clientTLS(t, env.clientCertDir, true)}}
			return p
		}},
		{"devstack, load on each of its four components", func(t *testing.T) *serverUnderTest {
			state, password := t.TempDir(), randomString(12)
			p := startServer(t, bins["devstack"], []string{"-state-dir", state, "-istio-dir", filepath.Join(root, "istio"),
				"-identity-addr", "127.0.0.1:0", "-google-addr", "127.0.0.1:0", "-backend-addr", "127.0.0.1:0", "-gateway-addr", "127.0.0.1:0",
				"-frontend-addr", "127.0.0.1:0", "-demo-password", password, "-log-level", "INFO"})
			urls := map[string]string{}
			p.waitLine(t, "devstack's ready line", func(l string) bool {
				if f := strings.Fields(l); len(f) >= 2 && strings.Contains(f[1], "://127.0.0.1:") {
					urls[f[0]] = f[1]
				}
				return l == "ready"
			})
			ic := identityClient{base: urls["identity"] + "/identitytoolkit.googleapis.com/v1", apiKey: "shutdown-test", hc: &http.Client{Timeout: 10 * time.Second}}
			res, err := ic.signIn(t.Context(), "demo@acme.test", password)
			if err != nil {
				t.Fatalf("signing in to devstack's emulator: %v", err)
			}
			// Only verified emails get through; a token issued after the
			// verification carries it.
			verifyEmailAt(t, urls["identity"], res.LocalID)
			if res, err = ic.signIn(t.Context(), "demo@acme.test", password); err != nil {
				t.Fatalf("signing in to devstack's emulator again: %v", err)
			}
			bearer := http.Header{"Authorization": {"Bearer " + res.IDToken}}
			p.targets = []shutdownTarget{
				{component: "frontend", url: urls["frontend"] + "/api/secure.json", header: http.Header{"Authorization": {"Bearer " + res.IDToken}}},
				{component: "gateway", url: urls["gateway"] + "/api/secure.json", host: env.gatewayServerName, header: bearer,
					tls: clientTLS(t, filepath.Join(state, "pki", "frontend"), true)},
				{component: "backend", url: urls["backend"] + "/api/secure.json", header: bearer},
				{component: "identity", url: urls["identity"] + "/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"},
			}
			// The frontend's held sign-in asks the emulator to check the
			// token after SIGTERM: the emulator must still be there.
			p.held = []heldPost{newSession("frontend", urls["frontend"], res.IDToken), {
				component: "identity", url: urls["identity"] + "/identitytoolkit.googleapis.com/v1/accounts:signUp?key=shutdown-test",
				header: http.Header{"Content-Type": {"application/json"}}, want: http.StatusOK,
				body: `{"email":"held-across-sigterm@example.com","password":"` + randomString(12) + `"}`,
			}}
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.start(t)
			p.sigtermUnderLoad(t)
		})
	}
}

// buildCommands builds ./cmd/NAME for each name into a temporary directory,
// in one go build so that the links run side by side. Linking is most of
// this test's time: without the symbol table and DWARF (-s -w) it is a third
// shorter, and panics still print their stacks.
func buildCommands(t *testing.T, root string, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-ldflags=-s -w", "-o", dir + string(filepath.Separator)}
	bins := map[string]string{}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
		bins[n] = filepath.Join(dir, n)
	}
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bins
}

// slowLookups serves the emulator with every accounts:lookup (what the
// Admin SDK calls, in emulator mode, for each token it verifies) held for
// slowUpstreamDelay, and returns its host:port.
func slowLookups(t *testing.T, emu http.Handler) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/accounts:lookup") {
			time.Sleep(slowUpstreamDelay) // the slow upstream itself, not synchronisation
		}
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// shutdownTarget is one endpoint of a server under test and how to ask it.
type shutdownTarget struct {
	component string // whose "shutting down" releases the held requests
	url       string
	host      string // Host header, when not the URL's
	header    http.Header
	tls       *tls.Config // the client's, for an https URL
}

func (tg shutdownTarget) request(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.url, nil)
	if err != nil {
		return nil, err
	}
	req.Host = tg.host
	for k, v := range tg.header {
		req.Header[k] = v
	}
	return req, nil
}

// client keeps up to conns connections alive, over HTTP/2 for TLS as the
// frontend speaks to the gateway.
func (tg shutdownTarget) client(conns int) *http.Client {
	var cfg *tls.Config
	if tg.tls != nil {
		cfg = tg.tls.Clone() // the transport adds its protocols to it
	}
	return &http.Client{Timeout: killAfter, Transport: &http.Transport{
		TLSClientConfig: cfg, ForceAttemptHTTP2: tg.tls != nil, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
	}}
}

// heldPost is a POST that its client holds in flight: see hold.
type heldPost struct {
	component string // whose "shutting down" releases it
	url       string
	header    http.Header
	body      string
	want      int // its normal answer's status
}

// newSession is the sign-in module's POST /session to the frontend at base,
// with the double-submit CSRF token (any well-formed one) in cookie and header.
func newSession(component, base, idToken string) heldPost {
	csrf := randomString(32)
	return heldPost{component: component, url: base + "/session", want: http.StatusNoContent,
		header: http.Header{"Content-Type": {"application/json"}, "Origin": {base},
			"Cookie": {"csrf=" + csrf}, "X-Csrf-Token": {csrf}},
		body: `{"idToken":"` + idToken + `"}`}
}

// heldRequest is a request in flight whose client withholds its last bytes
// until its component logs "shutting down".
type heldRequest struct {
	component, url string
	want           int // the status of its normal answer
	conn           net.Conn
	br             *bufio.Reader
	req            *http.Request
	rest           []byte // what the client has not sent yet
}

// holdHeaders sends a GET to tg but for the CRLF that ends its headers, on a
// connection of its own, as a slow client does.
func (tg shutdownTarget) holdHeaders(t *testing.T) heldRequest {
	t.Helper()
	req, err := tg.request(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		t.Fatal(err)
	}
	h := heldRequest{component: tg.component, url: tg.url, want: http.StatusOK, req: req, rest: []byte("\r\n")}
	h.dial(t, tg.tls)
	h.send(t, bytes.TrimSuffix(wire.Bytes(), h.rest))
	return h
}

// hold sends the headers with Expect: 100-continue, waits for the 100 that
// net/http sends when the handler first reads the body, then sends all of
// the body but its last byte: the handler is running, reading the body.
func (p heldPost) hold(t *testing.T) heldRequest {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.url, strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	req.Header.Set("Expect", "100-continue")
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		t.Fatal(err)
	}
	headers, _, _ := bytes.Cut(wire.Bytes(), []byte("\r\n\r\n"))
	h := heldRequest{component: p.component, url: p.url, want: p.want, req: req, rest: []byte(p.body[len(p.body)-1:])}
	h.dial(t, nil)
	h.send(t, append(headers, "\r\n\r\n"...))
	resp, err := http.ReadResponse(h.br, req)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("holding POST %s: %v %v, want 100 Continue", p.url, resp, err)
	}
	h.send(t, []byte(p.body[:len(p.body)-1]))
	return h
}

func (h *heldRequest) dial(t *testing.T, cfg *tls.Config) {
	t.Helper()
	var err error
	if cfg != nil {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"http/1.1"} // the request is written by hand
		h.conn, err = tls.Dial("tcp", h.req.URL.Host, cfg)
	} else {
		h.conn, err = net.Dial("tcp", h.req.URL.Host)
	}
	if err != nil {
		t.Fatalf("holding a request to %s: %v", h.url, err)
	}
	t.Cleanup(func() { h.conn.Close() })
	h.conn.SetDeadline(time.Now().Add(killAfter))
	h.br = bufio.NewReader(h.conn)
}

func (h heldRequest) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := h.conn.Write(b); err != nil {
		t.Fatalf("holding a request to %s: %v", h.url, err)
	}
}

// finish sends the rest of the request and returns the answer's status and body.
func (h heldRequest) finish() (int, string, error) {
	if _, err := h.conn.Write(h.rest); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(h.br, h.req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body), err
}

// serverUnderTest is a server binary running in a child process.
type serverUnderTest struct {
	cmd       *exec.Cmd
	out       *outputLines
	exited    chan struct{} // closed when the process has exited; exitErr is then set
	exitErr   error
	targets   []shutdownTarget // under load
	held      []heldPost
	drain     time.Duration   // how long it keeps serving after SIGTERM (backend -drain)
	readiness *shutdownTarget // in drain mode: must answer 503 once shutdown begins
}

// startServer runs bin with args and only the given environment (and PATH):
// in particular not the FIREBASE_AUTH_EMULATOR_HOST the local stack set in
// this process.
func startServer(t *testing.T, bin string, args []string, environ ...string) *serverUnderTest {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, environ...)
	p := &serverUnderTest{cmd: cmd, out: &outputLines{changed: make(chan struct{})}, exited: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		readers.Go(func() { p.out.collect(r) })
	}
	go func() {
		readers.Wait() // Wait closes the pipes: read them to the end first
		p.exitErr = cmd.Wait()
		p.out.close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // a no-op once it has exited
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.out.tail(60))
		}
	})
	return p
}

// waitLine waits for an output line that match accepts and returns it.
func (p *serverUnderTest) waitLine(t *testing.T, what string, match func(string) bool) string {
	t.Helper()
	l, ok := p.out.wait(match, 30*time.Second)
	if !ok {
		t.Fatalf("waiting for %s: not in the output of %s", what, p.cmd.Path)
	}
	return l
}

// logField waits for the JSON log line with this message and returns field.
func (p *serverUnderTest) logField(t *testing.T, message, field string) string {
	t.Helper()
	var v string
	p.waitLine(t, fmt.Sprintf("the %q log line", message), func(l string) bool {
		m := parseLogLine(l)
		v, _ = m[field].(string)
		return m.message() == message && v != ""
	})
	return v
}

// sigtermUnderLoad is the test itself; see TestSIGTERMUnderLoad.
func (p *serverUnderTest) sigtermUnderLoad(t *testing.T) {
	rate, conns := 200/len(p.targets), 120/len(p.targets)

	// Each target answers normally before anything else.
	for _, tg := range p.targets {
		req, _ := tg.request(t.Context())
		resp, err := tg.client(1).Do(req)
		if err != nil {
			t.Fatalf("GET %s before the test: %v", tg.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s before the test: %s %s, want 200", tg.url, resp.Status, body)
		}
	}

	// Held GETs connect before the load does: the server accepts connections
	// in order, so once the load's are answered, these have been accepted
	// (not left in the kernel's queue, which closing the listener resets).
	var held []heldRequest
	for _, tg := range p.targets {
		held = append(held, tg.holdHeaders(t))
	}

	var (
		mu       sync.Mutex
		outcomes = make([][]loadtest.Outcome, len(p.targets))
		warm     = make(chan int, len(p.targets)) // a target's index once it has 20 answers
		// Once the process has exited, the load goes on until every target
		// has been refused since (at once: its listener is gone), so that the
		// load is seen to have been offered after the exit too.
		exitedAt      time.Time
		refusedSince  = make([]bool, len(p.targets))
		refusedLeft   = len(p.targets)
		refusedAtLast = make(chan struct{})
	)
	ctx, stopLoad := context.WithCancel(t.Context())
	var loads sync.WaitGroup
	defer func() { stopLoad(); loads.Wait() }() // on a failure, too
	for i, tg := range p.targets {
		u, _ := url.Parse(tg.url)
		cfg := loadtest.Config{
			Target: u, Rate: rate, Workers: conns, Duration: time.Minute, WantStatus: http.StatusOK,
			NewRequest: tg.request, Client: tg.client(conns),
			Observe: func(o loadtest.Outcome) {
				mu.Lock()
				defer mu.Unlock()
				outcomes[i] = append(outcomes[i], o)
				if len(outcomes[i]) == 20 {
					warm <- i
				}
				if !exitedAt.IsZero() && o.Done.After(exitedAt) && refusedAtDial(o.Err) && !refusedSince[i] {
					refusedSince[i] = true
					if refusedLeft--; refusedLeft == 0 {
						close(refusedAtLast)
					}
				}
			},
		}
		loads.Go(func() {
			if _, err := loadtest.Run(ctx, cfg); err != nil {
				t.Errorf("load on %s: %v", tg.url, err)
			}
		})
	}
	for range p.targets {
		select {
		case <-warm:
		case <-time.After(30 * time.Second):
			t.Fatal("the load did not get 20 answers from every target within 30 s")
		}
	}
	for _, h := range p.held {
		held = append(held, h.hold(t))
	}

	sigterm := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// Each held request goes on once its component says it is shutting down.
	type answer struct {
		method string
		url    string
		want   int
		status int
		body   string
		err    error
	}
	answers := make(chan answer, len(held))
	var finishing sync.WaitGroup
	for _, h := range held {
		finishing.Go(func() {
			a := answer{method: h.req.Method, url: h.url, want: h.want}
			if _, ok := p.out.wait(func(l string) bool {
				m := parseLogLine(l)
				return m.message() == "shutting down" && m["component"] == h.component
			}, killAfter); ok {
				a.status, a.body, a.err = h.finish()
			} else {
				a.err = fmt.Errorf("%s never logged \"shutting down\"", h.component)
			}
			answers <- a
		})
	}
	if p.readiness != nil {
		p.checkReadinessFailsFirst(t)
	}

	select {
	case <-p.exited:
	case <-time.After(killAfter + p.drain):
		t.Fatalf("still running %v after SIGTERM; Cloud Run and Kubernetes would SIGKILL it", killAfter+p.drain)
	}
	exited := time.Since(sigterm)
	mu.Lock()
	exitedAt = time.Now()
	mu.Unlock()
	finishing.Wait()
	close(answers)
	select {
	case <-refusedAtLast:
	case <-time.After(5 * time.Second):
		t.Errorf("some target was not refused within 5 s of the exit: the load had stopped")
	}
	stopLoad()
	loads.Wait()

	if p.exitErr != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", p.exitErr)
	}
	for a := range answers {
		if a.err != nil || a.status != a.want {
			t.Errorf("%s %s, held in flight across SIGTERM, got %d %q %v; want its normal answer, %d",
				a.method, a.url, a.status, a.body, a.err, a.want)
		}
	}
	for i, tg := range p.targets {
		var ok, inflight, refused int
		var bad []string
		for _, o := range outcomes[i] {
			switch {
			case o.Err == nil && o.Status == http.StatusOK:
				ok++
				if o.Scheduled.Before(sigterm) && o.Done.After(sigterm) {
					inflight++
				}
			case refusedAtDial(o.Err) && o.Done.After(sigterm):
				refused++
			default:
				bad = append(bad, fmt.Sprintf("sent at %+v, done at %+v from SIGTERM: %d %v",
					o.Scheduled.Sub(sigterm).Round(time.Millisecond), o.Done.Sub(sigterm).Round(time.Millisecond), o.Status, o.Err))
			}
		}
		t.Logf("%s: %d answered 200 (%d of them across SIGTERM), %d refused after it, %d otherwise; exit %v after SIGTERM",
			tg.url, ok, inflight, refused, len(bad), exited.Round(time.Millisecond))
		if len(bad) > 0 {
			t.Errorf("%s: %d requests neither answered 200 nor refused cleanly, e.g.:\n  %s", tg.url, len(bad), strings.Join(bad[:min(len(bad), 5)], "\n  "))
		}
		if refused == 0 {
			t.Errorf("%s: no request was refused after SIGTERM; want the listener closed", tg.url)
		}
	}
	components := map[string]bool{}
	for _, tg := range p.targets {
		components[tg.component] = true
	}
	for c := range components {
		if _, ok := p.out.wait(func(l string) bool { m := parseLogLine(l); return m.message() == "stopped" && m["component"] == c }, 0); !ok {
			t.Errorf("%s logged no \"stopped\" line after SIGTERM", c)
		}
	}
}

// checkReadinessFailsFirst polls the readiness check from the moment
// shutdown begins: it must answer 503 while the listener still accepts.
func (p *serverUnderTest) checkReadinessFailsFirst(t *testing.T) {
	t.Helper()
	tg := *p.readiness
	if _, ok := p.out.wait(func(l string) bool { return parseLogLine(l).message() == "shutting down" }, killAfter); !ok {
		t.Fatalf("%s never logged \"shutting down\"", tg.component)
	}
	hc := tg.client(1)
	var last string
	// Polling another process: there is nothing to wait on but its answers.
	for deadline := time.Now().Add(p.drain); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		req, _ := tg.request(t.Context())
		resp, err := hc.Do(req)
		if err != nil {
			last = err.Error()
			break
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "shutting down") {
			return
		}
		last = fmt.Sprintf("%s %s", resp.Status, body)
	}
	t.Errorf("readiness %s during the drain: last %s; want 503 \"shutting down\" before the listener closes", tg.url, last)
}

// outputLines is a process's stdout and stderr, line by line, as they come.
type outputLines struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced at each new line
	done    bool
}

func (o *outputLines) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		o.mu.Lock()
		o.lines = append(o.lines, sc.Text())
		close(o.changed)
		o.changed = make(chan struct{})
		o.mu.Unlock()
	}
	io.Copy(io.Discard, r) // a line too long: keep the pipe flowing
}

func (o *outputLines) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done = true
	close(o.changed)
	o.changed = make(chan struct{})
}

// wait returns the first line, old or new, that match accepts, waiting up to
// timeout for it; false if none came or the output ended first.
func (o *outputLines) wait(match func(string) bool, timeout time.Duration) (string, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for seen := 0; ; {
		o.mu.Lock()
		lines, changed, done := o.lines, o.changed, o.done
		o.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if match(lines[seen]) {
				return lines[seen], true
			}
		}
		if done {
			return "", false
		}
		select {
		case <-changed:
		case <-timer.C:
			return "", false
		}
	}
}

func (o *outputLines) tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.lines[max(0, len(o.lines)-n):], "\n")
}

// logLine is a JSON log line: Cloud Logging's shape (message) or slog's (msg).
type logLine map[string]any

func parseLogLine(l string) logLine {
	var m logLine
	json.Unmarshal([]byte(l), &m)
	return m
}

func (m logLine) message() string {
	if s, ok := m["message"].(string); ok {
		return s
	}
	s, _ := m["msg"].(string)
	return s
}

// refusedAtDial reports whether a request failed while connecting, so the
// server never saw a byte of it: refused once the listener is gone, or reset
// by the kernel when the listener closed with the connection still in its
// accept queue (Linux resets that queue; CI saw connect() return ECONNRESET).
// A reset after the connection was made is not this: the request may have
// been sent, and dropping it is what the test is for.
func refusedAtDial(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
