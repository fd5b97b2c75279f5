package middleware

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestHopsShareOneStory follows one request through three servers on
// loopback, shaped as ours are: an echo frontend that calls, through
// Transport, a net/http reverse proxy (the gateway) in front of an echo
// backend. Their access lines must share the trace id and the request id,
// each with its own span, under identical keys, and hold no credential.
func TestHopsShareOneStory(t *testing.T) {
	backendLog, gatewayLog, frontendLog := newLogSink(), newLogSink(), newLogSink()

	be := echo.New()
	be.Use(Stack(Config{Component: "backend", Logger: backendLog.logger("demo-acme")})...)
	be.GET("/api/secure.json", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"message": "the secret"})
	})
	backend := httptest.NewServer(be)
	t.Cleanup(backend.Close)

	target, _ := url.Parse(backend.URL)
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: Transport(nil),
	}
	gateway := httptest.NewServer(Handler(Config{
		Component: "gateway", Logger: gatewayLog.logger("demo-acme"),
		TrustRequestID: TrustPrivateNetwork, BodyLimit: -1,
	}, proxy))
	t.Cleanup(gateway.Close)

	client := &http.Client{Transport: Transport(nil)}
	fe := echo.New()
	fe.Use(Stack(Config{Component: "frontend", Logger: frontendLog.logger("demo-acme"), TrustRequestID: TrustNone})...)
	fe.GET("/", func(c echo.Context) error {
		req, err := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, gateway.URL+"/api/secure.json", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer SECRET-id-token")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		return c.Blob(resp.StatusCode, "application/json", b)
	})
	frontend := httptest.NewServer(fe)
	t.Cleanup(frontend.Close)

	resp, body := get(t, frontend.URL+"/?key=SECRET-api-key", http.Header{
		"Cookie":                {"__session=SECRET-session"},
		"X-Cloud-Trace-Context": {"105445aa7843bc8bf206b12000100000/1;o=1"}, // as Cloud Run sets it
		"X-Request-Id":          {"chosen-by-a-client"},                     // a public edge makes its own
	})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "the secret") {
		t.Fatalf("GET / = %d %q, want 200 and the backend's answer", resp.StatusCode, body)
	}
	id := resp.Header.Get(HeaderRequestID)
	if id == "chosen-by-a-client" {
		t.Fatal("the frontend adopted a public client's request id")
	}

	lines := map[string]map[string]any{
		"frontend": lineFor(t, frontendLog, id),
		"gateway":  lineFor(t, gatewayLog, id),
		"backend":  lineFor(t, backendLog, id),
	}
	wantKeys := slices.Sorted(maps.Keys(lines["frontend"]))
	wantHTTPKeys := slices.Sorted(maps.Keys(httpRequest(t, lines["frontend"])))
	spans := map[any]string{}
	for hop, line := range lines {
		if got := slices.Sorted(maps.Keys(line)); !slices.Equal(got, wantKeys) {
			t.Errorf("%s's access line has keys %v, the frontend's %v: want identical", hop, got, wantKeys)
		}
		if got := slices.Sorted(maps.Keys(httpRequest(t, line))); !slices.Equal(got, wantHTTPKeys) {
			t.Errorf("%s's httpRequest has keys %v, the frontend's %v: want identical", hop, got, wantHTTPKeys)
		}
		if got := line["logging.googleapis.com/trace"]; got != "projects/demo-acme/traces/105445aa7843bc8bf206b12000100000" {
			t.Errorf("%s's trace = %v, want Cloud Run's trace on every hop", hop, got)
		}
		if line[KeyComponent] != hop {
			t.Errorf("%s's line names component %v", hop, line[KeyComponent])
		}
		if httpRequest(t, line)["status"] != float64(200) {
			t.Errorf("%s logged status %v, want 200", hop, httpRequest(t, line)["status"])
		}
		span := line["logging.googleapis.com/spanId"]
		if other, dup := spans[span]; dup {
			t.Errorf("%s and %s logged the same span %v: want a new span per hop", hop, other, span)
		}
		spans[span] = hop
	}
	for hop, sink := range map[string]*logSink{"frontend": frontendLog, "gateway": gatewayLog, "backend": backendLog} {
		if raw := sink.String(); strings.Contains(raw, "SECRET") {
			t.Errorf("a credential reached the %s's log:\n%s", hop, raw)
		}
	}
}
