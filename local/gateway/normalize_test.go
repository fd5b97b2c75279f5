package gateway

import (
	"strings"
	"testing"
)

func TestNormalizePathFollowsIstiosDefaultBASE(t *testing.T) {
	// Rows follow https://istio.io/latest/docs/reference/config/security/normalization/
	// (BASE column) and RFC 3986 section 5.2.4.
	tests := []struct {
		name, in, want string
	}{
		{"a plain path is unchanged", "/api/secure.json", "/api/secure.json"},
		{"a dot-dot segment removes the one before it", "/api/healthz/../secure.json", "/api/secure.json"},
		{"a dot segment disappears", "/api/./healthz", "/api/healthz"},
		{"dot-dot never climbs above the root", "/../../api/healthz", "/api/healthz"},
		{"a trailing dot-dot keeps the trailing slash", "/api/healthz/..", "/api/"},
		{"a trailing dot keeps the trailing slash", "/api/.", "/api/"},
		{"percent-encoded dots are dots (%2e, either case)", "/api/healthz/%2e%2E/secure.json", "/api/secure.json"},
		{"percent-encoded letters and digits are decoded", "/%61pi/h%65althz%31", "/api/healthz1"},
		{"percent-encoded dash, underscore, tilde are decoded", "/a%2db%5fc%7ed", "/a-b_c~d"},
		{"an encoded slash stays encoded under BASE", "/api/healthz%2f..%2fsecure.json", "/api/healthz%2f..%2fsecure.json"},
		{"an encoded backslash stays encoded under BASE", "/api%5c..", "/api%5c.."},
		{"a backslash becomes a slash", `/api\healthz`, "/api/healthz"},
		{"a backslash dot-dot is a dot-dot segment", `/api/healthz\..\secure.json`, "/api/secure.json"},
		{"slashes are not merged under BASE", "/api//healthz", "/api//healthz"},
		{"decoding happens once, not twice", "/api/%252e%252e/x", "/api/%252e%252e/x"},
		{"a dot-dot inside a name is not a segment", "/api/..healthz/a..b", "/api/..healthz/a..b"},
		{"raw spaces and quotes are escaped", `/a b"c`, "/a%20b%22c"},
		{"encoded reserved characters keep their case", "/a%3fb%3Fc", "/a%3fb%3Fc"},
		{"a stray percent sign is escaped, so it cannot pair with decoded digits", "/%%32%65", "/%252e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizePath(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("NormalizePath(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNormalizePathRejects(t *testing.T) {
	for _, in := range []string{"/api/%00", "/api/%00/x", "/api/\x00", "api/healthz", ""} {
		if got, err := NormalizePath(in); err == nil {
			t.Errorf("NormalizePath(%q) = %q, nil; want an error (Envoy answers 400)", in, got)
		}
	}
}

// FuzzNormalizePath checks the properties the policy relies on: the result
// is a fixed point (normalizing twice changes nothing, so no encoded dot
// segment survives to be decoded by the backend), it starts with "/", it has
// no dot segments, and it never holds a raw byte that needs escaping.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/api/healthz/../secure.json", "/api/%2e%2e/x", `/a\..\b`, "/a//b/./c/..", "/%2F%5c%00", "/%zz%", "/a%2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizePath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("NormalizePath(%q) = %q: want a leading /", in, got)
		}
		again, err := NormalizePath(got)
		if err != nil || again != got {
			t.Fatalf("NormalizePath(%q) = %q, but normalizing that gives %q, %v: want a fixed point", in, got, again, err)
		}
		for _, seg := range strings.Split(got, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q: still holds a dot segment", in, got)
			}
		}
		for i := 0; i < len(got); i++ {
			if mustEscape(got[i]) || got[i] == '\\' {
				t.Fatalf("NormalizePath(%q) = %q: raw byte %q at %d", in, got, got[i], i)
			}
		}
	})
}
