package backend_test

import (
	"net/http"
	"testing"
)

// TestPartnerCalls: a call with the x-api-app the gateway's decision service
// set, and no token, is a partner app's; anything else takes the user's
// path and its refusals.
func TestPartnerCalls(t *testing.T) {
	st := startStack(t)
	_, tok := st.signIn(t, "ada@example.com", 0)
	_, ts, _ := newBackend(t, st.verifier)
	for _, tt := range []struct {
		name       string
		header     http.Header
		wantStatus int
		wantApp    string
	}{
		{"x-api-app alone is the partner app it names", http.Header{"X-Api-App": {"app_0123abcd"}}, 200, "app_0123abcd"},
		{"x-api-app beside a token is the user's call", http.Header{"X-Api-App": {"app_0123abcd"}, "Authorization": {"Bearer " + tok}}, 200, ""},
		{"two x-api-app values are no partner", http.Header{"X-Api-App": {"app_a", "app_b"}}, 401, ""},
		{"an x-api-app of another shape is no partner", http.Header{"X-Api-App": {"app a,b"}}, 401, ""},
		{"no x-api-app and no token is refused as before", http.Header{}, 401, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := get(t, http.MethodGet, ts.URL+"/api/secure.json", tt.header)
			if a.status != tt.wantStatus {
				t.Fatalf("status %d (body %v), want %d", a.status, a.body, tt.wantStatus)
			}
			if app, _ := a.body["app"].(string); app != tt.wantApp {
				t.Errorf("app %q in %v, want %q", app, a.body, tt.wantApp)
			}
		})
	}
}
