package loadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"

	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/acme/cloudrun-istio-gke/local/gateway"
)

// The bare proxy is the control for the gateway's figures: what any proxy
// built on net/http pays on this machine before doing anything of its own.
// It terminates mutual TLS with the gateway's certificate and client CA,
// speaks HTTP/2 to the client, and forwards every request to the backend
// with httputil.ReverseProxy over kept-alive HTTP/1.1, in a process of its
// own, as the load tool's gateway runs; no normalization, authentication,
// policy, routing or access log. The gateway's added latency minus the bare
// proxy's is what the gateway's own work costs.

// ServeBareProxy is the child's side: it serves the credentials in certDir
// (tls.crt, tls.key, ca.crt: the gateway's) on a free loopback port,
// forwarding to backendAddr, prints "listening ADDR" on stdout, and runs
// until ctx ends.
func ServeBareProxy(ctx context.Context, certDir, backendAddr string, stdout io.Writer) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err != nil {
		return fmt.Errorf("bare proxy certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(certDir, "ca.crt"))
	if err != nil {
		return fmt.Errorf("bare proxy client CA: %w", err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("bare proxy client CA %s: no certificate in it", filepath.Join(certDir, "ca.crt"))
	}
	// The gateway's upstream pool, so that only the gateway's own work differs.
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: backendAddr})
			r.Out.Host = r.In.Host
		},
		Transport: gateway.NewUpstreamTransport(),
	}
	ln, err := serve.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "listening", ln.Addr())
	return serve.Run(ctx, serve.Options{
		Name: "bare proxy", Handler: proxy, Listener: ln,
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		TLS: &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert,
			MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"},
		},
	})
}
