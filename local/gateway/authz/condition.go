package authz

import (
	"fmt"
	"net/http"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Condition keys (https://istio.io/latest/docs/reference/config/security/conditions/).
const (
	keyRequestHeaders   = "request.headers"
	keyRequestClaims    = "request.auth.claims"
	keyRequestPrincipal = "request.auth.principal"
	keyAudiences        = "request.auth.audiences"
	keyPresenter        = "request.auth.presenter"
	keySourcePrincipal  = "source.principal"
	keySourceNamespace  = "source.namespace"
	keySourceSA         = "source.serviceAccount"
	keySourceTD         = "source.trustDomain"
	keySourceIP         = "source.ip"
	keyDestPort         = "destination.port"
)

// compileCondition compiles one when entry, as model.go New dispatches on the
// key. Keys whose facts the local gateway does not have are refused.
func compileCondition(namespace string, action securityv1beta1.AuthorizationPolicy_Action, c *securityv1beta1.Condition) (predicate, error) {
	k := c.GetKey()
	if len(c.GetValues()) == 0 && len(c.GetNotValues()) == 0 {
		return nil, fmt.Errorf("key %q: at least one of values or notValues must be set", k)
	}
	if action == securityv1beta1.AuthorizationPolicy_CUSTOM &&
		(strings.HasPrefix(k, "source.") && k != keySourceIP || strings.HasPrefix(k, "request.auth.")) {
		return nil, fmt.Errorf("key %q is not supported with CUSTOM action", k)
	}
	wrap := func(p predicate, err error) (predicate, error) {
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		return p, nil
	}
	perValue := func(compile func(string) (predicate, error)) (predicate, error) {
		return wrap(valuesAndNot("values", "notValues", c.GetValues(), c.GetNotValues(), compile))
	}
	switch {
	case k == keyRequestPrincipal:
		return perValue(requestPrincipalMatcher)
	case k == keySourcePrincipal:
		return perValue(principalMatcher)
	case k == keySourceNamespace:
		return perValue(namespaceMatcher)
	case k == keySourceSA:
		return perValue(func(v string) (predicate, error) { return serviceAccountMatcher(namespace, v) })
	case k == keySourceTD:
		return perValue(trustDomainMatcher)
	case k == keySourceIP:
		return perValue(ipBlockMatcher)
	case k == keyDestPort:
		return perValue(portMatcher)
	case k == keyAudiences:
		return perValue(func(v string) (predicate, error) { return claimMatcher([]string{"aud"}, v), nil })
	case k == keyPresenter:
		return perValue(func(v string) (predicate, error) { return claimMatcher([]string{"azp"}, v), nil })
	case strings.HasPrefix(k, keyRequestClaims):
		path, err := nestedBracketNames(strings.TrimPrefix(k, keyRequestClaims))
		if err != nil {
			return wrap(nil, err)
		}
		return perValue(func(v string) (predicate, error) { return claimMatcher(path, v), nil })
	case strings.HasPrefix(k, keyRequestHeaders):
		name, err := bracketName(strings.TrimPrefix(k, keyRequestHeaders))
		if err != nil {
			return wrap(nil, err)
		}
		return perValue(func(v string) (predicate, error) { return requestHeaderMatcher(name, v) })
	case k == "remote.ip", k == "destination.ip", k == "connection.sni", strings.HasPrefix(k, "experimental.envoy.filters."):
		return nil, fmt.Errorf("key %q is not supported by the local gateway", k)
	default:
		return nil, fmt.Errorf("unknown attribute %q", k)
	}
}

// requestHeaderMatcher is requestHeaderGenerator: Envoy's HeaderMatcher, on
// all values of the header joined with "," (HeaderUtility).
func requestHeaderMatcher(name, v string) (predicate, error) {
	m := headerMatch(v, false)
	switch strings.ToLower(name) {
	case ":authority", "host":
		return func(r *Request) bool { return m(r.Host, r.Host != "") }, nil
	case ":method":
		return func(r *Request) bool { return m(r.Method, r.Method != "") }, nil
	}
	if strings.HasPrefix(name, ":") {
		return nil, fmt.Errorf("pseudo-header %q is not supported by the local gateway", name)
	}
	canonical := http.CanonicalHeaderKey(name)
	return func(r *Request) bool {
		vs, ok := r.Headers[canonical]
		if !ok {
			// A header map built by hand may not be canonical.
			for k, v := range r.Headers {
				if strings.EqualFold(k, name) {
					vs, ok = v, true
					break
				}
			}
		}
		if !ok || len(vs) == 0 {
			return m("", false)
		}
		if len(vs) == 1 {
			return m(vs[0], true)
		}
		return m(strings.Join(vs, ","), true)
	}, nil
}

// claimMatcher is MetadataListValueMatcherForJWTClaims with useExtendedJwt:
// the claim at path matches if it is a string that matches, or a list with a
// string element that matches. Numbers, booleans and objects never match.
func claimMatcher(path []string, v string) predicate {
	m := newStringMatch(v, false)
	return func(r *Request) bool {
		var cur any = r.Claims
		for _, k := range path {
			obj, ok := cur.(map[string]any)
			if !ok {
				return false
			}
			if cur, ok = obj[k]; !ok {
				return false
			}
		}
		switch t := cur.(type) {
		case string:
			return m.match(t)
		case []any:
			for _, e := range t {
				if s, ok := e.(string); ok && m.match(s) {
					return true
				}
			}
		case []string:
			for _, s := range t {
				if m.match(s) {
					return true
				}
			}
		}
		return false
	}
}

// bracketName is util.go extractNameInBrackets: "[name]".
func bracketName(s string) (string, error) {
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") || len(s) < 3 {
		return "", fmt.Errorf("expecting format [<NAME>], but found %q", s)
	}
	return s[1 : len(s)-1], nil
}

// nestedBracketNames is util.go extractNameInNestedBrackets: "[a][b]" is the
// path a, b; anything else must be a single "[name]".
func nestedBracketNames(s string) ([]string, error) {
	var names []string
	for rest := s; rest != ""; {
		end := strings.IndexByte(rest, ']')
		if rest[0] != '[' || end < 0 || strings.IndexByte(rest[1:end], '[') >= 0 {
			n, err := bracketName(s)
			if err != nil {
				return nil, err
			}
			return []string{n}, nil
		}
		names = append(names, rest[1:end])
		rest = rest[end+1:]
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("expecting format [<NAME>], but found %q", s)
	}
	for _, n := range names {
		if n == "" {
			return nil, fmt.Errorf("empty claim name in %q", s)
		}
	}
	return names, nil
}
