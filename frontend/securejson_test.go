package frontend

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// GET /api/secure.json is public; the gateway behind it is not. Every
// refusal the frontend can make itself is made before a request reaches the
// gateway, and what the gateway says stays inside: the browser gets the
// frontend's own JSON and none of Envoy's text or headers.
func TestSecureJSONDecidesBeforeTheGateway(t *testing.T) {
	s := newStack(t)
	adaCookie, ada := s.signIn("ada@example.com")
	_, bob := s.user("bob@example.com")
	adaUID, _ := s.user("ada@example.com")
	expired, err := s.emulator.IDTokenFor(context.Background(), adaUID, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	forged := tamper(t, ada)
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Add("Authorization", "Bearer "+tok) }
	}
	cookie := func(c *http.Cookie) func(*http.Request) { return func(r *http.Request) { r.AddCookie(c) } }
	withValue := func(v string) *http.Cookie { return &http.Cookie{Name: adaCookie.Name, Value: v} }

	tests := []struct {
		name          string
		send          []func(*http.Request)
		gatewaySays   int // 0: the backend's secret
		want          int
		wantGateway   int    // requests that reach the gateway
		wantAuthz     string // what the gateway gets, when reached
		wantChallenge bool
	}{
		{name: "the session cookie gets the secret message", send: []func(*http.Request){cookie(adaCookie)},
			want: 200, wantGateway: 1, wantAuthz: "Bearer " + ada},
		{name: "a bearer header gets the secret message", send: []func(*http.Request){bearer(ada)},
			want: 200, wantGateway: 1, wantAuthz: "Bearer " + ada},
		{name: "the same token in the header and the cookie is one credential", send: []func(*http.Request){bearer(ada), cookie(adaCookie)},
			want: 200, wantGateway: 1, wantAuthz: "Bearer " + ada},
		{name: "a request with no credential is answered here, not by the gateway",
			want: 401, wantChallenge: true},
		{name: "a forged bearer token is refused before the gateway", send: []func(*http.Request){bearer(forged)},
			want: 401, wantChallenge: true},
		{name: "an expired bearer token is refused before the gateway", send: []func(*http.Request){bearer(expired)},
			want: 401, wantChallenge: true},
		{name: "something that is not a JWT is refused before the gateway", send: []func(*http.Request){bearer("not-a-jwt")},
			want: 401, wantChallenge: true},
		{name: "a Basic credential is refused before the gateway", send: []func(*http.Request){func(r *http.Request) {
			r.Header.Set("Authorization", "Basic YWRhOnB3")
		}}, want: 401, wantChallenge: true},
		{name: "a forged session cookie is refused before the gateway", send: []func(*http.Request){cookie(withValue(forged))},
			want: 401, wantChallenge: true},
		{name: "two Authorization headers of two users are refused", send: []func(*http.Request){bearer(ada), bearer(bob)},
			want: 400},
		{name: "two Authorization headers with the same token are refused too", send: []func(*http.Request){bearer(ada), bearer(ada)},
			want: 400},
		{name: "two bearer tokens joined in one header are refused", send: []func(*http.Request){func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+ada+", Bearer "+bob)
		}}, want: 401, wantChallenge: true},
		{name: "a header and a cookie of two users are refused", send: []func(*http.Request){bearer(bob), cookie(adaCookie)},
			want: 400},
		{name: "a valid session cookie does not rescue a forged header", send: []func(*http.Request){bearer(forged), cookie(adaCookie)},
			want: 400},
		{name: "two session cookies are refused", send: []func(*http.Request){cookie(adaCookie), cookie(withValue(adaCookie.Value))},
			want: 400},
		{name: "the gateway's 401 becomes the frontend's own", send: []func(*http.Request){bearer(ada)}, gatewaySays: 401,
			want: 401, wantGateway: 1, wantAuthz: "Bearer " + ada, wantChallenge: true},
		{name: "the gateway's RBAC denial becomes the frontend's own 403", send: []func(*http.Request){bearer(ada)}, gatewaySays: 403,
			want: 403, wantGateway: 1, wantAuthz: "Bearer " + ada},
		{name: "the gateway's 503 becomes the frontend's own", send: []func(*http.Request){bearer(ada)}, gatewaySays: 503,
			want: 503, wantGateway: 1, wantAuthz: "Bearer " + ada},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.gateway.setStatus(tt.gatewaySays)
			t.Cleanup(func() { s.gateway.setStatus(0) })
			req, _ := http.NewRequest(http.MethodGet, s.front.URL+"/api/secure.json", nil)
			for _, f := range tt.send {
				f(req)
			}
			before := s.gateway.count()
			resp, body := s.do(req)
			if got := s.gateway.count() - before; got != tt.wantGateway {
				t.Errorf("%d requests reached the gateway; want %d", got, tt.wantGateway)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("GET /api/secure.json: got %d %q, want %d", resp.StatusCode, body, tt.want)
			}
			if tt.wantGateway > 0 {
				if authz, _ := s.gateway.last(); authz != tt.wantAuthz {
					t.Errorf("the gateway got Authorization %.40q…, want %.40q…", authz, tt.wantAuthz)
				}
			}
			checkNothingInternal(t, resp, body)
			var got map[string]string
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q is not the frontend's JSON: %v", body, err)
			}
			if tt.want == 200 {
				if got["message"] != "Hello World" {
					t.Errorf("body %q: want the secret message", body)
				}
				return
			}
			if got["error"] == "" || got["requestId"] != resp.Header.Get("X-Request-Id") || len(got) != 2 {
				t.Errorf("body %q: want exactly the frontend's {error, requestId} with the response's request id", body)
			}
			if ch := resp.Header.Get("WWW-Authenticate"); tt.wantChallenge != (ch != "") {
				t.Errorf("WWW-Authenticate %q; want one: %v", ch, tt.wantChallenge)
			}
		})
	}
}

// checkNothingInternal fails if the gateway's words reached the browser.
func checkNothingInternal(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	for _, internal := range []string{"Jwt is expired", "RBAC", "no healthy upstream", gatewayHost, envoyServer} {
		if strings.Contains(body, internal) {
			t.Errorf("body %q carries the gateway's %q", body, internal)
		}
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			if strings.HasPrefix(strings.ToLower(k), "x-envoy-") || strings.Contains(v, gatewayHost) ||
				strings.Contains(v, envoyServer) || strings.Contains(v, "realm=") {
				t.Errorf("header %s: %q came from the gateway", k, v)
			}
		}
	}
}
