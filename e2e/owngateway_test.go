package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/acme/cloudrun-istio-gke/local/gateway"
	"github.com/acme/cloudrun-istio-gke/local/google"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

// ownGateway is a second gateway built from the same istio/ resources and
// the shared stack's PKI, but pointed at an upstream and a JWKS origin the
// test controls: faults are injected there, never into the shared stack.
type ownGateway struct {
	url  string // https://127.0.0.1:port
	addr string
	logs *logtest.Buffer
}

type ownGatewayOptions struct {
	upstream   string        // host:port every route goes to
	jwksOrigin string        // origin of the Identity Platform keys; "" means the shared emulator
	timeout    time.Duration // route timeout replacing istio/'s 10 s; 0 keeps it
	// jwksTimeout replaces the JWT rules' fetch timeout (Istio's default
	// 5 s); now is the gateway's clock. Zero values keep the defaults.
	jwksTimeout time.Duration
	now         func() time.Time
	// credentialDir replaces the shared PKI's gateway directory (tls.crt,
	// tls.key, ca.crt), for certificates of the test's own; logs, when set,
	// receives the gateway's log lines too.
	credentialDir string
	logs          io.Writer
}

func startOwnGateway(t *testing.T, o ownGatewayOptions) ownGateway {
	t.Helper()
	st := requireLocal(t, "a gateway of its own needs the local istio/ and PKI")
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := gateway.Load(filepath.Join(root, "istio"), st.ProjectID)
	if err != nil {
		t.Fatalf("loading istio/: %v", err)
	}
	mesh, err := gateway.LoadMeshConfig(filepath.Join(root, "deploy", "istio", "operator.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if o.timeout > 0 {
		// Only this test's copy of the resources: the shape of the route is
		// istio/'s, the timeout short enough for a test.
		for _, vs := range rs.VirtualServices {
			for _, hr := range vs.Spec.GetHttp() {
				if hr.GetTimeout() != nil {
					hr.Timeout = durationpb.New(o.timeout)
				}
			}
		}
	}
	if o.jwksTimeout > 0 {
		for _, ra := range rs.RequestAuthentications {
			for _, r := range ra.Spec.GetJwtRules() {
				r.Timeout = durationpb.New(o.jwksTimeout)
			}
		}
	}
	if o.jwksOrigin == "" {
		o.jwksOrigin = st.IdentityURL
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := serve.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	var logTo io.Writer = logs
	if o.logs != nil {
		logTo = io.MultiWriter(logs, o.logs)
	}
	if o.credentialDir == "" {
		o.credentialDir = filepath.Join(st.PKIDir, "gateway")
	}
	cfg, err := gateway.LocalConfig(rs, gateway.Local{
		CredentialDir: o.credentialDir,
		Upstream:      o.upstream,
		JWKS: map[string]string{
			"https://securetoken.google.com/" + st.ProjectID: o.jwksOrigin + identity.JWKSPath,
			google.Issuer: st.Google.CertsURL(),
		},
		Logger:     logging.New(logTo, slog.LevelInfo, st.ProjectID),
		MeshConfig: mesh,
		ExtAuthz:   st.APIKeysAddr,
	})
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("gateway.LocalConfig: %v", err)
	}
	cfg.HTTPClient = &http.Client{Timeout: 2 * time.Second}
	cfg.Now = o.now
	gw, err := gateway.New(cfg)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("gateway.New: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		err := serve.Run(ctx, serve.Options{Name: "gateway", Handler: gw.Handler(), Listener: gw.Listener(ln)})
		done <- errors.Join(err, gw.Close())
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("own gateway shut down with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("own gateway did not shut down within 15 s")
		}
	})
	return ownGateway{url: "https://" + ln.Addr().String(), addr: ln.Addr().String(), logs: logs}
}

// client is an HTTP client with the frontend's certificate for this gateway.
func (g ownGateway) client(t *testing.T) *http.Client {
	t.Helper()
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   clientTLS(t, env.clientCertDir, true),
			DisableKeepAlives: true,
		},
	}
}

// get sends GET path with an optional bearer token to this gateway.
func (g ownGateway) get(t *testing.T, path, token string, header http.Header) (gatewayResponse, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = env.gatewayServerName
	for k, vs := range header {
		req.Header[k] = vs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.client(t).Do(req)
	if err != nil {
		return gatewayResponse{}, err
	}
	defer resp.Body.Close()
	body, err := readAllLimited(resp.Body)
	return gatewayResponse{status: resp.StatusCode, header: resp.Header, body: string(body)}, err
}
