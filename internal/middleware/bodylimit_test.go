package middleware

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestBodyLimit(t *testing.T) {
	const limit = 16
	forms := map[string]func(t *testing.T, limit int64) (*httptest.Server, *logSink){
		"echo": func(t *testing.T, limit int64) (*httptest.Server, *logSink) {
			return newEchoServer(t, Config{Component: "identity", BodyLimit: limit}, func(e *echo.Echo) {
				e.POST("/", func(c echo.Context) error {
					b, err := io.ReadAll(c.Request().Body)
					if err != nil {
						return err // echo.ErrStatusRequestEntityTooLarge
					}
					return c.String(http.StatusOK, itoa(len(b)))
				})
			})
		},
		"net/http": func(t *testing.T, limit int64) (*httptest.Server, *logSink) {
			return newHTTPServer(t, Config{Component: "gateway", BodyLimit: limit}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(r.Body)
				if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
					http.Error(w, "too large", http.StatusRequestEntityTooLarge)
					return
				}
				w.Write([]byte(itoa(len(b))))
			}))
		},
	}
	tests := []struct {
		name    string
		limit   int64
		size    int
		chunked bool // no Content-Length: the limit is found by reading
		status  int
	}{
		{"a body at the limit passes", limit, limit, false, http.StatusOK},
		{"a body declared over the limit is refused", limit, limit + 1, false, http.StatusRequestEntityTooLarge},
		{"a streamed body over the limit is refused when read", limit, limit + 1, true, http.StatusRequestEntityTooLarge},
		{"a streamed body at the limit passes", limit, limit, true, http.StatusOK},
		{"no limit was set: the default of 1 MiB applies", 0, DefaultBodyLimit + 1, false, http.StatusRequestEntityTooLarge},
		{"a negative limit means none", -1, DefaultBodyLimit + 1, false, http.StatusOK},
	}
	for form, serve := range forms {
		for _, tt := range tests {
			t.Run(form+": "+tt.name, func(t *testing.T) {
				srv, sink := serve(t, tt.limit)
				var body io.Reader = strings.NewReader(strings.Repeat("x", tt.size))
				if tt.chunked {
					body = io.MultiReader(body) // hides the length from http.NewRequest
				}
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", body)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Fatalf("POST %d bytes (limit %d, chunked %v) = %d, want %d", tt.size, tt.limit, tt.chunked, resp.StatusCode, tt.status)
				}
				line := lineFor(t, sink, resp.Header.Get(HeaderRequestID))
				if got := httpRequest(t, line)["status"]; got != float64(tt.status) {
					t.Fatalf("access line status = %v, want %d", got, tt.status)
				}
			})
		}
	}
}
