package backend

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

// Config is everything the backend is configured with. It holds no secrets:
// Google credentials come from the environment (Application Default
// Credentials), never from configuration.
type Config struct {
	// Addr is the listen address: ":$PORT" when PORT is set, otherwise
	// loopback only.
	Addr string
	// ProjectID is the Google Cloud project whose Identity Platform issues
	// the ID tokens this API accepts.
	ProjectID string
	// AuthEmulatorHost is the local Identity Platform emulator (host:port)
	// whose tokens are accepted instead of Google's; empty in production.
	// idtoken.EmulatorHostEnv is its environment fallback.
	AuthEmulatorHost string
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// Grace bounds the graceful shutdown after SIGTERM.
	Grace time.Duration
	// Drain keeps serving (with readiness failing) this long after SIGTERM
	// before the listener closes, so Kubernetes removes the endpoint first.
	Drain time.Duration
	// RevocationCheck is the longest a user keeps access to the API after
	// their tokens were revoked (sign-out) or they were disabled or
	// deleted: each user is looked up in Identity Platform at most once per
	// this period (idtoken.Config.RevocationCheck).
	RevocationCheck time.Duration
	// MachineCallers are the service accounts, by email, whose Google ID
	// tokens the API accepts: the allowlist of istio/'s machine rule (the
	// AuthorizationPolicy's request.auth.claims[email] values), which is
	// their one source — devstack reads it from the rendered policy, and
	// production passes the same list (MACHINE_CALLERS). Empty: no
	// workload may call.
	MachineCallers []string
	// MachineAudience is the aud those tokens must carry: API_AUDIENCE of
	// istio/project.env, e.g. "https://api.internal.example".
	MachineAudience string
	// GoogleCertsURL is where Google's ID-token keys are fetched; empty means
	// Google's own (https://www.googleapis.com/oauth2/v3/certs). devstack
	// points it at local/google.
	GoogleCertsURL string
}

// DefaultAddr is where the backend listens when neither -addr nor PORT says
// otherwise: loopback, so that nothing is exposed unless asked.
const DefaultAddr = "127.0.0.1:8081"

// ParseConfig reads flags from args with environment fallbacks from getenv,
// then validates the result.
func ParseConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Addr, "addr", config.ListenAddr(getenv, DefaultAddr), "listen address (default from PORT)")
	fs.StringVar(&c.ProjectID, "project", "", "Google Cloud project id that issues the ID tokens")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "minimum log level: DEBUG, INFO, WARN, ERROR")
	fs.DurationVar(&c.Grace, "grace", 8*time.Second, "how long in-flight requests may finish after SIGTERM")
	fs.DurationVar(&c.Drain, "drain", 0, "how long to keep serving, readiness failing, after SIGTERM (on GKE: a few seconds)")
	fs.DurationVar(&c.RevocationCheck, "revocation-check", idtoken.DefaultRevocationCheck,
		"longest a signed-out, disabled or deleted user keeps access (one Identity Platform lookup per user per period)")
	fs.StringVar(&c.AuthEmulatorHost, "auth-emulator-host", "", "Identity Platform emulator host:port; empty in production")
	var callers string
	fs.StringVar(&callers, "machine-callers", "", "service accounts (emails, comma-separated) whose Google ID tokens may call the API: istio/'s machine allowlist")
	fs.StringVar(&c.MachineAudience, "machine-audience", "", "audience workloads' Google ID tokens must carry (istio/project.env API_AUDIENCE)")
	err := config.Parse(fs, args, getenv, map[string]string{
		"auth-emulator-host": idtoken.EmulatorHostEnv,
		"machine-callers":    "MACHINE_CALLERS",
		"machine-audience":   "API_AUDIENCE",
		"project":            "GOOGLE_CLOUD_PROJECT",
		"log-level":          "LOG_LEVEL",
		"drain":              "DRAIN",
		"revocation-check":   "REVOCATION_CHECK",
	})
	if err != nil {
		return Config{}, err
	}
	for _, e := range strings.Split(callers, ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.MachineCallers = append(c.MachineCallers, e)
		}
	}
	return c, c.Validate()
}

// Validate reports every invalid field by name.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("backend: Addr %q: %w", c.Addr, err))
	}
	if c.ProjectID == "" {
		errs = append(errs, errors.New("backend: ProjectID is required (-project or GOOGLE_CLOUD_PROJECT)"))
	}
	if c.Drain < 0 {
		errs = append(errs, fmt.Errorf("backend: Drain %v must not be negative", c.Drain))
	}
	if c.RevocationCheck <= 0 {
		errs = append(errs, fmt.Errorf("backend: RevocationCheck %v must be positive: without it a signed-out user keeps access until the token expires (an hour)", c.RevocationCheck))
	}
	if len(c.MachineCallers) > 0 && c.MachineAudience == "" {
		errs = append(errs, errors.New("backend: MachineAudience is required with MachineCallers (-machine-audience or API_AUDIENCE)"))
	}
	for _, e := range c.MachineCallers {
		if at := strings.IndexByte(e, '@'); at <= 0 || !strings.HasSuffix(e, ".gserviceaccount.com") {
			errs = append(errs, fmt.Errorf("backend: MachineCallers: %q is not a service account's email", e))
		}
	}
	if u, err := url.Parse(c.GoogleCertsURL); c.GoogleCertsURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		errs = append(errs, fmt.Errorf("backend: GoogleCertsURL %q is not an http(s) URL", c.GoogleCertsURL))
	}
	if c.Grace <= 0 {
		errs = append(errs, fmt.Errorf("backend: Grace %v must be positive", c.Grace))
	}
	return errors.Join(errs...)
}

// LogValue prints the configuration at start-up. Every field is listed
// explicitly, so a secret added later is not printed by accident.
func (c Config) LogValue() slog.Value {
	mode := "production (Google's keys)"
	if c.AuthEmulatorHost != "" {
		mode = "emulator at " + c.AuthEmulatorHost
	}
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("projectId", c.ProjectID),
		slog.String("tokenVerification", mode),
		slog.String("logLevel", c.LogLevel.String()),
		slog.String("grace", c.Grace.String()),
		slog.String("drain", c.Drain.String()),
		slog.String("revocationCheck", c.RevocationCheck.String()),
		slog.String("machineCallers", strings.Join(c.MachineCallers, ",")),
		slog.String("machineAudience", c.MachineAudience),
		slog.String("googleCertsUrl", c.GoogleCertsURL),
	)
}
