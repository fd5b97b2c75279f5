package middleware

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestRecover(t *testing.T) {
	const secret = "SECRET-panic-value"
	forms := map[string]func(t *testing.T, panicAfterWrite bool) (*httptest.Server, *logSink){
		"echo": func(t *testing.T, after bool) (*httptest.Server, *logSink) {
			return newEchoServer(t, Config{Component: "backend"}, func(e *echo.Echo) {
				// A careless error handler that shows what it is given: the
				// panic's value must not be in it.
				e.HTTPErrorHandler = func(err error, c echo.Context) {
					if !c.Response().Committed {
						c.String(http.StatusInternalServerError, err.Error())
					}
				}
				e.GET("/", func(c echo.Context) error {
					if after {
						c.Response().WriteHeader(http.StatusAccepted)
					}
					panic(secret)
				})
			})
		},
		"net/http": func(t *testing.T, after bool) (*httptest.Server, *logSink) {
			return newHTTPServer(t, Config{Component: "gateway"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if after {
					w.WriteHeader(http.StatusAccepted)
				}
				panic(secret)
			}))
		},
	}
	tests := []struct {
		name       string
		afterWrite bool
		status     int
	}{
		{"a panic becomes a 500 without its value", false, http.StatusInternalServerError},
		{"a panic after the answer began keeps the status sent", true, http.StatusAccepted},
	}
	for form, serve := range forms {
		for _, tt := range tests {
			t.Run(form+": "+tt.name, func(t *testing.T) {
				srv, sink := serve(t, tt.afterWrite)
				resp, body := get(t, srv.URL+"/", nil)
				if resp.StatusCode != tt.status {
					t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
				}
				if strings.Contains(body, secret) {
					t.Fatalf("the panic's value reached the client: %q", body)
				}
				id := resp.Header.Get(HeaderRequestID)
				p := sink.waitPrefix(t, "panic: "+secret)
				msg := p["message"].(string)
				if p["severity"] != "ERROR" || !strings.Contains(msg, "goroutine ") || !strings.Contains(msg, "recover_test.go") {
					t.Errorf("panic line = %v; want ERROR with the panicking goroutine's stack", p)
				}
				if p[KeyRequestID] != id || p["logging.googleapis.com/trace"] == nil {
					t.Errorf("panic line %v is not correlated with request %s and its trace", p, id)
				}
				line := lineFor(t, sink, id)
				if got := httpRequest(t, line)["status"]; got != float64(tt.status) {
					t.Errorf("access line status = %v, want %d", got, tt.status)
				}
				if tt.status == 500 && line["severity"] != "ERROR" {
					t.Errorf("access line severity = %v, want ERROR", line["severity"])
				}
			})
		}
	}
}

// TestAbortHandlerIsNotAnError: http.ErrAbortHandler is net/http's way to
// abort a response on purpose; it must reach net/http, not become a 500.
func TestAbortHandlerIsNotAnError(t *testing.T) {
	forms := map[string]func(t *testing.T) (*httptest.Server, *logSink){
		"echo": func(t *testing.T) (*httptest.Server, *logSink) {
			return newEchoServer(t, Config{Component: "backend"}, func(e *echo.Echo) {
				e.GET("/", func(c echo.Context) error { panic(http.ErrAbortHandler) })
			})
		},
		"net/http": func(t *testing.T) (*httptest.Server, *logSink) {
			return newHTTPServer(t, Config{Component: "gateway"}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				panic(http.ErrAbortHandler)
			}))
		},
	}
	for form, serve := range forms {
		t.Run(form, func(t *testing.T) {
			srv, sink := serve(t)
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/", nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got status %d, want the connection aborted", resp.StatusCode)
			}
			if strings.Contains(sink.String(), "panic: ") {
				t.Fatalf("an aborted response was logged as a panic:\n%s", sink.String())
			}
			if form == "net/http" {
				// The gateway resets HTTP/2 streams so: no status was sent.
				line := sink.wait(t, "request")
				if hr, _ := line[KeyHTTPRequest].(map[string]any); hr["status"] != float64(0) {
					t.Errorf("the aborted response's access line has status %v, want 0 (none sent): %v", hr["status"], line)
				}
			}
		})
	}
}
