package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	internalconfig "github.com/acme/cloudrun-istio-gke/internal/config"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
)

// config is everything the command is configured with. It holds no secret
// itself: the Redis AUTH string is read from RedisAuthFile when connecting,
// and Google credentials come from the environment.
type config struct {
	GRPCAddr, HTTPAddr string
	MetricsAddr        string
	Products           string
	RedisAddr          string
	RedisAuthFile      string // file holding Redis's AUTH string (a secret volume)
	RedisCAFile        string // PEM CA the Redis server's TLS certificate must chain to
	ProjectID          string
	AuthEmulatorHost   string
	LogLevel           slog.Level
	Grace, Drain       time.Duration
}

// Default listen addresses: loopback, so nothing is exposed unless asked.
const (
	defaultGRPCAddr = "127.0.0.1:9191"
	defaultHTTPAddr = "127.0.0.1:8091"
	// /metrics has a port of its own: on GKE the scraper has no mesh
	// identity, so this port accepts plaintext while the management API's
	// stays mTLS-only (deploy/kubernetes/apikeys/podmonitoring.yaml).
	defaultMetricsAddr = "127.0.0.1:9090"
)

func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("apikeys", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", defaultGRPCAddr, "listen address of the ext_authz gRPC server")
	fs.StringVar(&c.HTTPAddr, "http-addr", internalconfig.ListenAddr(getenv, defaultHTTPAddr),
		"listen address of the management API and /healthz (default from PORT)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", defaultMetricsAddr, "listen address of /metrics, for Prometheus")
	fs.StringVar(&c.Products, "products", "deploy/kubernetes/apikeys/products.yaml", "the API products file")
	fs.StringVar(&c.RedisAddr, "redis-addr", "", "Redis host:port; empty keeps everything in memory (one replica only)")
	// The AUTH string itself is never a flag or environment value: those
	// show in `ps` and in dumps of the environment. A file (a Secret
	// Manager or Kubernetes secret volume) does not.
	fs.StringVar(&c.RedisAuthFile, "redis-auth-file", "", "file holding the Redis AUTH string (Memorystore: --enable-auth); empty: no AUTH")
	fs.StringVar(&c.RedisCAFile, "redis-ca-file", "", "PEM CA file to verify Redis's TLS certificate with (Memorystore: the instance's server CA); empty: plain TCP")
	fs.StringVar(&c.ProjectID, "project", "", "Google Cloud project id that issues the ID tokens")
	fs.StringVar(&c.AuthEmulatorHost, "auth-emulator-host", "", "Identity Platform emulator host:port; empty in production")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "minimum log level: DEBUG, INFO, WARN, ERROR")
	fs.DurationVar(&c.Grace, "grace", 8*time.Second, "how long in-flight requests may finish after SIGTERM")
	fs.DurationVar(&c.Drain, "drain", 0, "how long to keep serving, readiness failing, after SIGTERM (on GKE: a few seconds)")
	err := internalconfig.Parse(fs, args, getenv, map[string]string{
		"grpc-addr":          "GRPC_ADDR",
		"http-addr":          "HTTP_ADDR",
		"metrics-addr":       "METRICS_ADDR",
		"products":           "PRODUCTS_FILE",
		"redis-addr":         "REDIS_ADDR",
		"redis-auth-file":    "REDIS_AUTH_FILE",
		"redis-ca-file":      "REDIS_CA_FILE",
		"project":            "GOOGLE_CLOUD_PROJECT",
		"auth-emulator-host": idtoken.EmulatorHostEnv,
		"log-level":          "LOG_LEVEL",
		"drain":              "DRAIN",
	})
	if err != nil {
		return config{}, err
	}
	return c, c.validate()
}

func (c config) validate() error {
	var errs []error
	for name, addr := range map[string]string{"GRPCAddr": c.GRPCAddr, "HTTPAddr": c.HTTPAddr, "MetricsAddr": c.MetricsAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("apikeys: %s %q: %w", name, addr, err))
		}
	}
	if c.RedisAddr != "" {
		if _, _, err := net.SplitHostPort(c.RedisAddr); err != nil {
			errs = append(errs, fmt.Errorf("apikeys: RedisAddr %q: %w", c.RedisAddr, err))
		}
	}
	if c.RedisAddr == "" {
		// Settings for a Redis that is not used are a mistake to report,
		// not to ignore: the operator believes the connection is secured.
		for name, v := range map[string]string{"RedisAuthFile (-redis-auth-file or REDIS_AUTH_FILE)": c.RedisAuthFile,
			"RedisCAFile (-redis-ca-file or REDIS_CA_FILE)": c.RedisCAFile} {
			if v != "" {
				errs = append(errs, fmt.Errorf("apikeys: %s is set but RedisAddr is not", name))
			}
		}
	}
	if c.Products == "" {
		errs = append(errs, errors.New("apikeys: Products is required (-products or PRODUCTS_FILE)"))
	}
	if c.ProjectID == "" {
		errs = append(errs, errors.New("apikeys: ProjectID is required (-project or GOOGLE_CLOUD_PROJECT)"))
	}
	if c.Grace <= 0 {
		errs = append(errs, fmt.Errorf("apikeys: Grace %v must be positive", c.Grace))
	}
	if c.Drain < 0 {
		errs = append(errs, fmt.Errorf("apikeys: Drain %v must not be negative", c.Drain))
	}
	return errors.Join(errs...)
}

// LogValue lists every field explicitly, so a secret added later is not
// printed by accident.
func (c config) LogValue() slog.Value {
	store := "memory (one replica only)"
	if c.RedisAddr != "" {
		store = "redis at " + c.RedisAddr
	}
	// Only whether AUTH is set, and which file: never the AUTH string.
	redisAuth := "none"
	if c.RedisAuthFile != "" {
		redisAuth = "from " + c.RedisAuthFile
	}
	redisTLS := "off"
	if c.RedisCAFile != "" {
		redisTLS = "verified against " + c.RedisCAFile
	}
	mode := "production (Google's keys)"
	if c.AuthEmulatorHost != "" {
		mode = "emulator at " + c.AuthEmulatorHost
	}
	return slog.GroupValue(
		slog.String("grpcAddr", c.GRPCAddr),
		slog.String("httpAddr", c.HTTPAddr),
		slog.String("metricsAddr", c.MetricsAddr),
		slog.String("products", c.Products),
		slog.String("store", store),
		slog.String("redisAuth", redisAuth),
		slog.String("redisTLS", redisTLS),
		slog.String("projectId", c.ProjectID),
		slog.String("tokenVerification", mode),
		slog.String("logLevel", c.LogLevel.String()),
		slog.String("grace", c.Grace.String()),
		slog.String("drain", c.Drain.String()),
	)
}
