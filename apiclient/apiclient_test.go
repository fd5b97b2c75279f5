package apiclient

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/auth/credentials/idtoken"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/google"
)

const (
	project    = "demo-acme"
	reporter   = "reporter@demo-acme.iam.gserviceaccount.com"
	stranger   = "stranger@demo-acme.iam.gserviceaccount.com"
	audience   = "https://api.internal.example"
	serverName = "api.internal.example"
	developer  = "dev@example.com"
	machineID  = "spiffe://acme.internal/ns/jobs/sa/reporter"
)

// world is what a call crosses: the Google stand-in that mints tokens (with
// a count of requests to its token, identity and generateIdToken endpoints), a gateway on loopback that requires a client
// certificate from its CA and checks Google ID tokens with the unmodified
// idtoken validator, answering refusals in Envoy's words, and the caller's
// client certificate in the TLS secret layout.
type world struct {
	google        *google.Google
	googleURL     string
	tokenRequests atomic.Int64
	tokenServed   chan struct{} // a receive per token request answered, as far as its buffer goes
	ca            *certgen.Pair
	gateway       *httptest.Server
	clientDir     string
}

func newWorld(t testing.TB) *world { return newWorldWithTokenLifetime(t, 0) }

// newWorldWithTokenLifetime is newWorld whose ID tokens live lifetime (0: an hour).
func newWorldWithTokenLifetime(t testing.TB, lifetime time.Duration) *world {
	t.Helper()
	w := &world{tokenServed: make(chan struct{}, 16)}
	gs := httptest.NewUnstartedServer(nil)
	w.googleURL = "http://" + gs.Listener.Addr().String()
	g, err := google.New(google.Config{
		ProjectID: project, StateDir: t.TempDir(), URL: w.googleURL,
		ServiceAccounts: []string{reporter, stranger}, TokenCreators: []string{developer},
		TokenLifetime: lifetime,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.google = g
	h := g.Handler()
	gs.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == google.TokenPath || strings.HasSuffix(r.URL.Path, "/identity") || strings.HasSuffix(r.URL.Path, ":generateIdToken") {
			w.tokenRequests.Add(1)
			defer func() {
				select {
				case w.tokenServed <- struct{}{}:
				default:
				}
			}()
		}
		h.ServeHTTP(rw, r)
	})
	gs.Start()
	t.Cleanup(gs.Close)

	v := certgen.For(time.Now(), 24*time.Hour)
	if w.ca, err = certgen.NewCA("test gateway CA", v); err != nil {
		t.Fatal(err)
	}
	w.gateway = w.startGateway(t, w.ca, w.ca, []string{serverName})
	w.clientDir = filepath.Join(t.TempDir(), "client")
	w.writeClientDir(t, w.clientDir, w.ca, w.ca)
	return w
}

// writeClientDir issues a client certificate from issuer into dir, with
// trust as the CA that verifies the gateway.
func (w *world) writeClientDir(t testing.TB, dir string, issuer, trust *certgen.Pair) {
	t.Helper()
	u, _ := url.Parse(machineID)
	p, err := issuer.IssueClient("reporter", u, certgen.For(time.Now(), 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := certgen.WriteDir(dir, p, trust.CertPEM); err != nil {
		t.Fatal(err)
	}
}

// startGateway serves, over TLS 1.3 with a certificate from serverCA for
// hosts, a gateway that requires client certificates from clientCA.
func (w *world) startGateway(t testing.TB, serverCA, clientCA *certgen.Pair, hosts []string) *httptest.Server {
	t.Helper()
	cert, err := serverCA.IssueServer(hosts, certgen.For(time.Now(), 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(clientCA.Cert)
	validator, err := idtoken.NewValidator(&idtoken.ValidatorOptions{RS256CertsURL: w.google.CertsURL()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Host != serverName {
			// The VirtualService routes by host: a request for the IP
			// the gateway is dialled at finds no route (Envoy's empty 404).
			rw.WriteHeader(http.StatusNotFound)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(rw, "RBAC: access denied", http.StatusForbidden)
			return
		}
		p, err := validator.Validate(r.Context(), tok, audience)
		switch {
		case err != nil && strings.Contains(err.Error(), "audience"):
			http.Error(rw, "Audiences in Jwt are not allowed", http.StatusUnauthorized)
			return
		case err != nil || p.Issuer != google.Issuer:
			http.Error(rw, "Jwt verification fails", http.StatusUnauthorized)
			return
		case p.Claims["email"] != reporter || r.TLS.PeerCertificates[0].URIs[0].String() != machineID:
			http.Error(rw, "RBAC: access denied", http.StatusForbidden)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(map[string]any{
			"message": "Hello World", "caller": map[string]any{"kind": "service-account", "email": p.Claims["email"]},
		})
	}))
	srv.EnableHTTP2 = true
	// Refused handshakes are what some tests are about; their log lines are noise.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{kp},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients,
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func (w *world) keyFile(t testing.TB, email string) string {
	t.Helper()
	path, err := w.google.WriteKeyFile(t.TempDir(), email)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func (w *world) client(t testing.TB, cfg Config) *Client {
	t.Helper()
	if cfg.TLS == nil {
		d, err := tlsdir.Open(tlsdir.Config{Dir: w.clientDir})
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = d
	}
	if cfg.Audience == "" {
		cfg.Audience = audience
	}
	if cfg.ServerName == "" {
		cfg.ServerName = serverName
	}
	c, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// impersonation is the configuration of a developer who impersonates
// reporter, with the ADC file gcloud would write; the IAM Credentials API's
// address is fixed in the library, so the transport routes it here.
func (w *world) impersonation(t testing.TB) Config {
	t.Helper()
	path, err := w.google.WriteImpersonationFile(t.TempDir(), developer, reporter)
	if err != nil {
		t.Fatal(err)
	}
	return Config{CredentialsFile: path, Transport: w.google.Transport(nil)}
}

func (w *world) url() string { return w.gateway.URL + "/api/secure.json" }

func TestCallsTheAPIAsTheServiceAccount(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) Config
	}{
		{"with a key file", func(t *testing.T) Config { return Config{CredentialsFile: w.keyFile(t, reporter)} }},
		{"with the metadata server", func(t *testing.T) Config {
			// The metadata library reads only the environment for this.
			t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(w.googleURL, "http://"))
			return Config{}
		}},
		{"impersonating it with a developer's ADC file", func(t *testing.T) Config { return w.impersonation(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := w.client(t, tc.setup(t))
			a, err := c.Get(t.Context(), w.url())
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			var got struct {
				Caller struct{ Kind, Email string }
			}
			if a.Status != 200 || json.Unmarshal(a.Body, &got) != nil || got.Caller.Email != reporter {
				t.Errorf("got %d %s, want 200 naming %s", a.Status, a.Body, reporter)
			}
		})
	}
}

func TestOneTokenServesAThousandCalls(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T) Config
		requests int64
	}{
		{"from a key file", func(t *testing.T) Config { return Config{CredentialsFile: w.keyFile(t, reporter)} }, 1},
		{"from the metadata server", func(t *testing.T) Config {
			t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(w.googleURL, "http://"))
			return Config{}
		}, 1},
		// One access token for the developer, one ID token for the account.
		{"by impersonation", func(t *testing.T) Config { return w.impersonation(t) }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := w.client(t, tc.setup(t))
			before := w.tokenRequests.Load()
			for i := range 1000 {
				if _, err := c.Get(t.Context(), w.url()); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			if n := w.tokenRequests.Load() - before; n != tc.requests {
				t.Errorf("1000 calls made %d token requests, want %d", n, tc.requests)
			}
		})
	}
}

func TestATokenNearItsExpiryIsRefreshedInTheBackground(t *testing.T) {
	// Tokens of three minutes are inside the library's early-refresh window
	// for key files (225 s): the first call waits for its token; the next
	// gets the cached one at once and starts one refresh in the background.
	w := newWorldWithTokenLifetime(t, 3*time.Minute)
	c := w.client(t, Config{CredentialsFile: w.keyFile(t, reporter)})
	for i := range 2 {
		if _, err := c.Get(t.Context(), w.url()); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		select {
		case <-w.tokenServed:
		case <-time.After(10 * time.Second): // a deadline for the failure, not a wait for the pass
			t.Fatalf("call %d: no token request reached the stand-in; %d in all", i, w.tokenRequests.Load())
		}
	}
	if n := w.tokenRequests.Load(); n != 2 {
		t.Errorf("%d token requests, want 2: one for the first call, one refresh", n)
	}
}

func TestAFailedCallSaysWhatFailed(t *testing.T) {
	w := newWorld(t)
	other, err := certgen.NewCA("another CA", certgen.For(time.Now(), 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	foreignGateway := w.startGateway(t, other, w.ca, []string{serverName})
	wrongName := w.startGateway(t, w.ca, w.ca, []string{"elsewhere.example"})
	strictGateway := w.startGateway(t, w.ca, other, []string{serverName})
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "https://" + closed.Addr().String() + "/api/secure.json"
	closed.Close()

	keyFile := w.keyFile(t, reporter)
	for _, tc := range []struct {
		name     string
		cfg      Config
		url      string
		kind     Kind
		status   int
		reason   string
		certCN   string // the certificate the error names
		contains string
	}{
		{"a gateway nobody listens for is a network failure", Config{}, closedURL, KindNetwork, 0, "", "", "connection refused"},
		{"a gateway certificate from another CA is the server certificate's fault", Config{}, foreignGateway.URL, KindServerCertificate, 0, "", "", "unknown authority"},
		{"a gateway certificate for another name is the server certificate's fault", Config{}, wrongName.URL, KindServerCertificate, 0, "", "", "elsewhere.example"},
		{"a gateway that does not trust our CA refuses the client certificate", Config{}, strictGateway.URL, KindClientCertificate, 0, "", "reporter", "reporter"},
		{"a token for another audience is a 401 with Envoy's reason", Config{Audience: "https://elsewhere.example"}, w.url(),
			KindUnauthenticated, 401, "Audiences in Jwt are not allowed", "", ""},
		{"a service account the API does not admit is a 403", Config{CredentialsFile: w.keyFile(t, stranger)}, w.url(),
			KindForbidden, 403, "RBAC: access denied", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.CredentialsFile == "" {
				tc.cfg.CredentialsFile = keyFile
			}
			c := w.client(t, tc.cfg)
			_, err := c.Get(t.Context(), tc.url)
			var e *Error
			if !errors.As(err, &e) || e.Kind != tc.kind || e.Status != tc.status || e.Reason != tc.reason {
				t.Fatalf("got %#v (%v), want kind %v status %d reason %q", e, err, tc.kind, tc.status, tc.reason)
			}
			if tc.certCN != "" && (e.Certificate == nil || e.Certificate.Subject.CommonName != tc.certCN) {
				t.Errorf("error names certificate %v, want %q's", e.Certificate, tc.certCN)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not say %q", err, tc.contains)
			}
		})
	}
	t.Run("an expired client certificate is reported as ours to renew", func(t *testing.T) {
		now := time.Now()
		d, err := tlsdir.Open(tlsdir.Config{Dir: w.clientDir, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		c := w.client(t, Config{TLS: d, CredentialsFile: keyFile})
		now = now.Add(48 * time.Hour)
		_, err = c.Get(t.Context(), w.url())
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindClientCertificate || e.Certificate == nil || !strings.Contains(err.Error(), "has expired") {
			t.Fatalf("got %v, want a client-certificate failure saying it has expired", err)
		}
	})
	t.Run("a key file the token endpoint refuses is a credentials failure with Google's reason", func(t *testing.T) {
		var f map[string]any
		b, _ := os.ReadFile(w.keyFile(t, reporter))
		json.Unmarshal(b, &f)
		f["client_email"] = "deleted@demo-acme.iam.gserviceaccount.com"
		b, _ = json.Marshal(f)
		path := filepath.Join(t.TempDir(), "deleted.json")
		os.WriteFile(path, b, 0o600)
		c := w.client(t, Config{CredentialsFile: path})
		_, err := c.Get(t.Context(), w.url())
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindCredentials || !strings.Contains(err.Error(), "Invalid grant: account not found") {
			t.Fatalf("got %v, want a credentials failure saying Invalid grant: account not found", err)
		}
	})
}

func TestUserCredentialsAreRefusedWithTheImpersonationCommand(t *testing.T) {
	w := newWorld(t)
	for _, typ := range []string{"authorized_user", "external_account_authorized_user"} {
		t.Run(typ+" is refused", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "adc.json")
			os.WriteFile(path, []byte(`{"type":"`+typ+`","client_id":"x","client_secret":"y","refresh_token":"z"}`), 0o600)
			d, err := tlsdir.Open(tlsdir.Config{Dir: w.clientDir})
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(t.Context(), Config{Audience: audience, ServerName: serverName, TLS: d,
				CredentialsFile: path, ImpersonationHint: reporter})
			var ue *UserCredentialsError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want a *UserCredentialsError", err)
			}
			for _, want := range []string{
				"gcloud auth application-default login --impersonate-service-account=" + reporter,
				"gcloud auth print-identity-token --impersonate-service-account=" + reporter + " --audiences=" + audience + " --include-email",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q:\n%s", want, err)
				}
			}
		})
	}
}

// BenchmarkCachedToken is the cost a call pays for its ID token once one is
// cached: the library's cache lookup.
func BenchmarkCachedToken(b *testing.B) {
	w := newWorld(b)
	c := w.client(b, Config{CredentialsFile: w.keyFile(b, reporter)})
	if _, err := c.Token(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Token(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	if n := w.tokenRequests.Load(); n != 1 {
		b.Fatalf("%d token requests, want 1", n)
	}
}

// BenchmarkCall is a whole call with a cached token over a kept-alive
// mutual-TLS connection to the loopback gateway, which verifies the token's
// RS256 signature each time: the token's share of it is BenchmarkCachedToken.
func BenchmarkCall(b *testing.B) {
	w := newWorld(b)
	c := w.client(b, Config{CredentialsFile: w.keyFile(b, reporter)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(b.Context(), w.url()); err != nil {
			b.Fatal(err)
		}
	}
}
