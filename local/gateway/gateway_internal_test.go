package gateway

import (
	"net/http/httptest"
	"testing"
)

func TestRequestIDFromAnExternalClientIsReplaced(t *testing.T) {
	// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-request-id
	for _, tt := range []struct {
		name, remote string
		keep         bool
	}{
		{"loopback is internal", "127.0.0.1:5000", true},
		{"RFC 1918 is internal", "10.8.0.3:5000", true},
		{"a public address is external", "203.0.113.7:5000", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gateway{cfg: Config{}, access: discardSlog()}
			r := httptest.NewRequest("GET", "/%00", nil) // stops at normalization: no engines needed
			r.RemoteAddr = tt.remote
			r.Header.Set("X-Request-Id", "client-id")
			// The id the request is served, logged and forwarded under
			// (middleware.Transport) is the one the answer carries.
			rec := httptest.NewRecorder()
			g.Handler().ServeHTTP(rec, r)
			got := rec.Header().Get("X-Request-Id")
			if (got == "client-id") != tt.keep {
				t.Fatalf("x-request-id from %s: got %q, want kept=%v", tt.remote, got, tt.keep)
			}
		})
	}
}
