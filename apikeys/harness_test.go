package apikeys

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
)

// productsFile is the repository's products file, which the ConfigMap in
// deploy/kubernetes/apikeys carries.
const productsFile = "../deploy/kubernetes/apikeys/products.yaml"

// stores are the Store implementations every shared test runs against.
var stores = []struct {
	name string
	open func(testing.TB) Store
}{
	{"memory", func(testing.TB) Store { return NewMemoryStore() }},
	{"redis", startRedis},
}

// startRedis starts a real redis-server (the Debian package) on a free
// loopback port, in a temporary directory, without persistence, and returns
// a store on a fresh database. Without redis-server the test is skipped,
// unless CI=true, where a missing server is a failure.
func startRedis(t testing.TB) Store {
	t.Helper()
	c := startRedisServer(t, func(port int) []string { return []string{"--port", strconv.Itoa(port)} },
		redis.Options{PoolSize: 64})
	s := NewRedisStore(c)
	t.Cleanup(func() { s.Close() })
	return s
}

// startRedisServer starts redis-server as startRedis describes, with the
// listening arguments args returns for a free port (plain or TLS), plus
// extra (AUTH, say), and returns a client made from opts on that port once
// it answers PING. The caller closes the client.
func startRedisServer(t testing.TB, args func(port int) []string, opts redis.Options, extra ...string) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed, and CI=true requires it (apt-get install -y redis-server): %v", err)
		}
		t.Skipf("redis-server is not installed (apt-get install -y redis-server): %v", err)
	}
	port := freePort(t)
	dir := t.TempDir()
	argv := append([]string{"--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning"}, args(port)...)
	cmd := exec.Command(bin, append(argv, extra...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Its log is drained so the server never blocks on a full pipe.
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
		}
	}()
	opts.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewClient(&opts)
	// Wait until it answers: PING with retries is redis-server's own
	// readiness signal (there is no other without a supervisor).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if err := c.Ping(ctx).Err(); err == nil {
			break
		} else if ctx.Err() != nil {
			c.Close()
			t.Fatalf("redis-server on port %d did not answer PING: %v", port, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return c
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// signsNobodyIn is the verifier of services whose tests exercise only the
// check: every token is refused.
type signsNobodyIn struct{}

func (signsNobodyIn) Verify(context.Context, string) (*auth.Token, error) {
	return nil, fmt.Errorf("%w: this test signs nobody in", idtoken.ErrInvalidToken)
}

// testCatalog is a catalog with small quotas, so tests can exhaust them.
func testCatalog(t testing.TB, perMinute, perDay int64) *Catalog {
	t.Helper()
	c, err := ParseCatalog([]byte(fmt.Sprintf(`
products:
  - id: secure-message
    name: Secure message
    paths: ["/api/secure.json"]
    methods: [GET, HEAD]
    quota: {perMinute: %d, perDay: %d}
  - id: reports
    name: Reports
    paths: ["/api/reports/*"]
    methods: [GET]
    quota: {perMinute: 100, perDay: 1000}
`, perMinute, perDay)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fixedClock is a clock tests move by hand.
type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

func newService(t testing.TB, store Store, cat *Catalog, now func() time.Time) *Service {
	t.Helper()
	s, err := New(Config{Catalog: cat, Store: store, Verifier: signsNobodyIn{}, Now: now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// startGRPC serves s on a loopback port and returns a client on its own
// connection.
func startGRPC(t testing.TB, s *Service) (addr string, client authv3.AuthorizationClient) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().String(), dial(t, ln.Addr().String())
}

func dial(t testing.TB, addr string) authv3.AuthorizationClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// checkRequest is what Envoy sends for a request with these headers.
func checkRequest(method, path string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{":method": method, ":path": path, ":authority": "api.example.com"}
	for k, v := range headers {
		h[strings.ToLower(k)] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "api.example.com", Headers: h,
		}},
	}}
}

// mustApp creates an app through the service, as the management API does.
func mustApp(t testing.TB, s *Service, owner string, products ...string) (App, string) {
	t.Helper()
	a, key, err := s.CreateApp(context.Background(), owner, "test app", products)
	if err != nil {
		t.Fatalf("CreateApp: %v", err)
	}
	return a, key
}
