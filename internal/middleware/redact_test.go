package middleware

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequestURLRedactsSecrets(t *testing.T) {
	tests := []struct {
		name   string
		target string
		tls    bool
		want   string
	}{
		{"a URL without a query is logged whole", "/api/secure.json", false, "http://example.com/api/secure.json"},
		{"TLS shows as https", "/x", true, "https://example.com/x"},
		{"a harmless query is kept as sent", "/search?q=go&page=2", false, "http://example.com/search?q=go&page=2"},
		{"an access token is redacted", "/cb?access_token=ya29.secret&x=1", false, "http://example.com/cb?access_token=REDACTED&x=1"},
		{"a Google API key is redacted", "/v1/accounts:signUp?key=AIzaSyA-secret", false, "http://example.com/v1/accounts:signUp?key=REDACTED"},
		{"api_key and id_token are redacted, other params kept in order", "/p?a=1&api_key=s1&b=2&id_token=s2", false, "http://example.com/p?a=1&api_key=REDACTED&b=2&id_token=REDACTED"},
		{"names are matched whatever their case", "/p?API_KEY=s1&Access_Token=s2", false, "http://example.com/p?API_KEY=REDACTED&Access_Token=REDACTED"},
		{"a percent-encoded name is matched", "/p?api%5Fkey=s1", false, "http://example.com/p?api%5Fkey=REDACTED"},
		{"a Firebase action code is redacted", "/action?mode=resetPassword&oobCode=s1", false, "http://example.com/action?mode=resetPassword&oobCode=REDACTED"},
		{"a value after a semicolon is redacted", "/p?a=1;token=s1", false, "http://example.com/p?a=1;token=REDACTED"},
		{"a repeated secret is redacted each time", "/p?key=s1&key=s2", false, "http://example.com/p?key=REDACTED&key=REDACTED"},
		{"a name without a value is kept", "/p?key&x=1", false, "http://example.com/p?key&x=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			got := requestURL(r)
			if got != tt.want {
				t.Fatalf("requestURL(%q) = %q, want %q", tt.target, got, tt.want)
			}
			if strings.Contains(got, "secret") || strings.Contains(got, "s1") || strings.Contains(got, "s2") {
				t.Fatalf("requestURL(%q) = %q still holds a secret", tt.target, got)
			}
		})
	}
}
