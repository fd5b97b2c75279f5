package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/frontend"
	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

// Envoy's router bodies for a backend that cannot answer, as the local
// gateway writes them (local/gateway/gateway.go):
// https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/http/http_routing#timeouts
const (
	bodyUpstreamRefused = "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: 111"
	bodyUpstreamFailure = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	bodyUpstreamTimeout = "upstream request timeout"
)

// brokenBackends are upstreams that fail in one way each, on loopback.
func brokenBackends(t *testing.T) map[string]struct {
	addr             string
	status           int
	body             string
	userSeesProblems bool
} {
	t.Helper()
	// Down: a port that was just free and is closed again.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()

	// Slow: answers only once the gateway gives up.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)

	// Resetting: accepts, reads the request, then resets the connection
	// (SO_LINGER 0 sends RST instead of FIN).
	rst, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { rst.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := rst.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Read(make([]byte, 4096))
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	return map[string]struct {
		addr             string
		status           int
		body             string
		userSeesProblems bool
	}{
		"down":      {addr: down, status: http.StatusServiceUnavailable, body: bodyUpstreamRefused},
		"slow":      {addr: hostPort(t, slow.URL), status: http.StatusGatewayTimeout, body: bodyUpstreamTimeout},
		"resetting": {addr: rst.Addr().String(), status: http.StatusServiceUnavailable, body: bodyUpstreamFailure},
	}
}

func TestBrokenBackendsAnswerPromptlyWithEnvoysBodiesAndLeakNothing(t *testing.T) {
	st := requireLocal(t, "a gateway of its own needs the local PKI and emulator")
	tk := userTokens(t)
	const routeTimeout = 300 * time.Millisecond
	const requests = 12 // per fault: a per-request leak would stand out over the slack of 5

	goroutinesBefore := runtime.NumGoroutine()
	fdsBefore := openFDs(t)

	// The broken backends, gateways and frontends live in this subtest, so
	// that its cleanups have shut them all down before the counts below.
	t.Run("each broken backend", func(t *testing.T) {
		for name, bb := range brokenBackends(t) {
			t.Run("a "+name+" backend", func(t *testing.T) {
				g := startOwnGateway(t, ownGatewayOptions{upstream: bb.addr, timeout: routeTimeout})

				t.Run(fmt.Sprintf("the gateway answers %d with Envoy's body, within the route timeout and a margin", bb.status), func(t *testing.T) {
					for i := range requests {
						start := time.Now()
						resp, err := g.get(t, "/api/secure.json", tk.valid, nil)
						took := time.Since(start)
						if err != nil {
							t.Fatalf("request %d: %v; want %d", i, err, bb.status)
						}
						if resp.status != bb.status || resp.body != bb.body {
							t.Fatalf("request %d answered %v; want %d %q", i, resp, bb.status, bb.body)
						}
						// A bound, not a benchmark: a hung request would take
						// the client's 10 s timeout.
						if took > 5*time.Second {
							t.Fatalf("request %d took %v; want an answer within 5 s (route timeout %v)", i, took, routeTimeout)
						}
					}
				})

				t.Run("the frontend shows the backend is unavailable, with a request id", func(t *testing.T) {
					fe := startOwnFrontend(t, st.IdentityURL, g.url)
					req, err := http.NewRequest(http.MethodGet, fe+"/", nil)
					if err != nil {
						t.Fatal(err)
					}
					req.AddCookie(boundSession(t, fe, tk.valid))
					resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
					if err != nil {
						t.Fatalf("GET /: %v", err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					id := resp.Header.Get("X-Request-Id")
					if id == "" {
						t.Fatal("the page has no X-Request-Id header")
					}
					if !strings.Contains(string(body), "The backend is unavailable right now.") {
						t.Errorf("the page does not say the backend is unavailable:\n%s", body)
					}
					if want := "Request id: <code>" + id + "</code>"; !strings.Contains(string(body), want) {
						t.Errorf("the page does not quote the request id %q (want %q in it)", id, want)
					}
					if strings.Contains(string(body), tk.valid) {
						t.Error("the page contains the user's ID token")
					}
				})
			})
		}
	})

	// Everything above has been shut down by its cleanups; what it started
	// must be gone too.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	settle(t, "goroutines", func() int { return runtime.NumGoroutine() }, goroutinesBefore+5)
	settle(t, "open file descriptors", func() int { return openFDs(t) }, fdsBefore+5)
}

// settle waits, bounded, for count() to fall to at most limit.
func settle(t *testing.T, what string, count func() int, limit int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := count()
		if n <= limit {
			t.Logf("%s: %d after the faults (at most %d allowed)", what, n, limit)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			_ = writeOutput("faults-goroutines.txt", buf)
			t.Fatalf("%s: %d after the faults; want at most %d (the count before plus slack); goroutine dump in e2e/testoutput/faults-goroutines.txt", what, n, limit)
		}
		runtime.Gosched()
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline above
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// verifiers holds one ID token verifier per emulator for the frontends the
// tests start, as a process in production holds one. In emulator mode the
// Firebase SDK builds an HTTP transport of its own that nothing can close,
// so a verifier per frontend would leave a kept-alive connection to the
// emulator behind each one (for 90 s), and the leak checks would count them.
var verifiers = struct {
	sync.Mutex
	m map[[2]string]*idtoken.Firebase // by project and emulator host
}{m: map[[2]string]*idtoken.Firebase{}}

func verifierFor(t *testing.T, projectID, emulatorHost string) *idtoken.Firebase {
	t.Helper()
	verifiers.Lock()
	defer verifiers.Unlock()
	key := [2]string{projectID, emulatorHost}
	if v := verifiers.m[key]; v != nil {
		return v
	}
	v, err := idtoken.New(context.Background(), idtoken.Config{ProjectID: projectID, EmulatorHost: emulatorHost})
	if err != nil {
		t.Fatalf("idtoken.New: %v", err)
	}
	verifiers.m[key] = v
	return v
}

// startOwnFrontend runs a frontend that reaches the given gateway, verifying
// sessions with the shared emulator.
func startOwnFrontend(t *testing.T, identityURL, gatewayURL string) string {
	t.Helper()
	host := hostPort(t, identityURL)
	verifier := verifierFor(t, "demo-acme", host)
	log := slog.New(slog.DiscardHandler)
	certs, err := tlsdir.Open(tlsdir.Config{Dir: env.clientCertDir, Logger: log})
	if err != nil {
		t.Fatalf("tlsdir.Open: %v", err)
	}
	front, err := frontend.New(frontend.Config{
		Addr:               "127.0.0.1:0",
		ProjectID:          "demo-acme",
		FirebaseAPIKey:     "emulator-api-key",
		FirebaseAuthDomain: "demo-acme.firebaseapp.com",
		AuthEmulatorHost:   host,
		GatewayURL:         gatewayURL,
		GatewayServerName:  env.gatewayServerName,
		ClientTLSDir:       env.clientCertDir,
		BackendTimeout:     2 * time.Second,
	}, frontend.Deps{Verifier: verifier, Revoker: adminFor(t, "demo-acme", host), GatewayTLS: certs, Logger: log})
	if err != nil {
		t.Fatalf("frontend.New: %v", err)
	}
	srv := httptest.NewServer(front.Handler())
	t.Cleanup(func() { srv.Close(); front.Close() })
	return srv.URL
}

// jwksCacheDuration is how long the gateway keeps fetched keys before it
// refreshes them: Envoy's RemoteJwks cache_duration as istiod sets it.
const jwksCacheDuration = 5 * time.Minute

// breakableJWKS serves an emulator's JWKS, or fails in the way it is told.
type breakableJWKS struct {
	mode atomic.Value // "ok", "down", "error", "garbage", "slow"
	hits atomic.Int64
	srv  *httptest.Server
}

func newBreakableJWKS(t *testing.T, emu http.Handler) *breakableJWKS {
	t.Helper()
	b := &breakableJWKS{}
	b.mode.Store("ok")
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		switch b.mode.Load().(string) {
		case "down":
			// Close the connection without a word.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
		case "error":
			http.Error(w, "backend error", http.StatusInternalServerError)
		case "garbage":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"keys":[{"kty":"RSA","n":"!!!","e":`)
		case "slow":
			<-r.Context().Done()
		default:
			emu.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// isolatedIssuer is an emulator of the test's own (same project, so the same
// issuer and audience), whose keys can be rotated without touching the
// shared stack, with a gateway in front of a recording upstream.
type isolatedIssuer struct {
	emu   *identity.Emulator
	jwks  *breakableJWKS
	gw    ownGateway
	clock *clocktest.Clock // the gateway's: its 10 s refetch limit and 5 min cache are crossed by moving it, never by sleeping
	uid   string
}

func newIsolatedIssuer(t *testing.T) *isolatedIssuer {
	t.Helper()
	clock := clocktest.New(time.Now())
	emu, err := identity.New(identity.Config{ProjectID: "demo-acme", StateDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), KeyGrace: time.Hour})
	if err != nil {
		t.Fatalf("identity.New: %v", err)
	}
	uid, err := emu.EnsureUser(context.Background(), "rotation@example.com", randomString(12))
	if err != nil {
		t.Fatal(err)
	}
	jwks := newBreakableJWKS(t, emu.Handler())
	verifyEmailAt(t, jwks.srv.URL, uid) // istio/ admits verified emails only
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"sub":%q}`, r.Header.Get("X-Jwt-Claim-Sub"))
	}))
	t.Cleanup(upstream.Close)
	gw := startOwnGateway(t, ownGatewayOptions{
		upstream: hostPort(t, upstream.URL), jwksOrigin: jwks.srv.URL, now: clock.Now, jwksTimeout: 300 * time.Millisecond,
	})
	return &isolatedIssuer{emu: emu, jwks: jwks, gw: gw, clock: clock, uid: uid}
}

// token mints an ID token as of the fake clock.
func (is *isolatedIssuer) token(t *testing.T) string {
	t.Helper()
	tok, err := is.emu.IDTokenFor(context.Background(), is.uid, is.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	noteSecret(tok)
	return tok
}

func (is *isolatedIssuer) expect(t *testing.T, what, tok string, wantStatus int, wantBody string) {
	t.Helper()
	resp, err := is.gw.get(t, "/api/secure.json", tok, nil)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.status != wantStatus {
		t.Fatalf("%s: answered %v; want %d %q", what, resp, wantStatus, wantBody)
	}
	if wantStatus == http.StatusOK {
		if want := fmt.Sprintf(`{"sub":%q}`, is.uid); resp.body != want {
			t.Fatalf("%s: upstream answered %q; want %q", what, resp.body, want)
		}
	} else if resp.body != wantBody {
		t.Fatalf("%s: body %q; want %q", what, resp.body, wantBody)
	}
}

func TestJWKSFaultsKeepCachedKeysAndFailClosed(t *testing.T) {
	requireLocal(t, "the JWKS tests run a gateway and an emulator of their own")
	is := newIsolatedIssuer(t)

	is.jwks.mode.Store("down")
	t.Run("with the JWKS endpoint down from the start, a valid token fails closed", func(t *testing.T) {
		// istiod's fail-closed JWKS: with no keys, every token fails
		// verification (pilot/pkg/model/jwks_resolver.go).
		is.expect(t, "valid token, no keys ever fetched", is.token(t), http.StatusUnauthorized, bodyBadSig)
	})
	is.jwks.mode.Store("ok")
	is.clock.Advance(11 * time.Second) // past the refetch limit
	t.Run("once the endpoint is back, the same gateway accepts the token without a restart", func(t *testing.T) {
		is.expect(t, "valid token after recovery", is.token(t), http.StatusOK, "")
	})

	for _, mode := range []string{"down", "error", "garbage", "slow"} {
		t.Run("with the JWKS endpoint "+mode, func(t *testing.T) {
			is.jwks.mode.Store(mode)
			is.clock.Advance(jwksCacheDuration + time.Second) // the cache is due for a refresh
			t.Run("a valid token keeps working on the cached keys", func(t *testing.T) {
				is.expect(t, "valid token", is.token(t), http.StatusOK, "")
			})
			t.Run("a token signed by an unknown key fails closed with 401", func(t *testing.T) {
				is.clock.Advance(11 * time.Second)
				// The emulator publishes the next key a rotation ahead, and
				// the gateway cached it: the first rotation's key is known.
				// The second one's was published only after the endpoint
				// failed, so the gateway never saw it.
				for range 2 {
					if err := is.emu.RotateKey(); err != nil {
						t.Fatal(err)
					}
				}
				is.expect(t, "token from a key the gateway never saw", is.token(t), http.StatusUnauthorized, bodyNoKey)
			})
			t.Run("twenty concurrent unknown-key tokens cause at most one more fetch", func(t *testing.T) {
				is.clock.Advance(11 * time.Second)
				before := is.jwks.hits.Load()
				tok := is.token(t)
				var wg sync.WaitGroup
				errs := make(chan string, 20)
				for range 20 {
					wg.Go(func() {
						resp, err := is.gw.get(t, "/api/secure.json", tok, nil)
						if err != nil || resp.status != http.StatusUnauthorized {
							errs <- fmt.Sprintf("%v %v", resp, err)
						}
					})
				}
				wg.Wait()
				close(errs)
				for e := range errs {
					t.Errorf("an unknown-key request answered %s; want 401", e)
				}
				if n := is.jwks.hits.Load() - before; n > 1 {
					t.Errorf("the JWKS endpoint was asked %d times for 20 concurrent requests; want at most 1", n)
				}
			})
			is.jwks.mode.Store("ok")
			is.clock.Advance(11 * time.Second)
			t.Run("after recovery the new key is accepted without a restart", func(t *testing.T) {
				is.expect(t, "token from the rotated-in key after recovery", is.token(t), http.StatusOK, "")
			})
		})
	}
}

func TestEmulatorKeyRotationThroughTheGateway(t *testing.T) {
	requireLocal(t, "rotation runs against an emulator of its own, so the shared stack keeps its keys")
	is := newIsolatedIssuer(t)
	old := is.token(t)
	is.expect(t, "token from the first key", old, http.StatusOK, "")
	is.clock.Advance(11 * time.Second) // the last fetch is more than the refetch limit ago
	if err := is.emu.RotateKey(); err != nil {
		t.Fatal(err)
	}
	t.Run("a token from the new key is accepted at once", func(t *testing.T) {
		is.expect(t, "token from the new key", is.token(t), http.StatusOK, "")
	})
	t.Run("a token from the old key stays valid until it expires", func(t *testing.T) {
		is.expect(t, "old token after rotation", old, http.StatusOK, "")
	})
	t.Run("a second rotation within 10 s of the last fetch is accepted at once too", func(t *testing.T) {
		// A stale cache makes the gateway fetch again, and so learn the key
		// the emulator has published as the next one since the first
		// rotation. Rotating right after that fetch, well inside the 10 s
		// refetch limit, must still leave new tokens accepted: no refetch can
		// rescue them, only a key published before it signs.
		is.clock.Advance(jwksCacheDuration + time.Second)
		before := is.jwks.hits.Load()
		is.expect(t, "token from the first rotated-in key, refreshing a stale cache", is.token(t), http.StatusOK, "")
		if n := is.jwks.hits.Load() - before; n != 1 {
			t.Fatalf("the gateway fetched the JWKS %d times for a stale cache; want 1, or this row proves nothing", n)
		}
		if err := is.emu.RotateKey(); err != nil {
			t.Fatal(err)
		}
		before = is.jwks.hits.Load()
		is.expect(t, "token from the second rotated-in key, 0 s after the last fetch", is.token(t), http.StatusOK, "")
		if n := is.jwks.hits.Load() - before; n != 0 {
			t.Errorf("the gateway fetched the JWKS %d times for the new key; want 0: it was published before it signed", n)
		}
	})
	t.Run("the old token is refused once it has expired", func(t *testing.T) {
		is.clock.Advance(identity.IDTokenLifetime + 2*time.Minute)
		is.expect(t, "old token past its exp and the 60 s skew", old, http.StatusUnauthorized, bodyExpired)
	})
}
