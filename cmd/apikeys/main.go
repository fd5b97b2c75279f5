// Command apikeys runs the API-key decision service (package apikeys): the
// Envoy ext_authz gRPC server the Istio gateway consults on every /api/
// request, the HTTP management API beside it, and /metrics on a port of its
// own. With -redis-addr it shares apps and quotas through Redis, with
// -redis-auth-file and -redis-ca-file for Memorystore's AUTH and in-transit
// encryption; without, it keeps them in memory (one replica only).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/acme/cloudrun-istio-gke/apikeys"
	"github.com/acme/cloudrun-istio-gke/internal/command"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/serve"
)

func main() {
	command.Main("apikeys", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout) }, nil)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	log := logging.New(stdout, cfg.LogLevel, cfg.ProjectID)
	log.Info("apikeys starting", "config", cfg)
	catalog, err := apikeys.LoadCatalog(cfg.Products)
	if err != nil {
		return err
	}
	verifier, err := idtoken.New(ctx, idtoken.Config{ProjectID: cfg.ProjectID, EmulatorHost: cfg.AuthEmulatorHost})
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	svc, err := apikeys.New(apikeys.Config{Catalog: catalog, Store: store, Verifier: verifier, Logger: log})
	if err != nil {
		return err
	}

	grpcLn, err := serve.Listen(ctx, cfg.GRPCAddr)
	if err != nil {
		return err
	}
	httpLn, err := serve.Listen(ctx, cfg.HTTPAddr)
	if err != nil {
		grpcLn.Close()
		return err
	}
	metricsLn, err := serve.Listen(ctx, cfg.MetricsAddr)
	if err != nil {
		grpcLn.Close()
		httpLn.Close()
		return err
	}
	gs := grpc.NewServer(
		// Envoy keeps its connection open; pings find a dead peer, and
		// the age bound spreads connections over new replicas.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 5 * time.Minute, MaxConnectionAgeGrace: cfg.Grace,
			Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.MaxRecvMsgSize(1<<20),
	)
	svc.Register(gs)
	// The kubelet's gRPC readiness probe asks this; it turns NOT_SERVING
	// as soon as shutdown begins.
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	log.Info("apikeys listening", "grpc", grpcLn.Addr().String(), "http", httpLn.Addr().String(),
		"metrics", metricsLn.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := gs.Serve(grpcLn); err != nil {
			return fmt.Errorf("serving gRPC on %s: %w", grpcLn.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		hs.Shutdown()
		stopGRPC(gs, cfg.Drain, cfg.Grace, log)
		return nil
	})
	g.Go(func() error {
		return serve.Run(gctx, serve.Options{Name: "apikeys", Handler: svc.Handler(), Listener: httpLn,
			Grace: cfg.Grace, Drain: cfg.Drain, Logger: log})
	})
	g.Go(func() error {
		// Scraped until the end of the drain, like the rest.
		return serve.Run(gctx, serve.Options{Name: "apikeys-metrics", Handler: svc.MetricsHandler(), Listener: metricsLn,
			Grace: cfg.Grace, Drain: cfg.Drain, Logger: log})
	})
	err = g.Wait()
	log.Info("apikeys stopped")
	return err
}

// stopGRPC keeps answering checks for drain (the endpoint leaves the
// Service meanwhile), then lets in-flight checks finish within grace.
func stopGRPC(gs *grpc.Server, drain, grace time.Duration, log *slog.Logger) {
	time.Sleep(drain)
	done := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		log.Warn("gRPC checks still in flight after the grace period; stopping them")
		gs.Stop()
		<-done
	}
}

// redisHint names the setting most likely at fault for a failed PING, so the
// operator looks at the right one first.
func redisHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"), strings.Contains(msg, "invalid password"):
		return "AUTH refused: check REDIS_AUTH_FILE"
	case strings.Contains(msg, "x509:"), strings.Contains(msg, "tls:"):
		return "TLS failed: check REDIS_CA_FILE and that REDIS_ADDR is the TLS port (6378 on Memorystore)"
	default:
		return "is REDIS_ADDR right and reachable?"
	}
}

func openStore(ctx context.Context, cfg config) (apikeys.Store, error) {
	if cfg.RedisAddr == "" {
		return apikeys.NewMemoryStore(), nil
	}
	opts, err := apikeys.RedisConn{Addr: cfg.RedisAddr, AuthFile: cfg.RedisAuthFile, CAFile: cfg.RedisCAFile}.Options()
	if ce := (*apikeys.RedisConnError)(nil); errors.As(err, &ce) {
		setting := map[string]string{"AuthFile": "RedisAuthFile (-redis-auth-file or REDIS_AUTH_FILE)",
			"CAFile": "RedisCAFile (-redis-ca-file or REDIS_CA_FILE)"}[ce.Field]
		return nil, fmt.Errorf("%s: %w", setting, ce.Err)
	} else if err != nil {
		return nil, err
	}
	// A check waits on Redis: short timeouts turn a stuck Redis into a
	// quick 503 instead of a hung API request.
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 500 * time.Millisecond
	opts.WriteTimeout = 500 * time.Millisecond
	c := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connecting to redis at %s (%s): %w", cfg.RedisAddr, redisHint(err), err)
	}
	return apikeys.NewRedisStore(c), nil
}
