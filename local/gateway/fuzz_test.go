package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/acme/cloudrun-istio-gke/local/gateway/authz"
)

// FuzzPolicyOnPaths drives any request path through normalization, the real
// istio/ authorization policy and the real routes, and checks the promises
// the policy makes: without credentials, or with a token whose email is not
// verified, only /api/healthz itself is open; with them exactly the /api/
// subtree is; and a path is routed to the
// backend exactly when it is under /api/. A path trick that slipped past
// normalization would break the first property.
func FuzzPolicyOnPaths(f *testing.F) {
	rs, err := Load(istioDir, projectID)
	if err != nil {
		f.Fatal(err)
	}
	sel := rs.Select(Workload{Namespace: DefaultNamespace, Labels: DefaultLabels()})
	engine, err := authz.New(sel.AuthorizationPolicies)
	if err != nil {
		f.Fatal(err)
	}
	rt, err := newRouter(sel.VirtualServices, everyDestination("127.0.0.1:1"), rs.origin)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/api/healthz", "/api/healthz/../secure.json", "/api/healthz/%2e%2e/x", `/api/healthz\..\x`, "/api//healthz", "/api/healthz%2f..", "/API/healthz", "/api/healthz/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := NormalizePath(raw)
		if err != nil {
			return
		}
		// DecideLocal: the RBAC filter, as it sees a request the CUSTOM
		// provider has passed without a key (and so without x-api-app).
		anonymous := engine.DecideLocal(authz.Request{Method: "GET", Host: gatewayHost, Path: p, Headers: http.Header{}, Port: DefaultPort})
		if anonymous.Allow && p != "/api/healthz" {
			t.Fatalf("%q normalized to %q is open without credentials (%s)", raw, p, anonymous.Reason)
		}
		signedIn := func(emailVerified string) authz.Decision {
			// The headers as the gateway's authentication leaves them:
			// x-jwt-claim-email-verified copied from the verified token.
			return engine.DecideLocal(authz.Request{Method: "GET", Host: gatewayHost, Path: p, Port: DefaultPort,
				Headers:          http.Header{"X-Jwt-Claim-Email-Verified": {emailVerified}},
				Principal:        "acme.internal/ns/frontend/sa/frontend",
				RequestPrincipal: "https://securetoken.google.com/" + projectID + "/uid",
				Claims:           map[string]any{"iss": "https://securetoken.google.com/" + projectID, "sub": "uid", "email_verified": emailVerified == "true"},
			})
		}
		if d, under := signedIn("true"), strings.HasPrefix(p, "/api/"); d.Allow != under {
			t.Fatalf("%q normalized to %q: signed-in decision %v (%s), want %v", raw, p, d.Allow, d.Reason, under)
		}
		if d := signedIn("false"); d.Allow && p != "/api/healthz" {
			t.Fatalf("%q normalized to %q is open to a user whose email is not verified (%s)", raw, p, d.Reason)
		}
		routed := rt.find(&facts{method: "GET", scheme: "https", authority: gatewayHost, path: p, header: http.Header{}, port: DefaultPort}) != nil
		if routed != strings.HasPrefix(p, "/api/") {
			t.Fatalf("%q normalized to %q: routed %v, want %v", raw, p, routed, !routed)
		}
	})
}
