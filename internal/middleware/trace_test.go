package middleware

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestHexSpanID(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"a W3C span id is kept", "00f067aa0ba902b7", "00f067aa0ba902b7"},
		{"a decimal Cloud Trace span id becomes 16 hex digits", "1", "0000000000000001"},
		{"the largest decimal span id fits", "18446744073709551615", "ffffffffffffffff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hexSpanID(tt.in); got != tt.want {
				t.Fatalf("hexSpanID(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	for _, in := range []string{"", "0", "0000000000000000", "18446744073709551616", "x"} {
		t.Run("no usable span id "+in+" gets a new one", func(t *testing.T) {
			got := hexSpanID(in)
			if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(got) || got == "0000000000000000" {
				t.Fatalf("hexSpanID(%q) = %q, want a new non-zero 16 hex digit span id", in, got)
			}
		})
	}
}

// TestServerTrace checks the trace a request is logged under, through the
// whole echo layer.
func TestServerTrace(t *testing.T) {
	srv, sink := newEchoServer(t, Config{Component: "backend"}, func(e *echo.Echo) {
		e.GET("/", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name      string
		header    http.Header
		wantTrace string // "" means a new one
		wantSpan  string // "" means a new one
		sampled   bool
	}{
		{"a W3C traceparent is followed",
			http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}},
			traceID, "00f067aa0ba902b7", true},
		{"Cloud Run's X-Cloud-Trace-Context is followed, its span in hex",
			http.Header{"X-Cloud-Trace-Context": {"105445aa7843bc8bf206b12000100000/255;o=1"}},
			"105445aa7843bc8bf206b12000100000", "00000000000000ff", true},
		{"an unsampled trace stays unsampled",
			http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-00"}},
			traceID, "00f067aa0ba902b7", false},
		{"no trace header starts a new trace", http.Header{}, "", "", false},
		{"a malformed header starts a new trace",
			http.Header{"Traceparent": {"00-zz-00f067aa0ba902b7-01"}}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := get(t, srv.URL+"/", tt.header)
			line := lineFor(t, sink, resp.Header.Get(HeaderRequestID))
			trace, _ := line["logging.googleapis.com/trace"].(string)
			span, _ := line["logging.googleapis.com/spanId"].(string)
			m := regexp.MustCompile(`^projects/demo-acme/traces/([0-9a-f]{32})$`).FindStringSubmatch(trace)
			if m == nil {
				t.Fatalf("trace = %q, want projects/demo-acme/traces/<32 hex>", trace)
			}
			if tt.wantTrace != "" && m[1] != tt.wantTrace {
				t.Errorf("trace id = %s, want the incoming %s", m[1], tt.wantTrace)
			}
			if tt.wantTrace == "" && m[1] == traceID {
				t.Errorf("trace id = %s, want a new one", m[1])
			}
			if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(span) {
				t.Errorf("spanId = %q, want 16 hex digits", span)
			}
			if tt.wantSpan != "" && span != tt.wantSpan {
				t.Errorf("spanId = %q, want %q", span, tt.wantSpan)
			}
			if line["logging.googleapis.com/trace_sampled"] != tt.sampled {
				t.Errorf("trace_sampled = %v, want %v", line["logging.googleapis.com/trace_sampled"], tt.sampled)
			}
		})
	}
}
