package authn

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Where tokens are looked for, merged across rules as Envoy's extractor does
// (envoyproxy/envoy source/extensions/filters/http/jwt_authn/extractor.cc):
// one location per header+prefix, query parameter or cookie, each knowing
// which issuers named it, so a token found there is only accepted from one of
// those issuers ("Jwt issuer is not configured" otherwise).

type locationKind int

const (
	inHeader locationKind = iota
	inParam
	inCookie
)

type location struct {
	kind    locationKind
	name    string // header names canonical; params and cookies as written
	prefix  string // headers only, e.g. "Bearer "
	issuers map[string]bool
}

// Envoy's defaults when a rule names no location (extractor.cc
// JwtConstValueStruct).
const (
	defaultHeader = "Authorization"
	defaultPrefix = "Bearer "
	defaultParam  = "access_token"
)

type extractor struct {
	headers map[string]*location // key: lowercased name + prefix
	params  map[string]*location
	cookies map[string]*location
}

func newExtractor() *extractor {
	return &extractor{headers: map[string]*location{}, params: map[string]*location{}, cookies: map[string]*location{}}
}

func (e *extractor) addRule(rule *securityv1beta1.JWTRule) {
	iss := rule.GetIssuer()
	for _, h := range rule.GetFromHeaders() {
		e.addHeader(iss, h.GetName(), h.GetPrefix())
	}
	for _, p := range rule.GetFromParams() {
		add(e.params, p, &location{kind: inParam, name: p}, iss)
	}
	for _, c := range rule.GetFromCookies() {
		add(e.cookies, c, &location{kind: inCookie, name: c}, iss)
	}
	if len(rule.GetFromHeaders()) == 0 && len(rule.GetFromParams()) == 0 && len(rule.GetFromCookies()) == 0 {
		e.addHeader(iss, defaultHeader, defaultPrefix)
		add(e.params, defaultParam, &location{kind: inParam, name: defaultParam}, iss)
	}
}

func (e *extractor) addHeader(iss, name, prefix string) {
	add(e.headers, strings.ToLower(name)+prefix,
		&location{kind: inHeader, name: http.CanonicalHeaderKey(name), prefix: prefix}, iss)
}

func add(m map[string]*location, key string, fresh *location, issuer string) {
	l, ok := m[key]
	if !ok {
		l = fresh
		l.issuers = map[string]bool{}
		m[key] = l
	}
	l.issuers[issuer] = true
}

// sorted returns the locations in Envoy's extraction order: headers, then
// query parameters, then cookies, each ordered by key (std::map order).
func (e *extractor) sorted() []*location {
	var out []*location
	for _, m := range []map[string]*location{e.headers, e.params, e.cookies} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = append(out, m[k])
		}
	}
	return out
}

// found is one token and where it was found.
type found struct {
	token string
	loc   *location
}

// joinedHeaders are the request headers Envoy keeps "inline" that a token
// location may name. Envoy's header map appends a repeated inline header to
// the first one, joined with "," (envoyproxy/envoy
// source/common/http/header_map_impl.cc HeaderMapImpl::insertByKey,
// appendToHeader), before any filter runs, in the HTTP/1 and HTTP/2 codecs
// alike. Authorization is inline in Istio's proxy: filters linked into it
// register it (RegisterCustomInlineHeader in the oauth2 and cache filters).
// Every other header keeps one entry per value, which extractor.cc reads one
// by one.
var joinedHeaders = map[string]bool{"Authorization": true}

// headerValues is what extractor.cc sees of header name: the values as
// Envoy's header map holds them.
func headerValues(h http.Header, name string) []string {
	vs := h.Values(name)
	if len(vs) > 1 && joinedHeaders[name] {
		return []string{strings.Join(vs, ",")}
	}
	return vs
}

// extract finds every token of the request, as extractor.cc does: each value
// of a header that contains the prefix (anywhere, as Envoy's find() does),
// after Envoy's header map joined repeated inline headers into one value; the
// first value of each query parameter, the first cookie of each name. So two
// Authorization headers are one value "Bearer A,Bearer B", whose token is
// "A,Bearer B" (malformed), and "Basic x" + "Bearer B" is the token B.
func extract(locations []*location, r *http.Request) []found {
	var out []found
	var query url.Values
	var cookies []*http.Cookie
	for _, l := range locations {
		switch l.kind {
		case inHeader:
			for _, v := range headerValues(r.Header, l.name) {
				if l.prefix != "" {
					pos := strings.Index(v, l.prefix)
					if pos < 0 {
						continue
					}
					v = tokenAfter(v, pos+len(l.prefix))
				}
				out = append(out, found{token: v, loc: l})
			}
		case inParam:
			if query == nil {
				if r.URL == nil {
					continue
				}
				// ParseQuery keeps the pairs it could parse even when it
				// reports an error for others, as Envoy's parser does.
				query, _ = url.ParseQuery(r.URL.RawQuery)
			}
			if vs, ok := query[l.name]; ok && len(vs) > 0 {
				out = append(out, found{token: vs[0], loc: l})
			}
		case inCookie:
			if cookies == nil {
				cookies = r.Cookies()
			}
			for _, c := range cookies {
				if c.Name == l.name {
					out = append(out, found{token: c.Value, loc: l})
					break
				}
			}
		}
	}
	return out
}

// base64URLAndDot are the characters a compact JWT is made of (RFC 4648 §5
// plus "."), extractor.cc ConstantBase64UrlEncodingCharsPlusDot.
const base64URLAndDot = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."

// tokenAfter is extractor.cc's extractJWT: skip to the first JWT character at
// or after offset, and take the rest; the whole value if there is none.
func tokenAfter(v string, offset int) string {
	i := strings.IndexAny(v[offset:], base64URLAndDot)
	if i < 0 {
		return v
	}
	return v[offset+i:]
}

// removeQueryParams drops every occurrence of names from a raw query, keeping
// the other pairs byte for byte (Envoy's JwtParamLocation::removeJwt).
func removeQueryParams(rawQuery string, names []string) string {
	if rawQuery == "" {
		return rawQuery
	}
	pairs := strings.Split(rawQuery, "&")
	kept := pairs[:0]
	for _, p := range pairs {
		k, _, _ := strings.Cut(p, "=")
		if dk, err := url.QueryUnescape(k); err == nil && slices.Contains(names, dk) {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, "&")
}

// isCORSPreflight is filter.cc's isCorsPreflightRequest: istiod sets
// BypassCorsPreflight, so these requests skip JWT checks entirely.
func isCORSPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}
