package authz

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/yaml"
)

// Documents the conformance rows follow:
//
//	[ap]        https://istio.io/latest/docs/reference/config/security/authorization-policy/
//	[concept]   https://istio.io/latest/docs/concepts/security/#authorization-policies
//	[cond]      https://istio.io/latest/docs/reference/config/security/conditions/
//	[jwt-task]  https://istio.io/latest/docs/tasks/security/authorization/authz-jwt/
//	[deny-task] https://istio.io/latest/docs/tasks/security/authorization/authz-deny/
//	[custom]    https://istio.io/latest/docs/tasks/security/authorization/authz-custom/
//	[dry-run]   https://istio.io/latest/docs/tasks/security/authorization/authz-dry-run/
//	[builder]   istio/istio pilot/pkg/security/authz/builder/builder.go and model/generator.go
//	[matcher]   istio/istio pilot/pkg/security/authz/matcher/{string,header}.go

const (
	issuer   = "https://securetoken.google.com/demo-acme"
	frontend = "acme.internal/ns/frontend/sa/frontend"
)

// policy decodes one AuthorizationPolicy written as YAML, as the gateway
// receives it from the istio/ base.
func policy(t testing.TB, doc string) *securityv1.AuthorizationPolicy {
	t.Helper()
	var p securityv1.AuthorizationPolicy
	if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
		t.Fatalf("decoding policy: %v\n%s", err, doc)
	}
	if p.Namespace == "" {
		p.Namespace = "istio-ingress"
	}
	return &p
}

// gatewayPolicy is the project's policy on the ingress gateway (istio/).
const gatewayPolicy = `
metadata: {name: api-gateway}
spec:
  action: ALLOW
  rules:
  - to: [{operation: {paths: [/api/healthz]}}]
  - from:
    - source:
        requestPrincipals: ["https://securetoken.google.com/demo-acme/*"]
        principals: ["acme.internal/ns/frontend/sa/frontend"]
    to: [{operation: {paths: ["/api/*"]}}]
`

func req(method, path string, opts ...func(*Request)) Request {
	r := Request{Method: method, Host: "api.internal.example", Path: path, Headers: http.Header{}, Port: 443}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func withUser(sub string) func(*Request) {
	return func(r *Request) {
		r.RequestPrincipal = issuer + "/" + sub
		r.Claims = map[string]any{"iss": issuer, "sub": sub, "aud": "demo-acme"}
	}
}

func withCert(p string) func(*Request) { return func(r *Request) { r.Principal = p } }

func withClaims(c map[string]any) func(*Request) {
	return func(r *Request) {
		r.Claims = c
		if iss, ok := c["iss"].(string); ok {
			r.RequestPrincipal = iss + "/" + c["sub"].(string)
		}
	}
}

func withHeader(k string, vs ...string) func(*Request) {
	return func(r *Request) {
		for _, v := range vs {
			r.Headers.Add(k, v)
		}
	}
}

func TestDecideConformance(t *testing.T) {
	tests := []struct {
		name, doc string
		policies  []string
		req       Request
		wantAllow bool
		wantIn    string // substring of Reason
	}{
		// The project's gateway policy.
		{name: "health checks pass without credentials", doc: "[ap] rules OR'ed; paths exact",
			policies: []string{gatewayPolicy}, req: req("GET", "/api/healthz"), wantAllow: true, wantIn: "ns[istio-ingress]-policy[api-gateway]-rule[0]"},
		{name: "the API with a user token and the frontend's certificate is allowed", doc: "[ap] from and to AND'ed",
			policies: []string{gatewayPolicy}, req: req("GET", "/api/secure.json", withUser("u1"), withCert(frontend)), wantAllow: true, wantIn: "rule[1]"},
		{name: "the API with a token but no client certificate is denied", doc: "[ap] source fields AND'ed",
			policies: []string{gatewayPolicy}, req: req("GET", "/api/secure.json", withUser("u1")), wantIn: "rbac_access_denied_matched_policy[none]"},
		{name: "the API with the certificate but no token is denied", doc: "[jwt-task] requestPrincipals needs a valid JWT",
			policies: []string{gatewayPolicy}, req: req("GET", "/api/secure.json", withCert(frontend)), wantIn: "[none]"},
		{name: "the API with another client's certificate is denied", doc: "[ap] principals exact",
			policies: []string{gatewayPolicy}, req: req("GET", "/api/secure.json", withUser("u1"), withCert("acme.internal/ns/other/sa/other")), wantIn: "[none]"},
		{name: "a token from another project is denied", doc: "[builder] requestPrincipals: issuer exact, subject any",
			policies: []string{gatewayPolicy}, req: req("GET", "/api/secure.json", withCert(frontend),
				withClaims(map[string]any{"iss": "https://securetoken.google.com/other", "sub": "u1"})), wantIn: "[none]"},
		{name: "a path outside /api/ is denied", doc: "[ap] ALLOW policies present: a match is needed",
			policies: []string{gatewayPolicy}, req: req("GET", "/admin", withUser("u1"), withCert(frontend)), wantIn: "[none]"},
		{name: "a healthz look-alike is not exact healthz", doc: "[matcher] exact path",
			policies: []string{gatewayPolicy}, req: req("GET", "/api/healthz/../secure.json"), wantIn: "[none]"},

		// Actions and their order.
		{name: "no policy at all allows", doc: "[concept] no ALLOW policy: allow",
			req: req("GET", "/x"), wantAllow: true, wantIn: "no ALLOW policy"},
		{name: "an ALLOW policy with an empty spec denies everything", doc: "[ap] allow-nothing example",
			policies: []string{`{metadata: {name: allow-nothing}, spec: {}}`}, req: req("GET", "/x"), wantIn: "[none]"},
		{name: "an ALLOW policy with one empty rule allows everything", doc: "[ap] allow-all example",
			policies: []string{`{metadata: {name: allow-all}, spec: {rules: [{}]}}`}, req: req("GET", "/x"), wantAllow: true, wantIn: "policy[allow-all]-rule[0]"},
		{name: "a DENY policy with one empty rule denies everything", doc: "[ap] deny-all example",
			policies: []string{`{metadata: {name: deny-all}, spec: {action: DENY, rules: [{}]}}`, `{metadata: {name: allow-all}, spec: {rules: [{}]}}`},
			req:      req("GET", "/x"), wantIn: "rbac_access_denied_matched_policy[ns[istio-ingress]-policy[deny-all]-rule[0]]"},
		{name: "DENY is evaluated before ALLOW", doc: "[concept] DENY then ALLOW",
			policies: []string{gatewayPolicy, `{metadata: {name: no-healthz}, spec: {action: DENY, rules: [{to: [{operation: {paths: [/api/healthz]}}]}]}}`},
			req:      req("GET", "/api/healthz"), wantIn: "policy[no-healthz]"},
		{name: "a DENY policy that does not match lets ALLOW decide", doc: "[deny-task]",
			policies: []string{gatewayPolicy, `{metadata: {name: no-post}, spec: {action: DENY, rules: [{to: [{operation: {methods: [POST]}}]}]}}`},
			req:      req("GET", "/api/healthz"), wantAllow: true},
		{name: "a DENY-only configuration allows what it does not deny", doc: "[concept] no ALLOW policy: allow",
			policies: []string{`{metadata: {name: no-post}, spec: {action: DENY, rules: [{to: [{operation: {methods: [POST]}}]}]}}`},
			req:      req("GET", "/x"), wantAllow: true},
		{name: "AUDIT never changes the decision", doc: "[ap] AUDIT action",
			policies: []string{`{metadata: {name: audit}, spec: {action: AUDIT, rules: [{}]}}`}, req: req("GET", "/x"), wantAllow: true},
		{name: "a dry-run DENY policy is not enforced", doc: "[dry-run] istio.io/dry-run",
			policies: []string{`{metadata: {name: shadow, annotations: {istio.io/dry-run: "true"}}, spec: {action: DENY, rules: [{}]}}`},
			req:      req("GET", "/x"), wantAllow: true},
		{name: "a matching CUSTOM policy fails closed without an ext_authz provider", doc: "[custom] CUSTOM first; fail closed locally",
			policies: []string{`{metadata: {name: ext}, spec: {action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: ["/admin/*"]}}]}]}}`,
				`{metadata: {name: allow-all}, spec: {rules: [{}]}}`},
			req: req("GET", "/admin/x"), wantIn: `CUSTOM provider "opa"`},
		{name: "a CUSTOM policy that does not match leaves the decision to the others", doc: "[custom]",
			policies: []string{`{metadata: {name: ext}, spec: {action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: ["/admin/*"]}}]}]}}`},
			req:      req("GET", "/api/x"), wantAllow: true},

		// Operations.
		{name: "a prefix path matches below it", doc: "[ap] prefix match \"/test/*\"",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/api/*"]}}]}]}}`}, req: req("GET", "/api/a/b"), wantAllow: true},
		{name: "a suffix path matches", doc: "[ap] suffix match \"*/test\"",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["*.json"]}}]}]}}`}, req: req("GET", "/api/secure.json"), wantAllow: true},
		{name: "paths are case-sensitive", doc: "[matcher] exact, ignore_case false",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/api/*"]}}]}]}}`}, req: req("GET", "/API/x"), wantIn: "[none]"},
		{name: "notPaths excludes", doc: "[ap] notPaths",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/api/*"], notPaths: ["/api/admin*"]}}]}]}}`},
			req:      req("GET", "/api/admin/x"), wantIn: "[none]"},
		{name: "a {*} template matches one segment", doc: "[ap] /foo/{*} matches /foo/bar",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/foo/{*}"]}}]}]}}`}, req: req("GET", "/foo/bar"), wantAllow: true},
		{name: "a {*} template does not match two segments", doc: "[ap] /foo/{*} does not match /foo/bar/baz",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/foo/{*}"]}}]}]}}`}, req: req("GET", "/foo/bar/baz"), wantIn: "[none]"},
		{name: "a {**} template matches several segments", doc: "[ap] /foo/{*}/bar/{**} matches /foo/buzz/bar/baz",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/foo/{*}/bar/{**}"]}}]}]}}`}, req: req("GET", "/foo/buzz/bar/baz/qux"), wantAllow: true},
		{name: "a {**} template matches zero segments", doc: "[ap] /foo/{*}/bar/{**} matches /foo/buzz/bar/",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/foo/{*}/bar/{**}"]}}]}]}}`}, req: req("GET", "/foo/buzz/bar/"), wantAllow: true},
		{name: "a {**}/ template needs the trailing slash", doc: "[ap] /foo/{**}/ does not match /foo/bar",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/foo/{**}/"]}}]}]}}`}, req: req("GET", "/foo/bar"), wantIn: "[none]"},
		{name: "methods match exactly", doc: "[ap] methods",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {methods: [GET, HEAD]}}]}]}}`}, req: req("HEAD", "/x"), wantAllow: true},
		{name: "methods are case-sensitive", doc: "[matcher] HeaderMatcher exact",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {methods: [GET]}}]}]}}`}, req: req("get", "/x"), wantIn: "[none]"},
		{name: "notMethods excludes", doc: "[ap] notMethods",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {notMethods: [DELETE]}}]}]}}`}, req: req("DELETE", "/x"), wantIn: "[none]"},
		{name: "hosts match case-insensitively", doc: "[ap] hosts: the match is case-insensitive",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {hosts: [API.internal.example]}}]}]}}`}, req: req("GET", "/x"), wantAllow: true},
		{name: "a host wildcard prefix matches a subdomain", doc: "[ap] hosts: [\"*.example.com\"]",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {hosts: ["*.internal.example"]}}]}]}}`}, req: req("GET", "/x"), wantAllow: true},
		{name: "a host with a port does not match the bare host", doc: "[ap] hosts as specified in the HTTP request",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {hosts: [api.internal.example]}}]}]}}`},
			req:      req("GET", "/x", func(r *Request) { r.Host = "api.internal.example:443" }), wantIn: "[none]"},
		{name: "notHosts excludes", doc: "[ap] notHosts",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {notHosts: ["*.internal.example"]}}]}]}}`}, req: req("GET", "/x"), wantIn: "[none]"},
		{name: "ports match the gateway port", doc: "[ap] ports",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {ports: ["443"]}}]}]}}`}, req: req("GET", "/x"), wantAllow: true},
		{name: "notPorts excludes", doc: "[ap] notPorts",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {notPorts: ["443"]}}]}]}}`}, req: req("GET", "/x"), wantIn: "[none]"},
		{name: "to entries are OR'ed", doc: "[ap] to: any of them",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: [/a]}}, {operation: {paths: [/b]}}]}]}}`}, req: req("GET", "/b"), wantAllow: true},
		{name: "operation fields are AND'ed", doc: "[ap] fields within an operation AND'ed",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: [/a], methods: [POST]}}]}]}}`}, req: req("GET", "/a"), wantIn: "[none]"},

		// Sources.
		{name: "principals \"*\" needs a client certificate", doc: "[ap] principals: [\"*\"] any authenticated peer",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{from: [{source: {principals: ["*"]}}]}]}}`}, req: req("GET", "/x"), wantIn: "[none]"},
		{name: "principals suffix matches", doc: "[matcher] StringMatcherWithPrefix spiffe://",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{from: [{source: {principals: ["*/sa/frontend"]}}]}]}}`}, req: req("GET", "/x", withCert(frontend)), wantAllow: true},
		{name: "notPrincipals admits a request without a certificate", doc: "[builder] not(authenticated) holds without a peer identity",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{from: [{source: {notPrincipals: [evil/ns/x/sa/y]}}]}]}}`}, req: req("GET", "/x"), wantAllow: true},
		{name: "requestPrincipals \"*\" needs any valid token", doc: "[jwt-task] requestPrincipals: [\"*\"]",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]}}`}, req: req("GET", "/x", withUser("u")), wantAllow: true},
		{name: "requestPrincipals exact names one user", doc: "[jwt-task] requestPrincipals: [\"testing@secure.istio.io/testing@secure.istio.io\"]",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{from: [{source: {requestPrincipals: ["https://securetoken.google.com/demo-acme/u1"]}}]}]}}`}, req: req("GET", "/x", withUser("u2")), wantIn: "[none]"},
		{name: "notRequestPrincipals \"*\" is a request without a token", doc: "[deny-task] DENY notRequestPrincipals: [\"*\"]",
			policies: []string{`{metadata: {name: require-jwt}, spec: {action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}}`}, req: req("GET", "/x"), wantIn: "policy[require-jwt]"},
		{name: "namespaces come from the certificate identity", doc: "[ap] namespaces; [builder] .*/ns/<ns>/.*",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{from: [{source: {namespaces: [frontend]}}]}]}}`}, req: req("GET", "/x", withCert(frontend)), wantAllow: true},
		{name: "serviceAccounts take the policy's namespace by default", doc: "[ap] serviceAccounts",
			policies: []string{`{metadata: {name: p, namespace: frontend}, spec: {rules: [{from: [{source: {serviceAccounts: [frontend]}}]}]}}`}, req: req("GET", "/x", withCert(frontend)), wantAllow: true},
		{name: "trustDomains match the identity's trust domain", doc: "[ap] trustDomains",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{from: [{source: {trustDomains: [acme.internal]}}]}]}}`}, req: req("GET", "/x", withCert(frontend)), wantAllow: true},
		{name: "ipBlocks match the peer address", doc: "[ap] ipBlocks",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{from: [{source: {ipBlocks: [127.0.0.0/8]}}]}]}}`},
			req:      req("GET", "/x", func(r *Request) { r.SourceIP = netip.MustParseAddr("127.0.0.1") }), wantAllow: true},
		{name: "from entries are OR'ed", doc: "[ap] from: any of them",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{from: [{source: {principals: [a/b]}}, {source: {requestPrincipals: ["*"]}}]}]}}`}, req: req("GET", "/x", withUser("u")), wantAllow: true},

		// Conditions.
		{name: "a claim condition matches a string claim", doc: "[cond] request.auth.claims",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: "request.auth.claims[email]", values: ["*@example.com"]}]}]}}`},
			req:      req("GET", "/x", withClaims(map[string]any{"iss": issuer, "sub": "u", "email": "ada@example.com"})), wantAllow: true},
		{name: "a claim condition matches an element of a list claim", doc: "[cond] list claims; [jwt-task] groups",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: "request.auth.claims[groups]", values: [group1]}]}]}}`},
			req:      req("GET", "/x", withClaims(map[string]any{"iss": issuer, "sub": "u", "groups": []any{"group0", "group1"}})), wantAllow: true},
		{name: "a nested claim condition follows [a][b]", doc: "[jwt-task] request.auth.claims[nested][key1]",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: "request.auth.claims[nested][key1]", values: [valueC]}]}]}}`},
			req:      req("GET", "/x", withClaims(map[string]any{"iss": issuer, "sub": "u", "nested": map[string]any{"key1": []any{"valueA", "valueC"}}})), wantAllow: true},
		{name: "a numeric claim never matches a string value", doc: "[builder] metadata string matcher",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: "request.auth.claims[level]", values: ["5"]}]}]}}`},
			req:      req("GET", "/x", withClaims(map[string]any{"iss": issuer, "sub": "u", "level": 5.0})), wantIn: "[none]"},
		{name: "notValues on an absent claim holds", doc: "[builder] not(metadata) without the claim",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: "request.auth.claims[role]", notValues: [banned]}]}]}}`}, req: req("GET", "/x"), wantAllow: true},
		{name: "request.auth.audiences matches an aud list", doc: "[cond] request.auth.audiences",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: request.auth.audiences, values: [demo-acme]}]}]}}`},
			req:      req("GET", "/x", withClaims(map[string]any{"iss": issuer, "sub": "u", "aud": []any{"x", "demo-acme"}})), wantAllow: true},
		{name: "request.auth.presenter matches azp", doc: "[cond] request.auth.presenter",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: request.auth.presenter, values: [web]}]}]}}`},
			req:      req("GET", "/x", withClaims(map[string]any{"iss": issuer, "sub": "u", "azp": "web"})), wantAllow: true},
		{name: "request.auth.principal matches iss/sub", doc: "[cond] request.auth.principal",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: request.auth.principal, values: ["https://securetoken.google.com/demo-acme/*"]}]}]}}`},
			req:      req("GET", "/x", withUser("u")), wantAllow: true},
		{name: "a header condition matches a prefix", doc: "[cond] request.headers",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: "request.headers[User-Agent]", values: ["Mozilla/*"]}]}]}}`},
			req:      req("GET", "/x", withHeader("User-Agent", "Mozilla/5.0")), wantAllow: true},
		{name: "a header condition \"*\" is presence", doc: "[matcher] HeaderMatcher present_match",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: "request.headers[x-token]", values: ["*"]}]}]}}`},
			req:      req("GET", "/x", withHeader("X-Token", "")), wantAllow: true},
		{name: "a repeated header matches its values joined with commas", doc: "Envoy HeaderUtility getAllOfHeaderAsString",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: "request.headers[x-a]", values: ["1,2"]}]}]}}`},
			req:      req("GET", "/x", withHeader("X-A", "1", "2")), wantAllow: true},
		{name: "a header condition finds a header in a map that is not canonical", doc: "RFC 9110 field names are case-insensitive",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: "request.headers[X-Debug]", values: ["1"]}]}]}}`},
			req:      req("GET", "/x", func(r *Request) { r.Headers = http.Header{"x-debug": {"1"}} }), wantAllow: true},
		{name: "source.principal is the certificate identity", doc: "[cond] source.principal",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: source.principal, values: ["acme.internal/ns/frontend/*"]}]}]}}`},
			req:      req("GET", "/x", withCert(frontend)), wantAllow: true},
		{name: "conditions are AND'ed", doc: "[ap] when: all of them",
			policies: []string{`{metadata: {name: p}, spec: {rules: [{when: [{key: source.principal, values: ["*"]}, {key: request.auth.principal, values: ["*"]}]}]}}`},
			req:      req("GET", "/x", withCert(frontend)), wantIn: "[none]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []*securityv1.AuthorizationPolicy
			for _, d := range tt.policies {
				ps = append(ps, policy(t, d))
			}
			e, err := New(ps)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got := e.Decide(tt.req)
			if got.Allow != tt.wantAllow || !strings.Contains(got.Reason, tt.wantIn) {
				t.Errorf("%s: got allow=%v reason %q, want allow=%v with a reason containing %q",
					tt.doc, got.Allow, got.Reason, tt.wantAllow, tt.wantIn)
			}
		})
	}
}

func TestDecisionNamesThePolicy(t *testing.T) {
	e, err := New([]*securityv1.AuthorizationPolicy{policy(t, gatewayPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	got := e.Decide(req("GET", "/api/healthz"))
	want := Decision{Allow: true, Reason: "allowed by ns[istio-ingress]-policy[api-gateway]-rule[0]", Policy: "istio-ingress/api-gateway"}
	if got != want {
		t.Errorf("Decide = %+v, want %+v", got, want)
	}
}

func TestNewRejectsWhatItCannotEvaluate(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"an unknown condition key", `{metadata: {name: p}, spec: {rules: [{when: [{key: request.foo, values: [x]}]}]}}`,
			`policy istio-ingress/p: rules[0].when[0]: unknown attribute "request.foo"`},
		{"a condition without values", `{metadata: {name: p}, spec: {rules: [{when: [{key: source.principal}]}]}}`,
			"at least one of values or notValues"},
		{"remoteIpBlocks", `{metadata: {name: p}, spec: {rules: [{from: [{source: {remoteIpBlocks: [1.2.3.4]}}]}]}}`,
			"rules[0].from[0].source.remoteIpBlocks: not supported locally"},
		{"a remote.ip condition", `{metadata: {name: p}, spec: {rules: [{when: [{key: remote.ip, values: [1.2.3.4]}]}]}}`,
			`key "remote.ip" is not supported`},
		{"a bad port", `{metadata: {name: p}, spec: {rules: [{to: [{operation: {ports: ["99999"]}}]}]}}`,
			`rules[0].to[0].operation.ports[0]: invalid port "99999"`},
		{"a bad IP block", `{metadata: {name: p}, spec: {rules: [{from: [{source: {ipBlocks: [not-an-ip]}}]}]}}`,
			"ipBlocks[0]: invalid IP address"},
		{"{**} not last", `{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/{**}/foo/{*}"]}}]}]}}`,
			"{**} is not the last operator"},
		{"a template with text beside the operator", `{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/foo/{*}.txt"]}}]}]}}`,
			"beyond a supported template operator"},
		{"a bare * in a template", `{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: ["/*/baz/{*}"]}}]}]}}`,
			"not a valid literal"},
		{"an empty source", `{metadata: {name: p}, spec: {rules: [{from: [{source: {}}]}]}}`, "source must not be empty"},
		{"an empty operation", `{metadata: {name: p}, spec: {rules: [{to: [{operation: {}}]}]}}`, "operation must not be empty"},
		{"an empty value", `{metadata: {name: p}, spec: {rules: [{to: [{operation: {paths: [""]}}]}]}}`, "paths[0] must not be empty"},
		{"DENY without rules", `{metadata: {name: p}, spec: {action: DENY}}`, "DENY action without rules"},
		{"CUSTOM without a provider", `{metadata: {name: p}, spec: {action: CUSTOM, rules: [{}]}}`, "provider.name must not be empty"},
		{"CUSTOM with principals", `{metadata: {name: p}, spec: {action: CUSTOM, provider: {name: x}, rules: [{from: [{source: {principals: [a]}}]}]}}`,
			"not supported with CUSTOM action"},
		{"a provider on ALLOW", `{metadata: {name: p}, spec: {provider: {name: x}, rules: [{}]}}`, "provider must not be set with ALLOW"},
		{"serviceAccounts with principals", `{metadata: {name: p}, spec: {rules: [{from: [{source: {serviceAccounts: [a], principals: [b]}}]}]}}`,
			"cannot be set with namespaces or principals"},
		{"a bad dry-run annotation", `{metadata: {name: p, annotations: {istio.io/dry-run: maybe}}, spec: {}}`, "istio.io/dry-run"},
		{"a claim key without brackets", `{metadata: {name: p}, spec: {rules: [{when: [{key: request.auth.claims.email, values: [x]}]}]}}`,
			"expecting format [<NAME>]"},
		{"an unsupported pseudo-header", `{metadata: {name: p}, spec: {rules: [{when: [{key: "request.headers[:path]", values: [x]}]}]}}`,
			`pseudo-header ":path" is not supported`},
	}
	for _, tt := range tests {
		t.Run("New refuses "+tt.name, func(t *testing.T) {
			_, err := New([]*securityv1.AuthorizationPolicy{policy(t, tt.doc)})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
