package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const productsFile = "../../deploy/kubernetes/apikeys/products.yaml"

func TestRunRefusesBadConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"help is not an error to report", []string{"-h"}, flag.ErrHelp.Error()},
		{"a missing project is named", []string{"-products", productsFile}, "ProjectID is required"},
		{"a bad gRPC address is named", []string{"-project", "p", "-grpc-addr", "nope"}, "GRPCAddr"},
		{"a bad metrics address is named", []string{"-project", "p", "-metrics-addr", "nope"}, "MetricsAddr"},
		{"a missing products file is named", []string{"-project", "p", "-products", "/nonexistent.yaml"}, "/nonexistent.yaml"},
		{"an unreachable Redis is named", []string{"-project", "p", "-products", productsFile, "-redis-addr", "127.0.0.1:1"}, "redis at 127.0.0.1:1"},
		{"a missing Redis AUTH file names the setting", []string{"-project", "p", "-products", productsFile, "-redis-addr", "127.0.0.1:1",
			"-redis-auth-file", "/nonexistent-auth"}, "REDIS_AUTH_FILE"},
		{"a missing Redis CA file names the setting", []string{"-project", "p", "-products", productsFile, "-redis-addr", "127.0.0.1:1",
			"-redis-ca-file", "/nonexistent-ca.pem"}, "REDIS_CA_FILE"},
		{"a Redis AUTH file without a Redis address is named", []string{"-project", "p", "-redis-auth-file", "/x"}, "RedisAuthFile"},
		{"a Redis CA file without a Redis address is named", []string{"-project", "p", "-redis-ca-file", "/x"}, "RedisCAFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:1")
			env := map[string]string{"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:1"}
			err := run(t.Context(), tt.args, func(k string) string { return env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestPrintedConfigShowsWhetherRedisAUTHIsSetButNeverTheString reads the
// AUTH string from a file given by environment, as on GKE, and captures the
// log: it says where AUTH comes from, and the string itself appears nowhere
// (nor in the error of the failed connection).
func TestPrintedConfigShowsWhetherRedisAUTHIsSetButNeverTheString(t *testing.T) {
	const secret = "7b0e2c4d-secret-auth-string"
	authFile := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(authFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:1")
	env := map[string]string{
		"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:1",
		"GOOGLE_CLOUD_PROJECT":        "demo-acme",
		"PRODUCTS_FILE":               productsFile,
		"REDIS_ADDR":                  "127.0.0.1:1", // refused: the run stops after printing its config
		"REDIS_AUTH_FILE":             authFile,
	}
	var out strings.Builder
	err := run(t.Context(), nil, func(k string) string { return env[k] }, &out)
	if err == nil {
		t.Fatal("run: got success with Redis unreachable, want an error")
	}
	if strings.Contains(out.String(), secret) || strings.Contains(err.Error(), secret) {
		t.Fatalf("the AUTH string leaked:\nlog: %s\nerror: %v", out.String(), err)
	}
	if want := "from " + authFile; !strings.Contains(out.String(), want) {
		t.Fatalf("log: got %s, want it to say AUTH is read %q", out.String(), want)
	}
}

// TestServesChecksAndStopsCleanly runs the command as main does, on free
// loopback ports, checks a request over gRPC and the HTTP side, then ends
// the context as SIGTERM would and expects a clean return.
func TestServesChecksAndStopsCleanly(t *testing.T) {
	// Emulator mode verifies nothing until a management call arrives, and
	// this test makes none: no emulator is needed.
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:1")
	env := map[string]string{
		"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:1",
		"GOOGLE_CLOUD_PROJECT":        "demo-acme",
		"PRODUCTS_FILE":               productsFile,
		"GRPC_ADDR":                   "127.0.0.1:0",
		"HTTP_ADDR":                   "127.0.0.1:0",
		"METRICS_ADDR":                "127.0.0.1:0",
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logR, logW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, nil, func(k string) string { return env[k] }, logW)
		logW.CloseWithError(errors.New("run returned"))
		done <- err
	}()
	sc := bufio.NewScanner(logR)
	var grpcAddr, httpAddr, metricsAddr string
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil && l["message"] == "apikeys listening" {
			grpcAddr, httpAddr = l["grpc"].(string), l["http"].(string)
			metricsAddr, _ = l["metrics"].(string)
			break
		}
	}
	if grpcAddr == "" || metricsAddr == "" {
		t.Fatalf("no 'apikeys listening' line naming grpc and metrics addresses; run: %v", <-done)
	}
	go io.Copy(io.Discard, logR)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Run("a check without a key passes, x-api-app stripped", func(t *testing.T) {
		r, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/api/secure.json", Headers: map[string]string{"x-api-app": "spoofed"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.GetOkResponse().GetHeadersToRemove(); len(got) != 1 || got[0] != "x-api-app" {
			t.Fatalf("headers_to_remove: got %q, want [x-api-app]", got)
		}
	})
	t.Run("gRPC health says SERVING", func(t *testing.T) {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("got %v, %v; want SERVING", h, err)
		}
	})
	// /metrics has a port of its own, the one GKE leaves open to the
	// scraper's plaintext; the management port must not answer it, nor the
	// metrics port anything else.
	for _, tt := range []struct {
		name, addr, path string
		wantStatus       int
		wantBody         string
	}{
		{"the management port serves /healthz", httpAddr, "/healthz", http.StatusOK, "ok"},
		{"the metrics port serves the check counters", metricsAddr, "/metrics", http.StatusOK,
			`apikeys_checks_total{outcome="no_key",product=""} 1`},
		{"the management port does not serve /metrics", httpAddr, "/metrics", http.StatusNotFound, ""},
		{"the metrics port does not serve the management API", metricsAddr, "/api/apikeys/v1/products", http.StatusNotFound, ""},
		{"the metrics port does not serve /healthz", metricsAddr, "/healthz", http.StatusNotFound, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get("http://" + tt.addr + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("GET %s on %s: got %d, want %d", tt.path, tt.addr, resp.StatusCode, tt.wantStatus)
			}
			if !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("GET %s on %s: body lacks %q:\n%s", tt.path, tt.addr, tt.wantBody, b)
			}
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after shutdown: got %v, want nil", err)
	}
}
