// Package authn is the local gateway's JWT authentication: it enforces the
// jwtRules of Istio RequestAuthentication resources the way the Envoy
// jwt_authn filter configured by istiod does, so that a token the local
// gateway accepts or refuses gets the same answer from a real Istio gateway.
//
// What istiod builds, and what this package therefore does
// (istio/istio pilot/pkg/security/authn/policy_applier.go, convertToEnvoyJwtConfig):
//
//   - one Envoy JwtProvider per rule, required as "provider OR allow_missing":
//     a request without a token passes (the AuthorizationPolicy is what
//     demands one), a request with a bad token gets 401;
//   - token locations from fromHeaders/fromParams/fromCookies, or Envoy's
//     defaults (Authorization: Bearer, ?access_token=) when none is given;
//     repeated Authorization headers are one value joined by ",", as Envoy's
//     header map holds them (extract.go);
//   - forwardOriginalToken, outputPayloadToHeader, outputClaimToHeaders,
//     spaceDelimitedClaims (plus "scope" and "permission", always);
//   - CORS preflight requests bypass JWT checks (BypassCorsPreflight: true).
//
// Failures carry Envoy's status strings (envoyproxy/envoy source/common/jwt/status.cc),
// its 401 (403 for a disallowed audience) and its www-authenticate header
// (source/extensions/filters/http/jwt_authn/filter.cc). As in Envoy, nbf and
// exp are checked with 60 s of clock skew and iat is not checked at all (the
// backend's Firebase SDK checks it).
//
// Keys: a jwksUri is fetched on first use and refreshed after 5 minutes (the
// RemoteJwks cache_duration istiod sets); a failed fetch keeps the last keys;
// while no keys were ever fetched every token fails verification, as with
// istiod's fail-closed JWKS (pilot/pkg/model/jwks_resolver.go).
//
// Deliberate differences, each stricter than Envoy and documented where it
// happens: only RS*, PS* and ES* can verify (HMAC and EdDSA keys are not
// loaded); a token with a "crit" header is refused; when a request carries
// several tokens every one of them must verify (Envoy's allow_missing path
// can let a bad token ride along with a good one); the JWKS is also refetched
// when a token names an unknown kid (at most every 10 s, one fetch shared by
// concurrent requests); client-sent copies of output headers are removed
// from CORS preflight requests too. Verified tokens are cached (Istio runs
// Envoy without a jwt_cache): the cache changes the cost of a repeated token,
// never its outcome. Like Envoy, a token in a cookie is forwarded even when
// forwardOriginalToken is false.
//
// The package does no I/O except fetching JWKS documents with the caller's
// HTTP client.
package authn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/tokencache"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Options are the dependencies and limits of an Authenticator.
type Options struct {
	// HTTPClient fetches JWKS documents. Its timeout is not relied on: every
	// fetch also has the rule's timeout (Istio's default 5 s).
	HTTPClient *http.Client
	// JWKSOverride maps a jwksUri as written in the policy to the URL that is
	// actually fetched: the one deliberate local difference (the emulator
	// instead of Google). The caller prints it at start-up.
	JWKSOverride map[string]string
	// Now is the clock for exp/nbf checks, the token cache and JWKS refresh.
	Now func() time.Time
	// Logger receives JWKS fetch outcomes; never tokens.
	Logger *slog.Logger
	// CacheSize bounds the verified-token cache (entries). Zero means
	// DefaultCacheSize; a negative value disables the cache.
	CacheSize int
}

// DefaultCacheSize matches Envoy's default jwt_cache_config.jwt_cache_size.
const DefaultCacheSize = 100

// Envoy's defaults, kept as named constants so tests can cite them.
const (
	// ClockSkew is jwt_verify_lib's kClockSkewInSecond, applied to nbf and exp.
	ClockSkew = 60 * time.Second
	// jwksCacheDuration is the RemoteJwks cache_duration istiod sets (5 min).
	jwksCacheDuration = 5 * time.Minute
	// defaultFetchTimeout is JWTRule.timeout's default.
	defaultFetchTimeout = 5 * time.Second
	// minRefetchInterval limits refetches triggered by unknown kids, so a
	// flood of tokens with made-up kids cannot hammer the JWKS endpoint.
	//
	// Neither Envoy nor istiod refetches for an unknown kid at all (istiod
	// refreshes the keys it inlines every 20 minutes, PILOT_JWT_PUB_KEY_
	// REFRESH_INTERVAL; Envoy's remote JWKS is kept for its cache_duration),
	// so a key rotation works on Istio only because the issuer publishes a
	// key before it signs with it: Google must (its Admin SDKs keep the keys
	// for hours and never refetch for a kid), and so does the emulator
	// (local/identity keys.go). This refetch is a local leniency for keys
	// that were not published ahead, and a shorter floor would only make
	// the gateway kinder than Istio to an issuer that skips that step.
	minRefetchInterval = 10 * time.Second
	// maxJWKSBytes bounds a JWKS response body.
	maxJWKSBytes = 1 << 20
	// maxRealmPathLength is filter.cc's MaximumUriLength.
	maxRealmPathLength = 256
)

// Authenticator verifies the JWTs of requests against a set of jwtRules.
// It is safe for concurrent use.
type Authenticator struct {
	providers []*provider
	locations []*location // Envoy's extraction order: headers, params, cookies
	// sanitize lists every configured output header: client-sent copies are
	// removed before the gateway sets its own.
	sanitize []string
	now      func() time.Time
	log      *slog.Logger
	cache    *tokencache.Cache[*verified]
}

// provider is one jwtRule, as Envoy's JwtProvider.
type provider struct {
	index          int
	issuer         string
	audiences      []string // normalized as jwt_verify_lib's CheckAudience does
	forward        bool
	payloadHeader  string
	claimHeaders   []claimHeader
	spaceDelimited []string
	keys           *keySource
}

type claimHeader struct{ header, claim string }

// Result is the outcome of a request that passed authentication.
type Result struct {
	// RequestPrincipal is "iss/sub" of the verified token, "" when the
	// request carried none.
	RequestPrincipal string
	// Claims is the verified payload as Istio's authorization sees it (Envoy
	// dynamic metadata): space-delimited claims such as "scope" are lists.
	// Nil when the request carried no token. Numbers are json.Number.
	Claims map[string]any

	sanitize      []string
	setHeaders    [][2]string
	removeHeaders []string
	removeParams  []string
}

// Apply makes the header changes Envoy's jwt_authn filter makes to the
// upstream request: client-sent copies of every configured output header are
// removed, outputPayloadToHeader and outputClaimToHeaders are set, and the
// token is removed (its header, or its query parameter) unless the rule
// forwards it. Envoy leaves tokens in cookies in place, and so does Apply.
func (r *Result) Apply(out *http.Request) {
	r.ApplyHeader(out.Header)
	if len(r.removeParams) > 0 && out.URL != nil {
		out.URL.RawQuery = removeQueryParams(out.URL.RawQuery, r.removeParams)
	}
}

// ApplyHeader makes Apply's header changes to h alone. In Envoy the filters
// after jwt_authn (RBAC among them) see the headers as changed, so a policy
// condition on request.headers[...] must be evaluated on a copy with these
// changes applied, never on what the client sent.
func (r *Result) ApplyHeader(h http.Header) {
	for _, name := range r.sanitize {
		h.Del(name)
	}
	for _, name := range r.removeHeaders {
		h.Del(name)
	}
	for _, kv := range r.setHeaders {
		h.Add(kv[0], kv[1])
	}
}

// Failure is a refusal with Envoy's answer.
type Failure struct {
	// Status is 401, or 403 when the token's audience is not allowed
	// (filter.cc: JwtAudienceNotAllowed maps to Forbidden).
	Status int
	// Body is the jwt_verify_lib status string, e.g. "Jwt is expired".
	Body string
	// WWWAuthenticate is `Bearer realm="<scheme>://<host><path>", error="invalid_token"`.
	WWWAuthenticate string
	// Reason is Envoy's response code details, e.g.
	// "jwt_authn_access_denied{Jwt_is_expired}", for the access log. It never
	// contains the token.
	Reason string
}

func (f *Failure) Error() string { return f.Reason }

// headerNamePattern is the API's validation pattern for output header names
// (ClaimToHeader.header: ^[-_A-Za-z0-9]+$).
var headerNamePattern = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)

// New validates rules once and returns an Authenticator for them. It rejects
// what it cannot honour, naming the field.
func New(rules []*securityv1beta1.JWTRule, opts Options) (*Authenticator, error) {
	if opts.HTTPClient == nil {
		return nil, errors.New("authn: Options.HTTPClient is required")
	}
	if opts.Now == nil {
		return nil, errors.New("authn: Options.Now is required")
	}
	if opts.Logger == nil {
		return nil, errors.New("authn: Options.Logger is required")
	}
	for from, to := range opts.JWKSOverride {
		if _, err := parseHTTPURL(to); err != nil {
			return nil, fmt.Errorf("authn: Options.JWKSOverride[%q]: %w", from, err)
		}
	}
	a := &Authenticator{now: opts.Now, log: opts.Logger}
	switch {
	case opts.CacheSize == 0:
		a.cache = tokencache.New[*verified](DefaultCacheSize)
	case opts.CacheSize > 0:
		a.cache = tokencache.New[*verified](opts.CacheSize)
	}

	ex := newExtractor()
	for i, rule := range rules {
		p, err := newProvider(i, rule, opts)
		if err != nil {
			return nil, fmt.Errorf("authn: jwtRules[%d]: %w", i, err)
		}
		a.providers = append(a.providers, p)
		ex.addRule(rule)
		if p.payloadHeader != "" {
			a.sanitize = append(a.sanitize, p.payloadHeader)
		}
		for _, ch := range p.claimHeaders {
			a.sanitize = append(a.sanitize, ch.header)
		}
	}
	a.locations = ex.sorted()
	a.sanitize = dedupeFold(a.sanitize)
	return a, nil
}

func newProvider(i int, rule *securityv1beta1.JWTRule, opts Options) (*provider, error) {
	if rule == nil {
		return nil, errors.New("is empty")
	}
	if rule.GetIssuer() == "" {
		return nil, errors.New("issuer is required")
	}
	p := &provider{
		index:         i,
		issuer:        rule.GetIssuer(),
		forward:       rule.GetForwardOriginalToken(),
		payloadHeader: rule.GetOutputPayloadToHeader(),
	}
	for j, aud := range rule.GetAudiences() {
		if aud == "" {
			return nil, fmt.Errorf("audiences[%d] is empty", j)
		}
		p.audiences = append(p.audiences, normalizeAudience(aud))
	}
	if p.payloadHeader != "" && !headerNamePattern.MatchString(p.payloadHeader) {
		return nil, fmt.Errorf("outputPayloadToHeader %q is not a valid header name", p.payloadHeader)
	}
	seen := map[string]bool{}
	for j, ch := range rule.GetOutputClaimToHeaders() {
		switch h := strings.ToLower(ch.GetHeader()); {
		case !headerNamePattern.MatchString(ch.GetHeader()):
			return nil, fmt.Errorf("outputClaimToHeaders[%d].header %q is not a valid header name", j, ch.GetHeader())
		case seen[h]:
			return nil, fmt.Errorf("outputClaimToHeaders[%d].header %q is repeated", j, ch.GetHeader())
		case ch.GetClaim() == "":
			return nil, fmt.Errorf("outputClaimToHeaders[%d].claim is required", j)
		default:
			seen[h] = true
		}
		p.claimHeaders = append(p.claimHeaders, claimHeader{header: ch.GetHeader(), claim: ch.GetClaim()})
	}
	for j, h := range rule.GetFromHeaders() {
		if h.GetName() == "" {
			return nil, fmt.Errorf("fromHeaders[%d].name is required", j)
		}
		if strings.HasPrefix(h.GetName(), ":") || !validHeaderName(h.GetName()) {
			return nil, fmt.Errorf("fromHeaders[%d].name %q is not a valid header name", j, h.GetName())
		}
	}
	for j, q := range rule.GetFromParams() {
		if q == "" {
			return nil, fmt.Errorf("fromParams[%d] is empty", j)
		}
	}
	for j, c := range rule.GetFromCookies() {
		if c == "" {
			return nil, fmt.Errorf("fromCookies[%d] is empty", j)
		}
	}
	for j, c := range rule.GetSpaceDelimitedClaims() {
		if c == "" {
			return nil, fmt.Errorf("spaceDelimitedClaims[%d] is empty", j)
		}
	}
	// Istio always treats these two as space-delimited
	// (policy_applier.go buildSpaceDelimitedClaims).
	p.spaceDelimited = dedupe(append([]string{"scope", "permission"}, rule.GetSpaceDelimitedClaims()...))

	timeout := defaultFetchTimeout
	if rule.GetTimeout() != nil {
		if err := rule.GetTimeout().CheckValid(); err != nil {
			return nil, fmt.Errorf("timeout: %w", err)
		}
		if timeout = rule.GetTimeout().AsDuration(); timeout <= 0 {
			return nil, errors.New("timeout must be positive")
		}
	}
	switch {
	case rule.GetJwksUri() != "" && rule.GetJwks() != "":
		return nil, errors.New("only one of jwks or jwksUri can be set")
	case rule.GetJwks() != "":
		set, err := parseJWKS([]byte(rule.GetJwks()))
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		p.keys = staticKeySource(set)
	case rule.GetJwksUri() != "":
		if _, err := parseHTTPURL(rule.GetJwksUri()); err != nil {
			return nil, fmt.Errorf("jwksUri: %w", err)
		}
		fetchURL := rule.GetJwksUri()
		if o, ok := opts.JWKSOverride[fetchURL]; ok {
			fetchURL = o
		}
		p.keys = remoteKeySource(rule.GetJwksUri(), fetchURL, timeout, opts.HTTPClient, opts.Now, opts.Logger)
	default:
		// Istio would discover the JWKS through the issuer's OpenID
		// configuration; locally the policy must say where the keys are.
		return nil, errors.New("jwksUri or jwks is required (OpenID discovery from the issuer is not supported locally)")
	}
	return p, nil
}

func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q must be an absolute http:// or https:// URL", s)
	}
	return u, nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 field-name).
func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func dedupeFold(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, v) }) {
			out = append(out, v)
		}
	}
	return out
}
