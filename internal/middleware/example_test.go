package middleware_test

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"

	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/labstack/echo/v4"
)

// An echo server installs the layer first, in one line; handlers log with
// the request's context and say how they decided.
func ExampleStack() {
	log := logging.New(os.Stdout, slog.LevelInfo, "demo-acme")
	e := echo.New()
	e.Use(middleware.Stack(middleware.Config{
		Component:  "backend",
		Logger:     log,
		BodyLimit:  4 << 10,
		QuietPaths: []string{"/api/healthz"},
	})...)
	e.GET("/api/secure.json", func(c echo.Context) error {
		ctx := c.Request().Context()
		middleware.Annotate(ctx, slog.String(middleware.KeyRequestPrincipal, "https://securetoken.google.com/demo-acme/uid-1"))
		log.InfoContext(ctx, "answering") // carries trace, requestId and component
		return c.JSON(http.StatusOK, map[string]string{"message": "hello"})
	})
}

// A reverse proxy built on net/http wraps its handler, and sends to the
// next hop through Transport so the trace and request id go on with it.
func ExampleHandler() {
	upstream, _ := url.Parse("http://127.0.0.1:8081")
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(upstream) },
		Transport: middleware.Transport(http.DefaultTransport),
	}
	_ = middleware.Handler(middleware.Config{
		Component:      "gateway",
		Logger:         logging.New(os.Stdout, slog.LevelInfo, "demo-acme"),
		TrustRequestID: middleware.TrustPrivateNetwork,
		BodyLimit:      -1, // streamed on, as Envoy does
	}, proxy)
}

// A client calling the next hop from a handler uses Transport, and the
// handler's context.
func ExampleTransport() {
	client := &http.Client{Transport: middleware.Transport(nil)}
	e := echo.New()
	e.GET("/", func(c echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, "http://127.0.0.1:8443/api/secure.json", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req) // carries X-Request-Id, traceparent, X-Cloud-Trace-Context
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return c.Stream(resp.StatusCode, "application/json", resp.Body)
	})
}
