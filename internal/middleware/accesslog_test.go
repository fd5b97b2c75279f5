package middleware

import (
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// newEchoServer serves e behind the layer on loopback, logging to a sink.
func newEchoServer(t *testing.T, cfg Config, routes func(e *echo.Echo)) (*httptest.Server, *logSink) {
	t.Helper()
	sink := newLogSink()
	if cfg.Logger == nil {
		cfg.Logger = sink.logger("demo-acme")
	}
	e := echo.New()
	e.Use(Stack(cfg)...)
	routes(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv, sink
}

func get(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// accessKeys are the keys of every access line, whatever the server: the
// schema that one Cloud Logging query relies on.
var accessKeys = []string{
	"time", "severity", "message", KeyHTTPRequest,
	"logging.googleapis.com/trace", "logging.googleapis.com/spanId", "logging.googleapis.com/trace_sampled",
	KeyComponent, KeyRequestID,
}

var httpRequestKeys = []string{"requestMethod", "requestUrl", "status", "responseSize", "latency", "remoteIp", "userAgent", "protocol"}

func TestAccessLog(t *testing.T) {
	srv, sink := newEchoServer(t, Config{Component: "backend", QuietPaths: []string{"/healthz"}}, func(e *echo.Echo) {
		e.GET("/ok", func(c echo.Context) error { return c.String(http.StatusOK, "hello") })
		e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
		e.GET("/healthz-failing", func(c echo.Context) error { return c.String(http.StatusServiceUnavailable, "no") })
		e.GET("/denied", func(c echo.Context) error {
			Annotate(c.Request().Context(), slog.String(KeyReason, "rbac_access_denied"), slog.String(KeyPrincipal, "spiffe://cluster.local/ns/fe/sa/frontend"))
			return echo.NewHTTPError(http.StatusForbidden, "RBAC: access denied")
		})
		e.GET("/broken", func(c echo.Context) error {
			return echo.NewHTTPError(http.StatusBadGateway, "upstream").SetInternal(errors.New("dial tcp: connection refused"))
		})
	})
	tests := []struct {
		name      string
		path      string
		header    http.Header
		status    int
		severity  string
		extra     map[string]any // keys beyond accessKeys, with their values
		wantInURL string
	}{
		{name: "a success is logged at INFO with its size", path: "/ok", status: 200, severity: "INFO"},
		{name: "a healthy probe is logged at DEBUG", path: "/healthz", status: 200, severity: "DEBUG"},
		{name: "a failing probe is logged as usual", path: "/healthz-failing", status: 503, severity: "ERROR"},
		{name: "a refusal carries its reason and principal", path: "/denied", status: 403, severity: "INFO",
			extra: map[string]any{KeyReason: "rbac_access_denied", KeyPrincipal: "spiffe://cluster.local/ns/fe/sa/frontend", KeyError: "RBAC: access denied"}},
		{name: "a server error is logged at ERROR with its cause", path: "/broken", status: 502, severity: "ERROR",
			extra: map[string]any{KeyError: "upstream: dial tcp: connection refused"}},
		{name: "an unknown route is logged with echo's 404", path: "/nowhere", status: 404, severity: "INFO",
			extra: map[string]any{KeyError: "Not Found"}},
		{name: "credentials in the query, a cookie or a header never reach the line",
			path:   "/ok?key=AIzaSECRET1&access_token=ya29.SECRET2&page=2",
			header: http.Header{"Cookie": {"__session=SECRET3"}, "Authorization": {"Bearer SECRET4"}, "X-Api-Key": {"SECRET5"}},
			status: 200, severity: "INFO", wantInURL: "?key=REDACTED&access_token=REDACTED&page=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"User-Agent": {"access-log-test"}}
			maps.Copy(h, tt.header)
			resp, body := get(t, srv.URL+tt.path, h)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s = %d, want %d", tt.path, resp.StatusCode, tt.status)
			}
			id := resp.Header.Get(HeaderRequestID)
			line := lineFor(t, sink, id)

			keys := slices.Sorted(maps.Keys(line))
			want := append(slices.Clone(accessKeys), slices.Collect(maps.Keys(tt.extra))...)
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Errorf("access line keys = %v, want %v", keys, want)
			}
			if line["severity"] != tt.severity || line[KeyComponent] != "backend" || line["message"] != "request" {
				t.Errorf("severity, component, message = %v, %v, %v; want %s, backend, request", line["severity"], line[KeyComponent], line["message"], tt.severity)
			}
			for k, v := range tt.extra {
				if line[k] != v {
					t.Errorf("%s = %v, want %v", k, line[k], v)
				}
			}
			hr := httpRequest(t, line)
			if got := slices.Sorted(maps.Keys(hr)); !slices.Equal(got, slices.Sorted(slices.Values(httpRequestKeys))) {
				t.Errorf("httpRequest keys = %v, want %v", got, httpRequestKeys)
			}
			wantURL := srv.URL + tt.path
			if tt.wantInURL != "" {
				wantURL = srv.URL + "/ok" + tt.wantInURL
			}
			checks := map[string]any{
				"requestMethod": "GET", "requestUrl": wantURL, "status": float64(tt.status),
				"userAgent": "access-log-test", "protocol": "HTTP/1.1",
			}
			for k, v := range checks {
				if hr[k] != v {
					t.Errorf("httpRequest.%s = %v, want %v", k, hr[k], v)
				}
			}
			if hr["responseSize"] != itoa(len(body)) {
				t.Errorf("httpRequest.responseSize = %v, want %q, the body's length as a string", hr["responseSize"], itoa(len(body)))
			}
			if lat, _ := hr["latency"].(string); !regexp.MustCompile(`^\d+\.\d{6}s$`).MatchString(lat) {
				t.Errorf("httpRequest.latency = %q, want seconds with six decimals and an s, as \"0.001234s\"", lat)
			}
			if ip, _ := hr["remoteIp"].(string); !strings.HasPrefix(ip, "127.0.0.1:") {
				t.Errorf("httpRequest.remoteIp = %q, want the loopback peer", ip)
			}
			if raw := sink.String(); strings.Contains(raw, "SECRET") {
				t.Errorf("a credential reached the log:\n%s", raw)
			}
		})
	}
}

// lineFor waits for the access line of the request with id.
func lineFor(t *testing.T, sink *logSink, id string) map[string]any {
	t.Helper()
	if id == "" {
		t.Fatal("the response has no X-Request-Id")
	}
	deadline := time.After(10 * time.Second)
	for {
		sink.mu.Lock()
		for _, l := range sink.lines {
			if l["message"] == "request" && l[KeyRequestID] == id {
				sink.mu.Unlock()
				return l
			}
		}
		sink.mu.Unlock()
		select {
		case <-sink.added:
		case <-deadline:
			t.Fatalf("no access line for request %s; got:\n%s", id, sink.String())
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000000s"},
		{1234 * time.Microsecond, "0.001234s"},
		{1234567 * time.Nanosecond, "0.001234s"},
		{3500 * time.Millisecond, "3.500000s"},
		{61*time.Second + time.Microsecond, "61.000001s"},
	}
	for _, tt := range tests {
		if got := durationJSON(tt.d); got != tt.want {
			t.Errorf("durationJSON(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestAccessLogAtHigherLevelsSkipsQuietLines(t *testing.T) {
	sink := newLogSink()
	srv, _ := newEchoServer(t, Config{Component: "backend", Logger: loggerAt(sink, slog.LevelInfo), QuietPaths: []string{"/healthz"}}, func(e *echo.Echo) {
		e.GET("/healthz", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
		e.GET("/ok", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	})
	get(t, srv.URL+"/healthz", nil)
	resp, _ := get(t, srv.URL+"/ok", nil)
	lineFor(t, sink, resp.Header.Get(HeaderRequestID))
	if n := strings.Count(sink.String(), "\n"); n != 1 {
		t.Fatalf("want only the /ok line at INFO, got %d lines:\n%s", n, sink.String())
	}
}
