package authz

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// stringMatch is Istio's StringMatcher (pilot/pkg/security/authz/matcher/string.go):
// "*" is any non-empty value (regex ".+"), "*x" a suffix, "x*" a prefix,
// anything else exact. Case-sensitive unless fold is set.
type stringMatch struct {
	kind  byte // 'a'ny, 's'uffix, 'p'refix, 'e'xact
	value string
	fold  bool
}

func newStringMatch(v string, fold bool) stringMatch {
	switch {
	case v == "*":
		return stringMatch{kind: 'a'}
	case strings.HasPrefix(v, "*"):
		return stringMatch{kind: 's', value: v[1:], fold: fold}
	case strings.HasSuffix(v, "*"):
		return stringMatch{kind: 'p', value: v[:len(v)-1], fold: fold}
	default:
		return stringMatch{kind: 'e', value: v, fold: fold}
	}
}

func (m stringMatch) match(s string) bool {
	switch m.kind {
	case 'a':
		return s != ""
	case 's':
		if m.fold {
			return len(s) >= len(m.value) && strings.EqualFold(s[len(s)-len(m.value):], m.value)
		}
		return strings.HasSuffix(s, m.value)
	case 'p':
		if m.fold {
			return len(s) >= len(m.value) && strings.EqualFold(s[:len(m.value)], m.value)
		}
		return strings.HasPrefix(s, m.value)
	default:
		if m.fold {
			return strings.EqualFold(s, m.value)
		}
		return s == m.value
	}
}

// headerMatch is Istio's HeaderMatcher/HostMatcher: like stringMatch, except
// that "*" is a presence match.
func headerMatch(v string, fold bool) func(value string, present bool) bool {
	if v == "*" {
		return func(_ string, present bool) bool { return present }
	}
	m := newStringMatch(v, fold)
	return func(value string, present bool) bool { return present && m.match(value) }
}

// hostMatcher matches :authority case-insensitively (HostMatcher), as sent,
// port included if the client sent one.
func hostMatcher(v string) (predicate, error) {
	m := headerMatch(v, true)
	return func(r *Request) bool { return m(r.Host, r.Host != "") }, nil
}

// methodMatcher matches :method, case-sensitively (HeaderMatcher).
func methodMatcher(v string) (predicate, error) {
	m := headerMatch(v, false)
	return func(r *Request) bool { return m(r.Method, r.Method != "") }, nil
}

// portMatcher is destination_port (model/util.go convertToPort).
func portMatcher(v string) (predicate, error) {
	p, err := strconv.ParseUint(v, 10, 32)
	if err != nil || p > 65535 {
		return nil, fmt.Errorf("invalid port %q", v)
	}
	return func(r *Request) bool { return r.Port != 0 && uint64(r.Port) == p }, nil
}

// pathMatcher is the url_path matcher of pathGenerator: a path template
// when the value has {*} or {**}, Istio's string matching otherwise.
func pathMatcher(v string) (predicate, error) {
	if strings.Contains(v, "{*}") || strings.Contains(v, "{**}") {
		re, err := compilePathTemplate(v)
		if err != nil {
			return nil, err
		}
		return func(r *Request) bool { return re.MatchString(r.Path) }, nil
	}
	m := newStringMatch(v, false)
	return func(r *Request) bool { return m.match(r.Path) }, nil
}

// pchar is Envoy's kLiteral (uri_template_internal.cc): the characters of a
// path segment a template literal may use (RFC 3986 pchar without * and =).
const pchar = `a-zA-Z0-9\-._~%!$&'()+,;:@`

var literalPattern = regexp.MustCompile(`^[` + pchar + `]+$`)

// compilePathTemplate validates a path template as Istio does
// (pkg/config/security CheckValidPathTemplate) and turns it into the regex
// Envoy's uri_template matcher uses: {*} is one segment of pchar, {**} any
// run of pchar and "/", and must be the last operator.
func compilePathTemplate(v string) (*regexp.Regexp, error) {
	if !strings.HasPrefix(v, "/") {
		return nil, fmt.Errorf("invalid path template %q: must start with /", v)
	}
	segs := strings.Split(v[1:], "/")
	var b strings.Builder
	b.WriteString("^")
	seenAny := false
	for i, s := range segs {
		b.WriteString("/")
		switch {
		case s == "{*}" || s == "{**}":
			if seenAny {
				return nil, fmt.Errorf("invalid path template %q: {**} is not the last operator", v)
			}
			if s == "{**}" {
				seenAny = true
				b.WriteString(`[` + pchar + `/]*`)
			} else {
				b.WriteString(`[` + pchar + `]+`)
			}
		case s == "" && i == len(segs)-1:
			// A trailing "/": Envoy keeps it as an empty last segment.
		case strings.ContainsAny(s, "{}"):
			return nil, fmt.Errorf("invalid path template %q: %q has { or } beyond a supported template operator", v, s)
		case !literalPattern.MatchString(s):
			return nil, fmt.Errorf("invalid path template %q: segment %q is not a valid literal", v, s)
		default:
			b.WriteString(regexp.QuoteMeta(s))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// principalMatcher is srcPrincipalGenerator: the peer's URI SAN, with
// "spiffe://" implied, inside an authenticated matcher (no certificate, no
// match).
func principalMatcher(v string) (predicate, error) {
	m := newStringMatch(v, false)
	return func(r *Request) bool { return r.Principal != "" && m.match(r.Principal) }, nil
}

// spiffeRegexMatcher matches the peer's full URI SAN against an Envoy
// safe_regex (full match), as the namespace, service account and trust
// domain generators do.
func spiffeRegexMatcher(pattern string) (predicate, error) {
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	if err != nil {
		return nil, err
	}
	return func(r *Request) bool { return r.Principal != "" && re.MatchString("spiffe://"+r.Principal) }, nil
}

// namespaceMatcher is srcNamespaceGenerator: ".*/ns/<ns>/.*", * as ".*".
func namespaceMatcher(v string) (predicate, error) {
	parts := strings.Split(v, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return spiffeRegexMatcher(".*/ns/" + strings.Join(parts, ".*") + "/.*")
}

// serviceAccountMatcher is srcServiceAccountGenerator: "sa" or "ns/sa", the
// policy's namespace by default.
func serviceAccountMatcher(policyNamespace, v string) (predicate, error) {
	ns, sa, ok := strings.Cut(v, "/")
	if !ok {
		ns, sa = policyNamespace, v
	}
	if ns == "" || sa == "" || strings.Contains(sa, "/") {
		return nil, fmt.Errorf("expected 'serviceAccount' or 'namespace/serviceAccount', found %q", v)
	}
	return spiffeRegexMatcher(fmt.Sprintf("spiffe://.+/ns/%s/(.+/|)sa/%s(/.+)?", regexp.QuoteMeta(ns), regexp.QuoteMeta(sa)))
}

// trustDomainMatcher is srcTrustDomainGenerator.
func trustDomainMatcher(v string) (predicate, error) {
	switch {
	case v == "*":
		return func(r *Request) bool { return r.Principal != "" }, nil
	case !strings.Contains(v, "*"):
		prefix := v + "/"
		return func(r *Request) bool { return r.Principal != "" && strings.HasPrefix(r.Principal, prefix) }, nil
	}
	parts := strings.SplitN(v, "*", 2)
	if strings.Contains(parts[1], "*") {
		return nil, fmt.Errorf("trust domain %q may contain one * only", v)
	}
	return spiffeRegexMatcher("spiffe://" + regexp.QuoteMeta(parts[0]) + "[^/]*" + regexp.QuoteMeta(parts[1]) + "/.*")
}

// ipBlockMatcher is srcIPGenerator: an address or CIDR against the direct
// peer's address.
func ipBlockMatcher(v string) (predicate, error) {
	var prefix netip.Prefix
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("invalid IP block %q: %w", v, err)
		}
		prefix = p.Masked()
	} else {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("invalid IP address %q: %w", v, err)
		}
		prefix = netip.PrefixFrom(a, a.BitLen())
	}
	return func(r *Request) bool {
		return r.SourceIP.IsValid() && prefix.Contains(r.SourceIP.Unmap())
	}, nil
}

// requestPrincipalMatcher is requestPrincipalGenerator: the value is split
// at its last "/" into issuer and subject, each matched against the token's
// iss and sub claims, "*" parts meaning any non-empty value.
func requestPrincipalMatcher(v string) (predicate, error) {
	idx := strings.LastIndex(v, "/")
	found := idx >= 0
	iss, sub := v, ""
	if found {
		iss, sub = v[:idx], v[idx+1:]
	}
	anyValue := stringMatch{kind: 'a'}
	exact := func(s string) stringMatch { return stringMatch{kind: 'e', value: s} }
	var mi, ms stringMatch
	switch {
	case v == "*":
		mi, ms = anyValue, anyValue
	case strings.HasPrefix(v, "*"):
		if found {
			if iss == "*" {
				mi = anyValue
			} else {
				mi = stringMatch{kind: 's', value: strings.TrimPrefix(iss, "*")}
			}
			ms = exact(sub)
		} else {
			mi, ms = anyValue, stringMatch{kind: 's', value: v[1:]}
		}
	case strings.HasSuffix(v, "*"):
		if found {
			mi = exact(iss)
			if sub == "*" {
				ms = anyValue
			} else {
				ms = stringMatch{kind: 'p', value: strings.TrimSuffix(sub, "*")}
			}
		} else {
			mi, ms = stringMatch{kind: 'p', value: v[:len(v)-1]}, anyValue
		}
	default:
		mi, ms = exact(iss), exact(sub)
	}
	return func(r *Request) bool {
		gotIss, gotSub, ok := issuerAndSubject(r)
		return ok && mi.match(gotIss) && ms.match(gotSub)
	}, nil
}

// issuerAndSubject reads iss and sub as Envoy's metadata matchers do: each
// must be present as a string (an absent claim matches nothing, not even "").
func issuerAndSubject(r *Request) (iss, sub string, ok bool) {
	if r.Claims != nil {
		iss, ok1 := r.Claims["iss"].(string)
		sub, ok2 := r.Claims["sub"].(string)
		return iss, sub, ok1 && ok2
	}
	if r.RequestPrincipal == "" {
		return "", "", false
	}
	i := strings.LastIndex(r.RequestPrincipal, "/")
	if i < 0 {
		return "", "", false
	}
	return r.RequestPrincipal[:i], r.RequestPrincipal[i+1:], true
}
