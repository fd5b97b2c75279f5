package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestKeyClientSendsTheKeyAlone: a partner's call carries x-api-key and no
// bearer token, and a 429 comes back as a status error with the answer.
func TestKeyClientSendsTheKeyAlone(t *testing.T) {
	var got http.Header
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(status)
		io.WriteString(w, `{"message":"Hello World"}`)
	}))
	defer srv.Close()
	c, err := NewKeyClient("ak_demo", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	a, err := c.Get(context.Background(), srv.URL+"/api/secure.json")
	if err != nil || a.Status != 200 {
		t.Fatalf("Get: %v, %+v; want 200", err, a)
	}
	if got.Get("X-Api-Key") != "ak_demo" || got.Get("Authorization") != "" {
		t.Errorf("sent x-api-key %q and Authorization %q: want the key and no token", got.Get("X-Api-Key"), got.Get("Authorization"))
	}

	status = http.StatusTooManyRequests
	a, err = c.Get(context.Background(), srv.URL+"/api/secure.json")
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindStatus || e.Status != 429 || a == nil || a.Header.Get("Retry-After") != "30" {
		t.Errorf("a 429: error %v, answer %+v; want a status error with the answer and its Retry-After", err, a)
	}
}

func TestAPIKeyFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string // "" for success, else part of the usage error
	}{
		{"a key and a loopback http URL need nothing else", []string{"-api-key", "ak_x", "-url", "http://127.0.0.1:8080/api/secure.json"}, ""},
		{"a key and an https URL", []string{"-api-key", "ak_x", "-url", "https://frontend.example/api/secure.json"}, ""},
		{"a key is never sent in clear beyond this machine", []string{"-api-key", "ak_x", "-url", "http://frontend.example/api/secure.json"}, "http:// to this machine only"},
		{"a key needs a URL", []string{"-api-key", "ak_x"}, "-url is required with -api-key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseFlags(tt.args, func(string) string { return "" }, io.Discard)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("ParseFlags(%q): %v, want success", tt.args, err)
			case tt.want == "" && o.APIKey != "ak_x":
				t.Errorf("APIKey %q, want ak_x", o.APIKey)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ParseFlags(%q): %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}
