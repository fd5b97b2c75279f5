package gateway

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
)

// router is the routing table Envoy would hold for the gateway: the HTTP
// routes of the selected VirtualServices, in order, first match wins.
// https://istio.io/latest/docs/reference/config/networking/virtual-service/#HTTPRoute
type router struct {
	vhosts []*virtualHost
}

type virtualHost struct {
	hosts  []string // the VirtualService's hosts
	routes []*route
}

type route struct {
	name    string // "namespace/virtualservice/route" for the access log
	matches []*requestMatch
	dests   []*destination
	total   int32 // sum of weights
	rewrite *rewrite
	timeout time.Duration // zero: none, Istio's default
	headers *networking.Headers
}

type destination struct {
	host    string // as written: backend.api.svc.cluster.local:80
	addr    string // the local address it maps to
	weight  int32
	headers *networking.Headers
}

type rewrite struct {
	uri       string
	hasURI    bool
	authority string
	regex     *regexp.Regexp
	regexSub  string
}

// requestMatch is one HTTPMatchRequest: all of its conditions must hold.
type requestMatch struct {
	uri            *stringMatch
	ignoreURICase  bool
	scheme, method *stringMatch
	authority      *stringMatch
	headers        map[string]*stringMatch
	withoutHeaders map[string]*stringMatch
	queryParams    map[string]*stringMatch
	port           uint32
}

// stringMatch is Istio's StringMatch: exact, prefix or RE2 regex (matched
// against the whole value, as Envoy's safe_regex does). Neither set means
// "present".
type stringMatch struct {
	exact, prefix *string
	regex         *regexp.Regexp
}

// facts are the parts of a request the routing table looks at.
type facts struct {
	method, scheme, authority string
	path                      string // normalized, escaped, without query
	query                     url.Values
	header                    http.Header
	port                      uint32
}

// newRouter compiles the VirtualServices. upstreams maps a destination
// ("host:port", or "host" when the route gives no port) to a local address.
// Anything the local gateway does not implement is an error naming the
// field, never silently ignored.
func newRouter(vss []*networkingv1.VirtualService, upstreams map[string]string, origin func(kind, ns, name string) string) (*router, error) {
	rt := &router{}
	for _, vs := range vss {
		where := origin("VirtualService", vs.Namespace, vs.Name)
		if len(vs.Spec.GetTcp()) > 0 || len(vs.Spec.GetTls()) > 0 {
			return nil, fmt.Errorf("%s: spec.tcp/spec.tls routes are not supported by the local gateway", where)
		}
		vh := &virtualHost{}
		for _, h := range vs.Spec.GetHosts() {
			vh.hosts = append(vh.hosts, strings.ToLower(h))
		}
		for i, hr := range vs.Spec.GetHttp() {
			field := fmt.Sprintf("spec.http[%d]", i)
			r, err := compileRoute(hr, upstreams)
			if err != nil {
				return nil, fmt.Errorf("%s: %s%w", where, field, err)
			}
			name := hr.GetName()
			if name == "" {
				name = strconv.Itoa(i)
			}
			r.name = vs.Namespace + "/" + vs.Name + "/" + name
			vh.routes = append(vh.routes, r)
		}
		rt.vhosts = append(rt.vhosts, vh)
	}
	return rt, nil
}

func compileRoute(hr *networking.HTTPRoute, upstreams map[string]string) (*route, error) {
	switch {
	case hr.GetRedirect() != nil:
		return nil, fmt.Errorf(".redirect is not supported by the local gateway")
	case hr.GetDirectResponse() != nil:
		return nil, fmt.Errorf(".directResponse is not supported by the local gateway")
	case hr.GetDelegate() != nil:
		return nil, fmt.Errorf(".delegate is not supported by the local gateway")
	case hr.GetFault() != nil:
		return nil, fmt.Errorf(".fault is not supported by the local gateway")
	case hr.GetMirror() != nil || len(hr.GetMirrors()) > 0:
		return nil, fmt.Errorf(".mirror(s) is not supported by the local gateway")
	case hr.GetCorsPolicy() != nil:
		return nil, fmt.Errorf(".corsPolicy is not supported by the local gateway")
	case hr.GetRetries() != nil:
		return nil, fmt.Errorf(".retries is not supported by the local gateway")
	case len(hr.GetRoute()) == 0:
		return nil, fmt.Errorf(".route: at least one destination is required")
	}
	r := &route{headers: hr.GetHeaders()}
	if err := validHeaderOps(hr.GetHeaders()); err != nil {
		return nil, fmt.Errorf(".headers: %w", err)
	}
	if t := hr.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, fmt.Errorf(".timeout: %w", err)
		}
		r.timeout = t.AsDuration()
	}
	for j, m := range hr.GetMatch() {
		rm, err := compileMatch(m)
		if err != nil {
			return nil, fmt.Errorf(".match[%d]%w", j, err)
		}
		r.matches = append(r.matches, rm)
	}
	for j, d := range hr.GetRoute() {
		dst := d.GetDestination()
		if dst.GetSubset() != "" {
			return nil, fmt.Errorf(".route[%d].destination.subset needs a DestinationRule, which the local gateway does not support", j)
		}
		key := dst.GetHost()
		if p := dst.GetPort().GetNumber(); p != 0 {
			key = net.JoinHostPort(key, strconv.Itoa(int(p)))
		}
		addr, ok := upstreams[key]
		if !ok {
			return nil, fmt.Errorf(".route[%d].destination: no local address for %q (Config.Upstreams)", j, key)
		}
		if err := validHeaderOps(d.GetHeaders()); err != nil {
			return nil, fmt.Errorf(".route[%d].headers: %w", j, err)
		}
		w := d.GetWeight()
		if len(hr.GetRoute()) == 1 && w == 0 {
			w = 100 // a single destination takes all traffic
		}
		r.dests = append(r.dests, &destination{host: key, addr: addr, weight: w, headers: d.GetHeaders()})
		r.total += w
	}
	if r.total <= 0 {
		return nil, fmt.Errorf(".route: the weights add up to zero")
	}
	if rw := hr.GetRewrite(); rw != nil {
		r.rewrite = &rewrite{uri: rw.GetUri(), hasURI: rw.GetUri() != "", authority: rw.GetAuthority()}
		if rr := rw.GetUriRegexRewrite(); rr != nil {
			if r.rewrite.hasURI {
				return nil, fmt.Errorf(".rewrite: uri and uriRegexRewrite are mutually exclusive")
			}
			re, err := regexp.Compile(rr.GetMatch())
			if err != nil {
				return nil, fmt.Errorf(".rewrite.uriRegexRewrite.match: %w", err)
			}
			r.rewrite.regex = re
			// Envoy's substitution writes groups as \1; Go's as ${1}.
			r.rewrite.regexSub = regexp.MustCompile(`\\(\d+)`).ReplaceAllString(rr.GetRewrite(), `$${$1}`)
		}
	}
	return r, nil
}

func validHeaderOps(h *networking.Headers) error {
	for _, ops := range []*networking.Headers_HeaderOperations{h.GetRequest(), h.GetResponse()} {
		for k := range ops.GetSet() {
			if k == "" {
				return fmt.Errorf("empty header name")
			}
		}
		for k := range ops.GetAdd() {
			if k == "" {
				return fmt.Errorf("empty header name")
			}
		}
	}
	return nil
}

func compileMatch(m *networking.HTTPMatchRequest) (*requestMatch, error) {
	switch {
	case len(m.GetSourceLabels()) > 0:
		return nil, fmt.Errorf(".sourceLabels applies to sidecars, not gateways")
	case m.GetSourceNamespace() != "":
		return nil, fmt.Errorf(".sourceNamespace applies to sidecars, not gateways")
	case len(m.GetGateways()) > 0:
		return nil, fmt.Errorf(".gateways is not supported by the local gateway")
	}
	rm := &requestMatch{ignoreURICase: m.GetIgnoreUriCase(), port: m.GetPort()}
	var err error
	compile := func(field string, s *networking.StringMatch) *stringMatch {
		if err != nil || s == nil {
			return nil
		}
		var sm *stringMatch
		sm, err = compileStringMatch(s)
		if err != nil {
			err = fmt.Errorf(".%s: %w", field, err)
		}
		return sm
	}
	rm.uri = compile("uri", m.GetUri())
	rm.scheme = compile("scheme", m.GetScheme())
	rm.method = compile("method", m.GetMethod())
	rm.authority = compile("authority", m.GetAuthority())
	compileMap := func(field string, in map[string]*networking.StringMatch, lower bool) map[string]*stringMatch {
		if len(in) == 0 {
			return nil
		}
		out := map[string]*stringMatch{}
		for k, v := range in {
			sm := compile(fmt.Sprintf("%s[%q]", field, k), v)
			if sm == nil {
				sm = &stringMatch{}
			}
			if lower {
				k = http.CanonicalHeaderKey(k)
			}
			out[k] = sm
		}
		return out
	}
	rm.headers = compileMap("headers", m.GetHeaders(), true)
	rm.withoutHeaders = compileMap("withoutHeaders", m.GetWithoutHeaders(), true)
	rm.queryParams = compileMap("queryParams", m.GetQueryParams(), false)
	if err != nil {
		return nil, err
	}
	for k, q := range rm.queryParams {
		if q.prefix != nil {
			return nil, fmt.Errorf(".queryParams[%q]: prefix is not supported for query parameters (Istio: exact or regex)", k)
		}
	}
	return rm, nil
}

func compileStringMatch(s *networking.StringMatch) (*stringMatch, error) {
	switch v := s.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &stringMatch{exact: &v.Exact}, nil
	case *networking.StringMatch_Prefix:
		return &stringMatch{prefix: &v.Prefix}, nil
	case *networking.StringMatch_Regex:
		re, err := regexp.Compile(`^(?:` + v.Regex + `)$`)
		if err != nil {
			return nil, fmt.Errorf("regex: %w", err)
		}
		return &stringMatch{regex: re}, nil
	}
	return &stringMatch{}, nil
}

func (s *stringMatch) match(v string, fold bool) bool {
	switch {
	case s.exact != nil:
		if fold {
			return strings.EqualFold(v, *s.exact)
		}
		return v == *s.exact
	case s.prefix != nil:
		if fold {
			return len(v) >= len(*s.prefix) && strings.EqualFold(v[:len(*s.prefix)], *s.prefix)
		}
		return strings.HasPrefix(v, *s.prefix)
	case s.regex != nil:
		return s.regex.MatchString(v)
	}
	return true
}

// find returns the first route whose virtual host and match conditions hold,
// or nil: Envoy then answers 404 (response flag NR).
func (rt *router) find(f *facts) *route {
	host := strings.ToLower(hostOnly(f.authority))
	for _, vh := range rt.vhosts {
		if !hostMatches(vh.hosts, host) {
			continue
		}
		for _, r := range vh.routes {
			if r.matchesFacts(f) {
				return r
			}
		}
	}
	return nil
}

func (r *route) matchesFacts(f *facts) bool {
	if len(r.matches) == 0 {
		return true
	}
	for _, m := range r.matches {
		if m.matchesFacts(f) {
			return true
		}
	}
	return false
}

func (m *requestMatch) matchesFacts(f *facts) bool {
	if m.uri != nil && !m.uri.match(f.path, m.ignoreURICase) {
		return false
	}
	if m.scheme != nil && !m.scheme.match(f.scheme, false) ||
		m.method != nil && !m.method.match(f.method, false) ||
		m.authority != nil && !m.authority.match(f.authority, false) {
		return false
	}
	if m.port != 0 && m.port != f.port {
		return false
	}
	for k, sm := range m.headers {
		vs, ok := f.header[k]
		if !ok || !sm.match(strings.Join(vs, ","), false) {
			return false
		}
	}
	for k, sm := range m.withoutHeaders {
		if vs, ok := f.header[k]; ok && sm.match(strings.Join(vs, ","), false) {
			return false
		}
	}
	for k, sm := range m.queryParams {
		vs, ok := f.query[k]
		if !ok || !sm.match(vs[0], false) {
			return false
		}
	}
	return true
}

// pick chooses a destination by weight.
func (r *route) pick() *destination {
	if len(r.dests) == 1 {
		return r.dests[0]
	}
	n := rand.Int32N(r.total)
	for _, d := range r.dests {
		if n < d.weight {
			return d
		}
		n -= d.weight
	}
	return r.dests[len(r.dests)-1]
}

// rewritePath applies rewrite.uri the way Envoy's prefix_rewrite does: a
// route matched on a uri prefix has that prefix replaced; any other route has
// the whole path replaced. uriRegexRewrite replaces every match.
func (r *route) rewritePath(f *facts) string {
	rw := r.rewrite
	switch {
	case rw == nil:
		return f.path
	case rw.regex != nil:
		return rw.regex.ReplaceAllString(f.path, rw.regexSub)
	case !rw.hasURI:
		return f.path
	}
	prefix := ""
	for _, m := range r.matches {
		if m.matchesFacts(f) {
			if m.uri != nil && m.uri.prefix != nil {
				prefix = *m.uri.prefix
			} else {
				prefix = f.path
			}
			break
		}
	}
	if len(r.matches) == 0 {
		prefix = "/" // Istio's catch-all route is prefix "/"
	}
	return rw.uri + f.path[len(prefix):]
}

// hostOnly drops the port from an authority: Istio adds "host:*" domains to
// every virtual host, so the port never decides the match.
func hostOnly(authority string) string {
	if h, _, err := net.SplitHostPort(authority); err == nil {
		return h
	}
	return authority
}

// hostMatches is Istio's host matching: exact, "*", or "*.suffix".
func hostMatches(patterns []string, host string) bool {
	for _, p := range patterns {
		if _, after, ok := strings.Cut(p, "/"); ok {
			p = after // a Gateway's "namespace/host" form
		}
		switch {
		case p == "*" || p == host:
			return true
		case strings.HasPrefix(p, "*.") && strings.HasSuffix(host, p[1:]):
			return true
		}
	}
	return false
}

// applyHeaderOps applies Istio's HeaderOperations in Envoy's order: set, add,
// remove.
func applyHeaderOps(h http.Header, ops *networking.Headers_HeaderOperations) {
	if ops == nil {
		return
	}
	for k, v := range ops.GetSet() {
		h.Set(k, v)
	}
	for k, v := range ops.GetAdd() {
		h.Add(k, v)
	}
	for _, k := range ops.GetRemove() {
		h.Del(k)
	}
}
