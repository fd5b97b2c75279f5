package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func loadRouter(t *testing.T, vs string, upstreams map[string]string) (*router, error) {
	t.Helper()
	rs, err := Load(writeBase(t, vs), "demo-acme")
	if err != nil {
		t.Fatal(err)
	}
	return newRouter(rs.VirtualServices, upstreams, rs.origin)
}

func TestRouterMatchesAsVirtualServiceDocumentationSays(t *testing.T) {
	// https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPMatchRequest
	rt, err := loadRouter(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: istio-ingress}
spec:
  hosts: [api.internal.example, "*.wild.example"]
  gateways: [gw]
  http:
  - name: exact
    match: [{uri: {exact: /exact}}]
    route: [{destination: {host: a, port: {number: 80}}}]
  - name: header-and-method
    match: [{uri: {prefix: /h/}, method: {exact: POST}, headers: {x-version: {exact: v2}}}]
    route: [{destination: {host: a, port: {number: 80}}}]
  - name: regex
    match: [{uri: {regex: "/r/[0-9]+"}}]
    route: [{destination: {host: a, port: {number: 80}}}]
  - name: case-insensitive
    match: [{uri: {prefix: /CI/}, ignoreUriCase: true}]
    route: [{destination: {host: a, port: {number: 80}}}]
  - name: query
    match: [{uri: {prefix: /q}, queryParams: {debug: {exact: "1"}}}]
    route: [{destination: {host: a, port: {number: 80}}}]
  - name: without-header
    match: [{uri: {prefix: /w}, withoutHeaders: {x-block: {}}}]
    route: [{destination: {host: a, port: {number: 80}}}]
  - name: api
    match: [{uri: {prefix: /api/}}]
    route: [{destination: {host: a, port: {number: 80}}}]
`, map[string]string{"a:80": "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, host, path, query string
		header                          http.Header
		want                            string // route name, "" for none (404)
	}{
		{name: "an exact uri matches only itself", path: "/exact", want: "exact"},
		{name: "an exact uri does not match a longer path", path: "/exact/x", want: ""},
		{name: "a prefix matches a longer path", path: "/api/secure.json", want: "api"},
		{name: "a prefix does not match without its trailing slash", path: "/api", want: ""},
		{name: "a regex must match the whole path", path: "/r/123", want: "regex"},
		{name: "a regex matching only part of the path does not match", path: "/r/123x", want: ""},
		{name: "method and header conditions must all hold", method: "POST", path: "/h/x", header: http.Header{"X-Version": {"v2"}}, want: "header-and-method"},
		{name: "a wrong header value fails the match", method: "POST", path: "/h/x", header: http.Header{"X-Version": {"v1"}}, want: ""},
		{name: "a wrong method fails the match", method: "GET", path: "/h/x", header: http.Header{"X-Version": {"v2"}}, want: ""},
		{name: "ignoreUriCase folds the prefix", path: "/ci/x", want: "case-insensitive"},
		{name: "a query parameter condition holds", path: "/q", query: "debug=1", want: "query"},
		{name: "a missing query parameter fails the match", path: "/q", want: ""},
		{name: "withoutHeaders matches when the header is absent", path: "/w", want: "without-header"},
		{name: "withoutHeaders fails when the header is present", path: "/w", header: http.Header{"X-Block": {"1"}}, want: ""},
		{name: "the host's port is ignored", host: "api.internal.example:8443", path: "/api/x", want: "api"},
		{name: "a wildcard host matches a subdomain", host: "x.wild.example", path: "/api/x", want: "api"},
		{name: "another host matches no virtual host", host: "127.0.0.1:8443", path: "/api/x", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &facts{method: tt.method, scheme: "https", authority: tt.host, path: tt.path, header: tt.header, port: 443}
			if f.method == "" {
				f.method = "GET"
			}
			if f.authority == "" {
				f.authority = "api.internal.example"
			}
			if f.header == nil {
				f.header = http.Header{}
			}
			f.query, _ = url.ParseQuery(tt.query)
			got := ""
			if r := rt.find(f); r != nil {
				got = r.name[strings.LastIndex(r.name, "/")+1:]
			}
			if got != tt.want {
				t.Fatalf("route for %s %s%s?%s: got %q, want %q", f.method, f.authority, tt.path, tt.query, got, tt.want)
			}
		})
	}
}

func TestRewriteReplacesTheMatchedPrefixOrTheWholePath(t *testing.T) {
	// https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRewrite
	rt, err := loadRouter(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: ns}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/}
    route: [{destination: {host: a}}]
  - match: [{uri: {exact: /exact}}]
    rewrite: {uri: /replaced}
    route: [{destination: {host: a}}]
  - match: [{uri: {prefix: /re/}}]
    rewrite: {uriRegexRewrite: {match: "^/re/([a-z]+)/(.*)$", rewrite: "/\\2/\\1"}}
    route: [{destination: {host: a}}]
`, map[string]string{"a": "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, in, want string }{
		{"a prefix route swaps the matched prefix", "/old/a/b", "/new/a/b"},
		{"an exact route replaces the whole path", "/exact", "/replaced"},
		{"a regex rewrite substitutes capture groups", "/re/abc/x/y", "/x/y/abc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &facts{method: "GET", authority: "h", path: tt.in, header: http.Header{}}
			r := rt.find(f)
			if r == nil {
				t.Fatalf("no route for %s", tt.in)
			}
			if got := r.rewritePath(f); got != tt.want {
				t.Fatalf("rewrite of %s: got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRouterRefusesWhatItCannotHonour(t *testing.T) {
	tests := []struct{ name, route, want string }{
		{"a destination without a local address", `route: [{destination: {host: unknown, port: {number: 80}}}]`, `no local address for "unknown:80"`},
		{"a redirect", `redirect: {uri: /x}`, "spec.http[0].redirect is not supported"},
		{"a retry policy", `{retries: {attempts: 3}, route: [{destination: {host: a}}]}`, "spec.http[0].retries is not supported"},
		{"a subset", `route: [{destination: {host: a, subset: v1}}]`, "spec.http[0].route[0].destination.subset"},
		{"an invalid regex", `{match: [{uri: {regex: "("}}], route: [{destination: {host: a}}]}`, "spec.http[0].match[0].uri: regex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			route := tt.route
			if !strings.HasPrefix(route, "{") {
				route = "{" + route + "}"
			}
			_, err := loadRouter(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: ns}
spec: {hosts: ["*"], gateways: [gw], http: [`+route+`]}
`, map[string]string{"a": "127.0.0.1:1"})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "VirtualService ns/vs") {
				t.Fatalf("newRouter: got %v, want an error naming VirtualService ns/vs and containing %q", err, tt.want)
			}
		})
	}
}
