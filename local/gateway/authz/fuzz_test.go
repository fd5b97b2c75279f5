package authz

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pathPolicy(action securityv1beta1.AuthorizationPolicy_Action, paths, notPaths []string) *securityv1.AuthorizationPolicy {
	return &securityv1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "fuzz", Namespace: "istio-ingress"},
		Spec: securityv1beta1.AuthorizationPolicy{
			Action: action,
			Rules: []*securityv1beta1.Rule{{To: []*securityv1beta1.Rule_To{{
				Operation: &securityv1beta1.Operation{Paths: paths, NotPaths: notPaths},
			}}}},
		},
	}
}

// FuzzPathMatching checks Istio path matching against its own contract for
// any pattern and path: paths and notPaths are complements, ALLOW and DENY
// agree on what matches, and a pattern without wildcards is an exact match.
// Corpus: testdata/fuzz/FuzzPathMatching.
func FuzzPathMatching(f *testing.F) {
	for _, s := range [][2]string{
		{"/api/healthz", "/api/healthz"}, {"/api/*", "/api/secure.json"}, {"*.json", "/a.json"},
		{"*", "/"}, {"/foo/{*}", "/foo/bar"}, {"/foo/{**}", "/foo/a/b"}, {"/foo/{*}/bar/{**}", "/foo/x/bar/"},
		{"/foo/{**}/", "/foo/bar"}, {"/a*b", "/a*b"}, {"/api/healthz", "/api/healthz/../secure.json"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		allow, err := New([]*securityv1.AuthorizationPolicy{pathPolicy(securityv1beta1.AuthorizationPolicy_ALLOW, []string{pattern}, nil)})
		if err != nil {
			return // refused patterns are covered by TestNewRejectsWhatItCannotEvaluate
		}
		notAllow, err := New([]*securityv1.AuthorizationPolicy{pathPolicy(securityv1beta1.AuthorizationPolicy_ALLOW, nil, []string{pattern})})
		if err != nil {
			t.Fatalf("pattern %q accepted in paths but refused in notPaths: %v", pattern, err)
		}
		deny, err := New([]*securityv1.AuthorizationPolicy{pathPolicy(securityv1beta1.AuthorizationPolicy_DENY, []string{pattern}, nil)})
		if err != nil {
			t.Fatalf("pattern %q accepted for ALLOW but refused for DENY: %v", pattern, err)
		}
		r := Request{Method: "GET", Host: "h", Path: path, Headers: http.Header{}}
		matched := allow.Decide(r).Allow
		if notAllow.Decide(r).Allow == matched {
			t.Fatalf("paths and notPaths [%q] agree on %q (%v); want complements", pattern, path, matched)
		}
		if deny.Decide(r).Allow == matched {
			t.Fatalf("ALLOW and DENY of paths [%q] disagree on whether %q matches", pattern, path)
		}
		if !strings.Contains(pattern, "*") && matched != (path == pattern) {
			t.Fatalf("exact pattern %q on path %q: matched=%v", pattern, path, matched)
		}
	})
}

// FuzzDecide decodes arbitrary policies and evaluates arbitrary requests:
// New either refuses or Decide answers, never panics, is deterministic, and
// every allow is explained. Corpus: testdata/fuzz/FuzzDecide.
func FuzzDecide(f *testing.F) {
	f.Add(`{"action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/api/healthz"]}}]},{"from":[{"source":{"requestPrincipals":["https://securetoken.google.com/demo-acme/*"],"principals":["acme.internal/ns/frontend/sa/frontend"]}}],"to":[{"operation":{"paths":["/api/*"]}}]}]}`,
		"GET", "/api/secure.json", "api.internal.example", "acme.internal/ns/frontend/sa/frontend", "https://securetoken.google.com/demo-acme", "u1", "x")
	f.Add(`{"action":"DENY","rules":[{"when":[{"key":"request.auth.claims[groups][0]","values":["*"]}]}]}`,
		"POST", "/", "h", "", "", "", "admin")
	f.Add(`{"rules":[{"when":[{"key":"request.headers[x-a]","notValues":["*"]}]}]}`, "GET", "/", "h", "", "", "", "")
	f.Fuzz(func(t *testing.T, spec, method, path, host, principal, iss, sub, header string) {
		var p securityv1.AuthorizationPolicy
		if err := json.Unmarshal([]byte(spec), &p.Spec); err != nil {
			return
		}
		p.Name, p.Namespace = "fuzz", "istio-ingress"
		e, err := New([]*securityv1.AuthorizationPolicy{&p})
		if err != nil {
			return
		}
		r := Request{Method: method, Host: host, Path: path, Headers: http.Header{"X-A": {header}}, Principal: principal,
			Claims: map[string]any{"iss": iss, "sub": sub, "groups": []any{header}, "nested": map[string]any{"k": header}}}
		if iss != "" {
			r.RequestPrincipal = iss + "/" + sub
		}
		d := e.Decide(r)
		if d2 := e.Decide(r); d2 != d {
			t.Fatalf("Decide is not deterministic: %+v then %+v", d, d2)
		}
		if d.Reason == "" {
			t.Fatalf("decision %+v has no reason", d)
		}
		if d.Allow && d.Policy == "" && d.Reason != "no ALLOW policy applies" {
			t.Fatalf("allowed without naming a policy: %+v", d)
		}
	})
}
