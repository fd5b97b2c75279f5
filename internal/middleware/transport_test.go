package middleware

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"

	"github.com/labstack/echo/v4"
)

// seenHeaders is a next hop that answers with the trace and request id
// headers it got.
func seenHeaders(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{HeaderRequestID, HeaderTraceparent, HeaderCloudTraceContext} {
			w.Header()["Seen-"+h] = r.Header[h]
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTransportCarriesTheRequestOn(t *testing.T) {
	next := seenHeaders(t)
	client := &http.Client{Transport: Transport(nil)}
	type seen struct{ requestID, traceparent, cloud, callerTraceparent string }
	calls := make(chan [2]seen, 1)
	srv, sink := newEchoServer(t, Config{Component: "frontend"}, func(e *echo.Echo) {
		e.GET("/", func(c echo.Context) error {
			var got [2]seen
			for i := range got {
				req, _ := http.NewRequestWithContext(c.Request().Context(), http.MethodGet, next.URL, nil)
				req.Header.Set(HeaderRequestID, "chosen-by-the-caller")
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				got[i] = seen{resp.Header.Get("Seen-" + HeaderRequestID), resp.Header.Get("Seen-" + HeaderTraceparent),
					resp.Header.Get("Seen-" + HeaderCloudTraceContext), req.Header.Get(HeaderTraceparent)}
				if req.Header.Get(HeaderRequestID) != "chosen-by-the-caller" {
					t.Errorf("the transport changed the caller's request: X-Request-Id = %q", req.Header.Get(HeaderRequestID))
				}
			}
			calls <- got
			return c.NoContent(http.StatusNoContent)
		})
	})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, _ := get(t, srv.URL+"/", http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}})
	got := <-calls
	line := lineFor(t, sink, resp.Header.Get(HeaderRequestID))
	serverSpan := line["logging.googleapis.com/spanId"]

	tp := regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`)
	spans := map[string]bool{serverSpan.(string): true}
	for i, s := range got {
		if s.requestID != resp.Header.Get(HeaderRequestID) {
			t.Errorf("call %d: next hop got X-Request-Id %q, want this request's %q", i, s.requestID, resp.Header.Get(HeaderRequestID))
		}
		m := tp.FindStringSubmatch(s.traceparent)
		if m == nil || m[1] != traceID {
			t.Fatalf("call %d: next hop got traceparent %q, want trace %s, a span and the sampled flag", i, s.traceparent, traceID)
		}
		if spans[m[2]] {
			t.Errorf("call %d: span id %s was used before (server span %v): want a new one per call", i, m[2], serverSpan)
		}
		spans[m[2]] = true
		n, _ := strconv.ParseUint(m[2], 16, 64)
		if want := traceID + "/" + strconv.FormatUint(n, 10) + ";o=1"; s.cloud != want {
			t.Errorf("call %d: X-Cloud-Trace-Context = %q, want %q, the same span", i, s.cloud, want)
		}
		if s.callerTraceparent != "" {
			t.Errorf("call %d: the transport set traceparent on the caller's request", i)
		}
	}
}

func TestTransportOutsideARequestChangesNothing(t *testing.T) {
	next := seenHeaders(t)
	client := &http.Client{Transport: Transport(http.DefaultTransport)}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, next.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, h := range []string{HeaderRequestID, HeaderTraceparent, HeaderCloudTraceContext} {
		if v := resp.Header.Get("Seen-" + h); v != "" {
			t.Errorf("a call made outside any request carried %s: %q", h, v)
		}
	}
	client.CloseIdleConnections() // reaches the base transport
}
