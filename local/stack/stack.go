// Package stack runs the whole flow on one machine, in one process: the
// Identity Platform emulator, the Google metadata-server and token stand-in
// (local/google), the backend, the local Istio gateway (enforcing the very
// istio/ YAML that production applies) and the frontend, each on its own
// loopback port, wired as they are on Google Cloud:
//
//	browser → frontend ──mTLS + Bearer──▶ gateway ──▶ backend
//	   └──── sign-in ────▶ identity emulator ◀── JWKS ──┘
//	apiclient ──mTLS + Google ID token──▶ gateway
//	   └── token ──▶ local/google ◀── certs ── gateway, backend
//	partner (x-api-key) → frontend ──mTLS + key──▶ gateway ──ext_authz──▶ apikeys
//
// cmd/devstack is its command line; the e2e tests start it in-process on free
// ports. Its state — the dev PKI, the emulator's accounts and signing keys —
// lives in one directory, so a restart keeps users and certificates.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/acme/cloudrun-istio-gke/apikeys"
	"github.com/acme/cloudrun-istio-gke/backend"
	"github.com/acme/cloudrun-istio-gke/frontend"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/gateway"
	"github.com/acme/cloudrun-istio-gke/local/google"
	"github.com/acme/cloudrun-istio-gke/local/identity"
	"github.com/acme/cloudrun-istio-gke/local/pki"
	"github.com/acme/cloudrun-istio-gke/local/stack/defaults"
)

// Names the local stack shares with the production configuration.
const (
	// apikeysManagement is the decision service's HTTP destination in
	// istio/virtualservice.yaml (its Service in deploy/kubernetes/apikeys).
	apikeysManagement = "apikeys.api.svc.cluster.local:80"
	// GatewayServerName is the gateway's host name (defaults.GatewayServerName).
	GatewayServerName = defaults.GatewayServerName
	// DemoProduct is the API product of the demo app's key.
	DemoProduct = "secure-message"
)

// Config configures a stack. Zero values take the defaults in Defaults.
type Config struct {
	StateDir  string // dev PKI and emulator state
	ProjectID string
	IstioDir  string // the istio/ kustomize base to render and enforce
	// MeshConfigFile is the Istio install file whose meshConfig names the
	// CUSTOM policy's provider; ProductsFile the API products. Empty: the
	// repository's, beside IstioDir (deploy/istio/operator.yaml,
	// deploy/kubernetes/apikeys/products.yaml).
	MeshConfigFile, ProductsFile string
	// Listen addresses; "127.0.0.1:0" picks a free port. GoogleAddr is the
	// metadata server and OAuth stand-in: GCE_METADATA_HOST for callers.
	IdentityAddr, GoogleAddr, BackendAddr, GatewayAddr, FrontendAddr string
	// APIKeysAddr is the API-key decision service's gRPC (ext_authz) address.
	APIKeysAddr string
	// The demo user, created if missing, its password reset if changed.
	DemoEmail, DemoPassword string
	Logger                  *slog.Logger // component logs; nil discards
	// ExtraServiceAccounts are service accounts the Google stand-in holds
	// besides istio/'s allowlist: callers the policy must refuse (tests).
	ExtraServiceAccounts []string
	// AllowNonLoopback lets a listen address be other than loopback. Off by
	// default: the emulator's admin API and the backend are unauthenticated
	// by design, for this machine only.
	AllowNonLoopback bool
	// Outbox gets one line per email the emulator would have sent (a
	// verification or password-reset link), since no mail leaves this
	// machine; nil discards. devstack points it at stdout.
	Outbox io.Writer
}

// Defaults are the addresses and names devstack uses unless told otherwise.
var Defaults = Config{
	StateDir:     defaults.StateDir,
	ProjectID:    defaults.ProjectID,
	IstioDir:     defaults.IstioDir,
	IdentityAddr: defaults.IdentityAddr,
	GoogleAddr:   defaults.GoogleAddr,
	BackendAddr:  defaults.BackendAddr,
	GatewayAddr:  defaults.GatewayAddr,
	FrontendAddr: defaults.FrontendAddr,
	APIKeysAddr:  defaults.APIKeysAddr,
	DemoEmail:    defaults.DemoEmail,
	DemoPassword: defaults.DemoPassword,
}

func (c Config) withDefaults() Config {
	d := Defaults
	for _, f := range []struct{ v, def *string }{
		{&c.StateDir, &d.StateDir}, {&c.ProjectID, &d.ProjectID}, {&c.IstioDir, &d.IstioDir},
		{&c.IdentityAddr, &d.IdentityAddr}, {&c.GoogleAddr, &d.GoogleAddr}, {&c.BackendAddr, &d.BackendAddr},
		{&c.GatewayAddr, &d.GatewayAddr}, {&c.FrontendAddr, &d.FrontendAddr}, {&c.APIKeysAddr, &d.APIKeysAddr},
		{&c.DemoEmail, &d.DemoEmail}, {&c.DemoPassword, &d.DemoPassword},
	} {
		if *f.v == "" {
			*f.v = *f.def
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	repo := filepath.Dir(filepath.Clean(c.IstioDir))
	if c.MeshConfigFile == "" {
		c.MeshConfigFile = filepath.Join(repo, "deploy", "istio", "operator.yaml")
	}
	if c.ProductsFile == "" {
		c.ProductsFile = filepath.Join(repo, "deploy", "kubernetes", "apikeys", "products.yaml")
	}
	return c
}

// Stack is a running local stack.
type Stack struct {
	IdentityURL, BackendURL, GatewayURL, FrontendURL string
	// APIKeysAddr is the decision service's gRPC address; APIKeys the
	// service itself, for tests that create or revoke apps.
	APIKeysAddr string
	APIKeys     *apikeys.Service
	APIKeyStore apikeys.Store // its store, for tests that revoke a key
	// DemoAPIKey is a key of the demo app, created at start for the demo
	// user with the product secure-message; shown once, in PrintSummary.
	DemoAPIKey, DemoAppID              string
	GatewayServerName                  string
	Emulator                           *identity.Emulator
	PKIDir                             string // ca/, gateway/, frontend/, apiclient/ in the TLS secret layout
	ProjectID, DemoEmail, DemoPassword string
	// Google is the metadata server, token endpoint and certs stand-in;
	// GoogleURL its address (GCE_METADATA_HOST is its host:port).
	Google    *google.Google
	GoogleURL string
	// The machine caller: its service account (the first of istio/'s
	// allowlist, the metadata server's default account), its key file, its
	// client certificate directory, and the audience its tokens are for.
	MachineAccount, MachineKeyFile, MachineTLSDir, MachineAudience string
	// ServiceAccounts are all the accounts the stand-in holds, allowlisted
	// first; GoogleStateDir is where it keeps their keys.
	ServiceAccounts []string
	GoogleStateDir  string
	// LocalDifferences are the ways the local gateway departs from istio/:
	// each issuer's jwksUri fetched from a stand-in instead.
	LocalDifferences []string
	// IdentityNotices are what the emulator repaired in its saved state
	// (accounts set aside for sharing an email), each saying what to do.
	IdentityNotices []string
	// Warnings are the listen addresses beyond loopback (AllowNonLoopback).
	Warnings []string

	group *errgroup.Group
}

// Listeners are a stack's bound ports, before anything serves on them: the
// emulator's address is known from here on, for the process's owner to put
// in the environment (AuthEmulatorHost) before Start.
type Listeners struct {
	cfg      Config
	lns      map[string]net.Listener
	warnings []string
}

// Listen binds every address of cfg, so that a busy port stops the stack
// with one line and nothing half-started. Start serves on them; Close
// releases them when Start is not called.
func Listen(ctx context.Context, cfg Config) (*Listeners, error) {
	cfg = cfg.withDefaults()
	addrs := map[string]string{
		"identity": cfg.IdentityAddr, "google": cfg.GoogleAddr, "backend": cfg.BackendAddr,
		"gateway": cfg.GatewayAddr, "frontend": cfg.FrontendAddr, "apikeys": cfg.APIKeysAddr,
		// The decision service's management API, reached only through the
		// gateway's route (the developers' page): any free loopback port.
		"apikeys-http": "127.0.0.1:0",
	}
	l := &Listeners{cfg: cfg}
	for _, name := range []string{"identity", "google", "backend", "gateway", "frontend", "apikeys"} {
		w, err := checkBind(name, addrs[name], cfg.AllowNonLoopback)
		if err != nil {
			return nil, err
		}
		if w != "" {
			l.warnings = append(l.warnings, w)
		}
	}
	var err error
	if l.lns, err = listenAll(ctx, addrs); err != nil {
		return nil, err
	}
	return l, nil
}

// AuthEmulatorHost is the Identity Platform emulator's host:port: the value
// of idtoken.EmulatorHostEnv (FIREBASE_AUTH_EMULATOR_HOST) that the Firebase
// Admin SDK, which reads nothing else, must find in the process environment
// when Start builds the components. Setting it is the process owner's call:
// cmd/devstack's main, or a test's t.Setenv.
func (l *Listeners) AuthEmulatorHost() string { return l.lns["identity"].Addr().String() }

// Close releases the ports; Start does it itself when it fails.
func (l *Listeners) Close() {
	for _, ln := range l.lns {
		ln.Close()
	}
}

// Start builds every component and starts serving on l; it returns once
// all of them accept connections. They run until ctx ends, then shut down
// gracefully one after the other, each once its callers have stopped; Wait
// returns when all have. Any failure before that is returned as one error
// naming its cause, with nothing left running.
func Start(ctx context.Context, l *Listeners) (*Stack, error) {
	cfg, lns, log := l.cfg, l.lns, l.cfg.Logger
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", cfg.StateDir, err)
	}
	resources, err := gateway.Load(cfg.IstioDir, cfg.ProjectID)
	if err != nil {
		return nil, err
	}
	mesh, err := gateway.LoadMeshConfig(cfg.MeshConfigFile)
	if err != nil {
		return nil, err
	}
	catalog, err := apikeys.LoadCatalog(cfg.ProductsFile)
	if err != nil {
		return nil, fmt.Errorf("API products: %w", err)
	}
	pkiConfig := pki.Config{Dir: filepath.Join(cfg.StateDir, "pki"), GatewayHosts: []string{GatewayServerName}}
	certs, err := pki.Ensure(pkiConfig)
	if err != nil {
		return nil, fmt.Errorf("dev PKI in %s: %w", cfg.StateDir, err)
	}
	identityHost := lns["identity"].Addr().String()
	// The same revocation bound as cmd/backend's default: a user who signs
	// out (or is disabled) loses the API within it, locally too. The
	// frontend revokes sessions at sign-out with it.
	verifier, err := idtoken.New(ctx, idtoken.Config{ProjectID: cfg.ProjectID, EmulatorHost: identityHost,
		RevocationCheck: idtoken.DefaultRevocationCheck})
	if err != nil {
		return nil, fmt.Errorf("token verifier: %w", err)
	}
	// The machine rule's allowlist and audience, read from the rendered
	// policy: the backend checks the same, and the stand-in holds these
	// accounts.
	machineCallers := resources.AllowedClaimValues("email")
	audiences := resources.Audiences(google.Issuer)
	if len(machineCallers) == 0 || len(audiences) == 0 {
		return nil, fmt.Errorf("%s: no machine rule (request.auth.claims[email] allowlist and a jwtRule for %s): nothing for local/google to stand in for", cfg.IstioDir, google.Issuer)
	}
	s := &Stack{
		GoogleURL:         "http://" + lns["google"].Addr().String(),
		MachineAccount:    machineCallers[0],
		MachineTLSDir:     certs.MachineDir,
		MachineAudience:   audiences[0],
		IdentityURL:       "http://" + identityHost,
		BackendURL:        "http://" + lns["backend"].Addr().String(),
		GatewayURL:        "https://" + lns["gateway"].Addr().String(),
		FrontendURL:       "http://" + lns["frontend"].Addr().String(),
		APIKeysAddr:       lns["apikeys"].Addr().String(),
		GatewayServerName: GatewayServerName,
		PKIDir:            filepath.Join(cfg.StateDir, "pki"),
		ProjectID:         cfg.ProjectID,
		DemoEmail:         cfg.DemoEmail,
		DemoPassword:      cfg.DemoPassword,
		Warnings:          l.warnings,
	}

	s.Emulator, err = identity.New(identity.Config{
		ProjectID: cfg.ProjectID, StateDir: filepath.Join(cfg.StateDir, "identity"), Logger: log.With("component", "identity"),
		OnOobCode: printOob(cfg.Outbox),
		BaseURL:   s.IdentityURL,
		// The browser calls the emulator from the frontend's pages, opened
		// by either loopback name.
		AllowedOrigins: []string{s.FrontendURL, "http://localhost:" + portOf(lns["frontend"])},
		AllowedHosts:   hostsBeyondLoopback(cfg.IdentityAddr),
	})
	if err != nil {
		return nil, fmt.Errorf("identity emulator: %w", err)
	}
	s.IdentityNotices = s.Emulator.Notices()
	demoUID, err := s.Emulator.EnsureUser(ctx, cfg.DemoEmail, cfg.DemoPassword)
	if err != nil {
		return nil, fmt.Errorf("seeding the demo user %s: %w", cfg.DemoEmail, err)
	}

	s.ServiceAccounts = append(slices.Clone(machineCallers), cfg.ExtraServiceAccounts...)
	s.GoogleStateDir = filepath.Join(cfg.StateDir, "google")
	s.Google, err = google.New(google.Config{
		ProjectID: cfg.ProjectID, StateDir: s.GoogleStateDir, URL: s.GoogleURL,
		ServiceAccounts: s.ServiceAccounts, Logger: log.With("component", "google"),
	})
	if err != nil {
		return nil, fmt.Errorf("google stand-in: %w", err)
	}
	if s.MachineKeyFile, err = s.Google.WriteKeyFile(filepath.Join(cfg.StateDir, "keys"), s.MachineAccount); err != nil {
		return nil, err
	}

	back, err := backend.New(backend.Config{
		Addr: cfg.BackendAddr, ProjectID: cfg.ProjectID, AuthEmulatorHost: identityHost, Grace: serve.DefaultGrace,
		RevocationCheck: idtoken.DefaultRevocationCheck,
		MachineCallers:  machineCallers, MachineAudience: s.MachineAudience, GoogleCertsURL: s.Google.CertsURL(),
	}, backend.Deps{Verifier: verifier, Logger: log.With("component", "backend")})
	if err != nil {
		return nil, err
	}

	// The decision service, with the embedded store: nothing to install,
	// and its apps last as long as the stack. The demo app is made anew at
	// each start, so its key is printed once and never stored in clear.
	keyStore := apikeys.NewMemoryStore()
	defer func() {
		if !ok {
			keyStore.Close()
		}
	}()
	s.APIKeys, err = apikeys.New(apikeys.Config{Catalog: catalog, Store: keyStore, Verifier: verifier, Logger: log.With("component", "apikeys")})
	if err != nil {
		return nil, err
	}
	demoApp, demoKey, err := s.APIKeys.CreateApp(ctx, demoUID, "Demo partner", []string{DemoProduct})
	if err != nil {
		return nil, fmt.Errorf("creating the demo app: %w", err)
	}
	s.DemoAppID, s.DemoAPIKey = demoApp.ID, demoKey
	s.APIKeyStore = keyStore
	keysServer := grpc.NewServer()
	s.APIKeys.Register(keysServer)

	gcfg, err := gateway.LocalConfig(resources, gateway.Local{
		CredentialDir: certs.GatewayDir, Upstream: lns["backend"].Addr().String(),
		JWKS: map[string]string{
			s.Emulator.Issuer(): s.IdentityURL + identity.JWKSPath,
			google.Issuer:       s.Google.CertsURL(),
		},
		MeshConfig: mesh, ExtAuthz: s.APIKeysAddr,
		Logger: log.With("component", "gateway"),
	})
	if err != nil {
		return nil, err
	}
	// LocalConfig sends every destination to the backend; the management
	// route of istio/virtualservice.yaml goes to the decision service.
	if _, ok := gcfg.Upstreams[apikeysManagement]; !ok {
		return nil, fmt.Errorf("istio/ has no route to %s: the developers' page needs it", apikeysManagement)
	}
	gcfg.Upstreams[apikeysManagement] = lns["apikeys-http"].Addr().String()
	s.LocalDifferences = gcfg.Overrides()
	gw, err := gateway.New(gcfg)
	if err != nil {
		return nil, err
	}

	clientCerts, err := tlsdir.Open(tlsdir.Config{Dir: certs.FrontendDir, Logger: log.With("component", "frontend")})
	if err != nil {
		return nil, fmt.Errorf("frontend client certificate: %w", err)
	}
	fcfg := frontend.Config{
		Addr:              cfg.FrontendAddr,
		ProjectID:         cfg.ProjectID,
		AuthEmulatorHost:  identityHost,
		GatewayURL:        s.GatewayURL,
		GatewayServerName: GatewayServerName,
		ClientTLSDir:      certs.FrontendDir,
		BackendTimeout:    5 * time.Second,
	}
	front, err := frontend.New(fcfg, frontend.Deps{Verifier: verifier, Revoker: verifier, GatewayTLS: clientCerts, Logger: log.With("component", "frontend")})
	if err != nil {
		return nil, err
	}

	// Shut down from the outside in, each component once every one that
	// calls it has stopped: frontend, gateway, backend, then identity and
	// google (the backend and the frontend call the first, the backend and
	// the gateway the second). A request accepted before the
	// signal then never finds the next hop gone, as on Google Cloud, where
	// each hop drains on its own. A component that fails stops the
	// frontend, and with it the rest, in the same order.
	g, gctx := errgroup.WithContext(ctx)
	gatewayCtx, stopGateway := afterStop(ctx)
	backendCtx, stopBackend := afterStop(ctx)
	keysCtx, stopKeys := afterStop(ctx)
	identityCtx, stopIdentity := afterStop(ctx)
	g.Go(func() error {
		defer stopGateway()
		defer front.Close()
		return serve.Run(gctx, serve.Options{Name: "frontend", Handler: front.Handler(), Listener: lns["frontend"], Logger: log})
	})
	g.Go(func() error {
		defer stopBackend()
		defer stopKeys()
		err := serve.Run(gatewayCtx, serve.Options{Name: "gateway", Handler: gw.Handler(), Listener: gw.Listener(lns["gateway"]), Logger: log})
		return errors.Join(err, gw.Close())
	})
	g.Go(func() error {
		defer keyStore.Close()
		served := make(chan error, 1)
		go func() { served <- keysServer.Serve(lns["apikeys"]) }()
		select {
		case err := <-served:
			return fmt.Errorf("apikeys: %w", err)
		case <-keysCtx.Done():
			keysServer.GracefulStop()
			return <-served
		}
	})
	g.Go(func() error {
		return serve.Run(keysCtx, serve.Options{Name: "apikeys", Handler: s.APIKeys.Handler(), Listener: lns["apikeys-http"], Logger: log})
	})
	g.Go(func() error {
		defer stopIdentity()
		return serve.Run(backendCtx, serve.Options{Name: "backend", Handler: back.Handler(), Listener: lns["backend"],
			Logger: log, OnShutdown: back.BeginDrain})
	})
	g.Go(func() error {
		return serve.Run(identityCtx, serve.Options{Name: "identity", Handler: s.Emulator.Handler(), Listener: lns["identity"], Logger: log})
	})
	g.Go(func() error {
		return serve.Run(identityCtx, serve.Options{Name: "google", Handler: s.Google.Handler(), Listener: lns["google"], Logger: log})
	})
	g.Go(func() error { return pki.Renew(gctx, pkiConfig, log.With("component", "pki")) })
	s.group = g
	ok = true
	return s, nil
}

// checkBind refuses a listen address beyond loopback unless allow is set,
// and then returns a warning to print. Only the address is inspected.
func checkBind(name, addr string, allow bool) (warning string, err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s address %q: %w", name, addr, err)
	}
	if isLoopback(host) {
		return "", nil
	}
	where := host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		where = "every interface"
	}
	if !allow {
		return "", fmt.Errorf("%s address %s listens on %s, beyond this machine: pass -allow-non-loopback to expose it to the network (its APIs trust loopback callers), or use 127.0.0.1", name, addr, where)
	}
	return fmt.Sprintf("%s listens on %s (%s), beyond loopback: anyone who can reach this machine can call it", name, where, addr), nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// hostsBeyondLoopback are the Host names the emulator must accept when it
// listens beyond loopback: its own, or any when it listens everywhere.
func hostsBeyondLoopback(addr string) []string {
	host, _, _ := net.SplitHostPort(addr)
	switch ip := net.ParseIP(host); {
	case isLoopback(host):
		return nil
	case host == "" || (ip != nil && ip.IsUnspecified()):
		return []string{"*"}
	default:
		return []string{host}
	}
}

func portOf(ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// printOob prints each link the emulator would have emailed as one line,
// serialized: handlers call it from their own goroutines.
func printOob(w io.Writer) func(identity.OobCode) {
	if w == nil {
		return nil
	}
	var mu sync.Mutex
	what := map[string]string{
		"VERIFY_EMAIL": "verify the email of", "VERIFY_AND_CHANGE_EMAIL": "confirm the new email",
		"PASSWORD_RESET": "reset the password of", "EMAIL_SIGNIN": "sign in as",
	}
	return func(c identity.OobCode) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "email     to %s %s, open %s\n", what[c.RequestType], c.Email, c.OobLink)
	}
}

// Wait blocks until every component has stopped and returns the first error.
func (s *Stack) Wait() error { return s.group.Wait() }

// afterStop returns a context that ends only when stop is called: a
// component's callers call it once they have stopped. It keeps ctx's values,
// not its cancellation.
func afterStop(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithCancel(context.WithoutCancel(ctx))
}

func listenAll(ctx context.Context, addrs map[string]string) (map[string]net.Listener, error) {
	lns := map[string]net.Listener{}
	for name, addr := range addrs {
		ln, err := serve.Listen(ctx, addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		lns[name] = ln
	}
	return lns, nil
}

// APIClientCommand is the command line that calls the API through the
// gateway as the machine caller, with an ID token from the metadata-server
// stand-in: what devstack prints and README shows. Run from the directory
// devstack was started in (the paths are the state directory's).
func (s *Stack) APIClientCommand() string {
	return "GCE_METADATA_HOST=" + strings.TrimPrefix(s.GoogleURL, "http://") +
		" go run ./cmd/apiclient -url " + s.GatewayURL + "/api/secure.json -audience " + s.MachineAudience +
		" -server-name " + s.GatewayServerName + " -client-tls-dir " + s.MachineTLSDir
}
