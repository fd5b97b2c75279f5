package frontend

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/config"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
)

// Config is everything the frontend is told at start-up. Parse it with
// ParseConfig; New validates it again.
type Config struct {
	// Addr is the listen address: ":$PORT" on Cloud Run, loopback otherwise.
	Addr string
	// ProjectID is the Google Cloud project of Identity Platform: tokens are
	// issued for it. "demo-acme" locally.
	ProjectID string
	// FirebaseAPIKey is the Firebase web API key the browser SDK needs. It is
	// public by design (it identifies the project, it does not authorize
	// anything), so it is printed and sent to browsers.
	FirebaseAPIKey string
	// FirebaseAuthDomain is the domain of the Google sign-in popup; the
	// default is <ProjectID>.firebaseapp.com.
	FirebaseAuthDomain string
	// AuthEmulatorHost is the local Identity Platform emulator (host:port),
	// empty in production; idtoken.EmulatorHostEnv is its environment
	// fallback. The browser is pointed at http://<AuthEmulatorHost>.
	AuthEmulatorHost string
	// GoogleSignIn shows "Continue with Google" (the provider must be enabled
	// in Identity Platform).
	GoogleSignIn bool
	// GatewayURL is the base URL of the Istio ingress gateway, e.g.
	// https://10.128.0.7 (the internal load balancer's private IP).
	GatewayURL string
	// GatewayServerName is the name the gateway's certificate must carry,
	// needed because the load balancer is reached by IP.
	GatewayServerName string
	// ClientTLSDir holds the frontend's client certificate in the TLS secret
	// layout: tls.crt, tls.key and ca.crt (the CA that verifies the gateway).
	ClientTLSDir string
	// ClientCertFile, ClientKeyFile and ClientCAFile override one file of
	// ClientTLSDir each; without ClientTLSDir all three are required. Cloud
	// Run mounts each Secret Manager secret in a directory of its own.
	ClientCertFile, ClientKeyFile, ClientCAFile string
	// SessionKeyFile holds a secret of at least 32 bytes from which the
	// session cookie's MAC key is derived (binding.go). Empty means the
	// client private key is that secret: on Cloud Run every instance mounts
	// the same one, and locally it belongs to the state directory.
	SessionKeyFile string
	// BackendTimeout bounds one call to the gateway, including the TLS
	// handshake of a new connection.
	BackendTimeout time.Duration
}

// ParseConfig reads the flags in args, falling back to the environment.
func ParseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("frontend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	fs.StringVar(&c.Addr, "addr", config.ListenAddr(getenv, "127.0.0.1:8080"), "listen address (defaults to :$PORT when PORT is set)")
	fs.StringVar(&c.ProjectID, "project", "", "Google Cloud project of Identity Platform")
	fs.StringVar(&c.FirebaseAPIKey, "firebase-api-key", "", "Firebase web API key (public by design)")
	fs.StringVar(&c.FirebaseAuthDomain, "firebase-auth-domain", "", "Firebase auth domain (default <project>.firebaseapp.com)")
	fs.StringVar(&c.AuthEmulatorHost, "auth-emulator-host", "", "Identity Platform emulator host:port; empty in production")
	fs.BoolVar(&c.GoogleSignIn, "google-sign-in", false, `offer "Continue with Google"`)
	fs.StringVar(&c.GatewayURL, "gateway-url", "", "base URL of the Istio ingress gateway, e.g. https://10.128.0.7")
	fs.StringVar(&c.GatewayServerName, "gateway-server-name", "api.internal.example", "name the gateway's certificate must carry")
	fs.StringVar(&c.ClientTLSDir, "client-tls-dir", "", "directory with the client certificate: tls.crt, tls.key, ca.crt")
	fs.StringVar(&c.ClientCertFile, "client-tls-cert-file", "", "client certificate (overrides <client-tls-dir>/tls.crt)")
	fs.StringVar(&c.ClientKeyFile, "client-tls-key-file", "", "client private key (overrides <client-tls-dir>/tls.key)")
	fs.StringVar(&c.ClientCAFile, "client-tls-ca-file", "", "CA that verifies the gateway (overrides <client-tls-dir>/ca.crt)")
	fs.StringVar(&c.SessionKeyFile, "session-key-file", "", "secret the session cookie's MAC key is derived from (default: the client private key)")
	fs.DurationVar(&c.BackendTimeout, "backend-timeout", 5*time.Second, "timeout of one call to the gateway")
	err := config.Parse(fs, args, getenv, map[string]string{
		"project":              "GOOGLE_CLOUD_PROJECT",
		"firebase-api-key":     "FIREBASE_API_KEY",
		"firebase-auth-domain": "FIREBASE_AUTH_DOMAIN",
		"auth-emulator-host":   idtoken.EmulatorHostEnv,
		"google-sign-in":       "GOOGLE_SIGN_IN",
		"gateway-url":          "GATEWAY_URL",
		"gateway-server-name":  "GATEWAY_SERVER_NAME",
		"client-tls-dir":       "CLIENT_TLS_DIR",
		"client-tls-cert-file": "CLIENT_TLS_CERT_FILE",
		"client-tls-key-file":  "CLIENT_TLS_KEY_FILE",
		"client-tls-ca-file":   "CLIENT_TLS_CA_FILE",
		"session-key-file":     "SESSION_KEY_FILE",
		"backend-timeout":      "BACKEND_TIMEOUT",
	})
	if err != nil {
		return Config{}, err
	}
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate reports every problem, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("Addr is required"))
	}
	if c.ProjectID == "" {
		errs = append(errs, errors.New("ProjectID is required (-project or GOOGLE_CLOUD_PROJECT)"))
	}
	if c.FirebaseAPIKey == "" {
		errs = append(errs, errors.New("FirebaseAPIKey is required (-firebase-api-key or FIREBASE_API_KEY)"))
	}
	if c.FirebaseAuthDomain == "" || strings.ContainsAny(c.FirebaseAuthDomain, "/: ") {
		errs = append(errs, fmt.Errorf("FirebaseAuthDomain %q must be a bare host name", c.FirebaseAuthDomain))
	}
	if c.AuthEmulatorHost != "" {
		if _, _, err := net.SplitHostPort(c.AuthEmulatorHost); err != nil {
			errs = append(errs, fmt.Errorf("AuthEmulatorHost %q is not host:port: %w", c.AuthEmulatorHost, err))
		}
	}
	if u, err := url.Parse(c.GatewayURL); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		errs = append(errs, fmt.Errorf("GatewayURL %q must be https://host[:port] with nothing after it", redactURL(c.GatewayURL)))
	}
	if c.GatewayServerName == "" {
		errs = append(errs, errors.New("GatewayServerName is required"))
	}
	if c.ClientTLSDir == "" && (c.ClientCertFile == "" || c.ClientKeyFile == "" || c.ClientCAFile == "") {
		errs = append(errs, errors.New("ClientTLSDir, or all of ClientCertFile, ClientKeyFile and ClientCAFile, is required "+
			"(-client-tls-dir or CLIENT_TLS_DIR; CLIENT_TLS_CERT_FILE, CLIENT_TLS_KEY_FILE, CLIENT_TLS_CA_FILE)"))
	}
	if c.BackendTimeout <= 0 {
		errs = append(errs, fmt.Errorf("BackendTimeout %v must be positive", c.BackendTimeout))
	}
	return errors.Join(errs...)
}

// LogValue prints the configuration at start-up. It holds no secrets — the
// private key stays in ClientTLSDir, which is printed as a path — except
// what a mistyped GatewayURL might carry as user:password, which is redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("projectId", c.ProjectID),
		slog.String("firebaseApiKey", c.FirebaseAPIKey),
		slog.String("firebaseAuthDomain", c.FirebaseAuthDomain),
		slog.String("authEmulatorHost", c.AuthEmulatorHost),
		slog.Bool("googleSignIn", c.GoogleSignIn),
		slog.String("gatewayUrl", redactURL(c.GatewayURL)),
		slog.String("gatewayServerName", c.GatewayServerName),
		slog.String("clientTlsDir", c.ClientTLSDir),
		slog.String("clientTlsCertFile", c.ClientCertFile),
		slog.String("clientTlsKeyFile", c.ClientKeyFile), // a path, never the key
		slog.String("clientTlsCaFile", c.ClientCAFile),
		slog.String("sessionKeyFile", c.SessionKeyFile), // a path, never the secret
		slog.String("backendTimeout", c.BackendTimeout.String()),
	)
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// emulatorURL is the emulator origin the browser talks to, or "".
func (c Config) emulatorURL() string {
	if c.AuthEmulatorHost == "" {
		return ""
	}
	return "http://" + c.AuthEmulatorHost
}

// withDefaults fills what follows from the rest: the emulator accepts any
// API key (the browser SDK only needs one to be set), and the auth domain
// is the project's own unless told otherwise.
func (c Config) withDefaults() Config {
	if c.FirebaseAPIKey == "" && c.AuthEmulatorHost != "" {
		c.FirebaseAPIKey = "emulator-api-key"
	}
	if c.FirebaseAuthDomain == "" && c.ProjectID != "" {
		c.FirebaseAuthDomain = c.ProjectID + ".firebaseapp.com"
	}
	return c
}
