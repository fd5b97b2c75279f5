package middleware

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestRequestIDFor(t *testing.T) {
	const envoyID = "0b5b2a3c-9c1e-4a43-8d2f-7d3f0a1e2b3c"
	tests := []struct {
		name       string
		header     string
		remoteAddr string
		trust      TrustRequestID
		adopted    bool
	}{
		{"by default, a private peer's sane id is adopted", envoyID, "10.0.0.7:1234", nil, true},
		{"by default, an external client's id is replaced", envoyID, "203.0.113.9:1234", nil, false},
		{"a sane id is adopted when any is trusted", envoyID, "203.0.113.9:1234", TrustAny, true},
		{"a public edge makes its own even for a sane id", envoyID, "10.0.0.7:1234", TrustNone, false},
		{"a peer on a private network passes its id on", envoyID, "10.0.0.7:1234", TrustPrivateNetwork, true},
		{"a peer on loopback passes its id on", envoyID, "[::1]:1234", TrustPrivateNetwork, true},
		{"an external client's id is replaced", envoyID, "203.0.113.9:1234", TrustPrivateNetwork, false},
		{"a missing id is made", "", "10.0.0.7:1234", TrustAny, false},
		{"an id with a line break is replaced", "abc\r\n{\"severity\":\"ALERT\"}", "10.0.0.7:1234", TrustAny, false},
		{"an id too long is replaced", strings.Repeat("a", maxRequestIDLen+1), "10.0.0.7:1234", TrustAny, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remoteAddr
			if tt.header != "" {
				r.Header.Set(HeaderRequestID, tt.header)
			}
			got := requestIDFor(r, tt.trust)
			if tt.adopted {
				if got != tt.header {
					t.Fatalf("requestIDFor = %q, want the incoming %q adopted", got, tt.header)
				}
				return
			}
			if got == tt.header {
				t.Fatalf("requestIDFor = %q, want a new id, not the incoming one", got)
			}
			if _, err := uuid.Parse(got); err != nil {
				t.Fatalf("requestIDFor made %q, want a UUID as Envoy makes: %v", got, err)
			}
		})
	}
}

// FuzzSaneRequestID checks that an id we adopt can neither bloat nor break
// a log line, and that Envoy's UUIDs are adopted. Its corpus came with it
// from the backend, which had this rule first.
func FuzzSaneRequestID(f *testing.F) {
	for _, s := range []string{"0b5b2a3c-9c1e-4a43-8d2f-7d3f0a1e2b3c", "", "a b", "x\n", strings.Repeat("a", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !SaneRequestID(id) {
			return
		}
		if id == "" || len(id) > maxRequestIDLen || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) {
			t.Fatalf("SaneRequestID(%q) accepted an empty, long or unprintable id", id)
		}
	})
	if !SaneRequestID("0b5b2a3c-9c1e-4a43-8d2f-7d3f0a1e2b3c") {
		f.Fatal("an Envoy UUID request id is not adopted")
	}
}
