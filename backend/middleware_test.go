package backend

import (
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   string
		ok     bool
	}{
		{"a bearer token is taken", "Bearer abc.def.ghi", "abc.def.ghi", true},
		{"the scheme is case-insensitive", "bEaReR abc", "abc", true},
		{"surrounding spaces are not part of the token", "Bearer   abc  ", "abc", true},
		{"an empty header has no token", "", "", false},
		{"a scheme alone has no token", "Bearer", "", false},
		{"a scheme and spaces have no token", "Bearer    ", "", false},
		{"another scheme has no bearer token", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "", false},
		{"a scheme that merely starts with Bearer is another scheme", "Bearerx abc", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := bearerToken(tt.header)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("bearerToken(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzBearerToken checks what any extracted token satisfies: it is
// non-empty, trimmed, and follows a case-insensitive "Bearer " in the header.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  x ", "Basic abc", "Bearer", "", "Bearer \t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := bearerToken(h)
		if !ok {
			if tok != "" {
				t.Fatalf("bearerToken(%q) refused but returned %q", h, tok)
			}
			return
		}
		if tok == "" || tok != strings.TrimSpace(tok) {
			t.Fatalf("bearerToken(%q) = %q: empty or untrimmed", h, tok)
		}
		if !strings.EqualFold(h[:len("Bearer ")], "Bearer ") || !strings.HasSuffix(strings.TrimSpace(h), tok) {
			t.Fatalf("bearerToken(%q) = %q: not the text after a Bearer scheme", h, tok)
		}
	})
}
