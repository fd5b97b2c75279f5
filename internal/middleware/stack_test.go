package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestConfigValidate(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"a component and a logger are enough", Config{Component: "backend", Logger: log}, ""},
		{"a missing component is named", Config{Logger: log}, "Config.Component"},
		{"a missing logger is named", Config{Component: "backend"}, "Config.Logger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want an error naming %q (or none if empty)", err, tt.wantErr)
			}
		})
	}
}

// TestRequestIDReachesHandlerResponseAndLog runs the echo and the net/http
// forms of the layer alike.
func TestRequestIDReachesHandlerResponseAndLog(t *testing.T) {
	forms := map[string]func(t *testing.T, cfg Config) (*httptest.Server, *logSink){
		"echo": func(t *testing.T, cfg Config) (*httptest.Server, *logSink) {
			return newEchoServer(t, cfg, func(e *echo.Echo) {
				e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, RequestID(c.Request().Context())) })
			})
		},
		"echo, installed with Pre": func(t *testing.T, cfg Config) (*httptest.Server, *logSink) {
			sink := newLogSink()
			cfg.Logger = sink.logger("demo-acme")
			e := echo.New()
			e.Pre(Stack(cfg)...)
			e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, RequestID(c.Request().Context())) })
			srv := httptest.NewServer(e)
			t.Cleanup(srv.Close)
			return srv, sink
		},
		"net/http": func(t *testing.T, cfg Config) (*httptest.Server, *logSink) {
			return newHTTPServer(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(RequestID(r.Context())))
			}))
		},
	}
	const sent = "0b5b2a3c-9c1e-4a43-8d2f-7d3f0a1e2b3c"
	tests := []struct {
		name    string
		trust   TrustRequestID
		header  string
		adopted bool
	}{
		{"a sane incoming id is adopted", nil, sent, true},
		{"a public edge makes its own", TrustNone, sent, false},
		{"an id with a line break is replaced", nil, "x\ty", false},
		{"a request without one gets one", nil, "", false},
	}
	for form, serve := range forms {
		for _, tt := range tests {
			t.Run(form+": "+tt.name, func(t *testing.T) {
				srv, sink := serve(t, Config{Component: "backend", TrustRequestID: tt.trust})
				h := http.Header{}
				if tt.header != "" {
					h.Set(HeaderRequestID, tt.header)
				}
				resp, body := get(t, srv.URL+"/", h)
				id := resp.Header.Get(HeaderRequestID)
				if tt.adopted != (id == sent) {
					t.Fatalf("response X-Request-Id = %q; adopted %q: %v, want %v", id, sent, id == sent, tt.adopted)
				}
				if body != id {
					t.Fatalf("handler saw request id %q, response says %q", body, id)
				}
				lineFor(t, sink, id) // the access line carries it
			})
		}
	}
}

// newHTTPServer serves h behind the net/http form of the layer.
func newHTTPServer(t *testing.T, cfg Config, h http.Handler) (*httptest.Server, *logSink) {
	t.Helper()
	sink := newLogSink()
	if cfg.Logger == nil {
		cfg.Logger = sink.logger("demo-acme")
	}
	srv := httptest.NewServer(Handler(cfg, h))
	t.Cleanup(srv.Close)
	return srv, sink
}

func TestHandlerLogsTheStatusItWrote(t *testing.T) {
	srv, sink := newHTTPServer(t, Config{Component: "gateway"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Annotate(r.Context(), slog.String(KeyReason, "route_not_found"))
		http.Error(w, "", http.StatusNotFound)
	}))
	resp, body := get(t, srv.URL+"/x?api_key=SECRET", nil)
	line := lineFor(t, sink, resp.Header.Get(HeaderRequestID))
	hr := httpRequest(t, line)
	if hr["status"] != float64(404) || hr["responseSize"] != itoa(len(body)) || line[KeyReason] != "route_not_found" || line[KeyComponent] != "gateway" {
		t.Fatalf("access line = %v; want status 404, responseSize %d, reason route_not_found, component gateway", line, len(body))
	}
	if hr["requestUrl"] != srv.URL+"/x?api_key=REDACTED" {
		t.Fatalf("requestUrl = %v, want the key redacted", hr["requestUrl"])
	}
}

func TestAClientGoneBeforeAnAnswerIsLoggedAs499(t *testing.T) {
	started := make(chan struct{})
	wait := func(ctx context.Context) {
		close(started)
		<-ctx.Done() // the client went away
	}
	forms := map[string]func(t *testing.T) (*httptest.Server, *logSink){
		"echo": func(t *testing.T) (*httptest.Server, *logSink) {
			return newEchoServer(t, Config{Component: "frontend"}, func(e *echo.Echo) {
				e.GET("/", func(c echo.Context) error { wait(c.Request().Context()); return nil })
			})
		},
		"net/http": func(t *testing.T) (*httptest.Server, *logSink) {
			return newHTTPServer(t, Config{Component: "gateway"}, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				wait(r.Context())
			}))
		},
	}
	for form, serve := range forms {
		t.Run(form, func(t *testing.T) {
			started = make(chan struct{})
			srv, sink := serve(t)
			ctx, cancel := context.WithCancel(t.Context())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/", nil)
			req.Header.Set(HeaderRequestID, "gone-client")
			done := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			<-started
			cancel()
			if err := <-done; err == nil {
				t.Fatal("the request was answered, want it cancelled")
			}
			line := lineFor(t, sink, "gone-client")
			if got := httpRequest(t, line)["status"]; got != float64(StatusClientClosedRequest) {
				t.Fatalf("access line status = %v, want %d for a client gone before the answer", got, StatusClientClosedRequest)
			}
		})
	}
}
