package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/internal/tokencache"
	"github.com/acme/cloudrun-istio-gke/local/gateway/authn"
	"github.com/acme/cloudrun-istio-gke/local/gateway/authz"
)

// Names fixed for the project's gateway, the defaults of Config.
const (
	DefaultNamespace = "istio-ingress"
	DefaultPort      = 443
)

// DefaultLabels are the pod labels of the project's internal ingress gateway.
func DefaultLabels() map[string]string { return map[string]string{"istio": "internal-ingressgateway"} }

// Envoy's local replies, the bodies a client of a real Istio gateway sees.
const (
	// RBAC filter denial: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/rbac_filter
	bodyRBACDenied = "RBAC: access denied"
	// Router, upstream connection refused, after Istio's default retries
	// (response flags URX,UF): https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#config-access-log-format-response-flags
	bodyUpstreamRefused = "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: 111"
	bodyUpstreamFailure = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	// Router, route timeout (UT): https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/http/http_routing#timeouts
	bodyUpstreamTimeout = "upstream request timeout"
	// Envoy's own server header on a gateway: Istio sets server_name istio-envoy.
	serverHeader = "istio-envoy"
)

// Config is everything a Gateway needs; New validates it once.
type Config struct {
	// Resources are the rendered istio/ resources (Load).
	Resources *Resources
	// Workload is the gateway deployment stood in for; zero means the
	// project's: namespace istio-ingress, labels istio=internal-ingressgateway.
	Workload Workload
	// Port is the Gateway port this listener serves; zero means 443.
	Port uint32
	// Credentials maps a Gateway's tls.credentialName to a local directory
	// in the Kubernetes TLS secret layout (tls.crt, tls.key, ca.crt).
	Credentials map[string]string
	// Upstreams maps a VirtualService destination ("host:port", or "host"
	// when the route names no port) to a local address ("127.0.0.1:8081").
	Upstreams map[string]string
	// JWKSOverride maps a jwksUri as written in istio/ to the URL actually
	// fetched (the local Identity Platform emulator): the one deliberate
	// local difference, logged at start-up.
	JWKSOverride map[string]string
	// HTTPClient fetches JWKS documents; required.
	HTTPClient *http.Client
	// Transport carries requests to upstreams; nil means a keep-alive
	// transport of the gateway's own.
	Transport http.RoundTripper
	// Logger receives start-up and error lines; AccessLog one JSON line per
	// request, and one per connection refused at the TLS handshake, naming
	// the client certificate refused (nil: Logger). Neither ever sees a
	// token or a key.
	Logger    *slog.Logger
	AccessLog *slog.Logger
	// Now is the clock for tokens and certificates; nil means time.Now.
	Now func() time.Time
	// TokenCacheSize bounds the verified-token cache (authn.Options.CacheSize).
	TokenCacheSize int
	// MeshConfig is the mesh's meshConfig (LoadMeshConfig of
	// deploy/istio/operator.yaml): it names the providers of CUSTOM
	// policies. Required when a selected policy is CUSTOM.
	MeshConfig *meshv1alpha1.MeshConfig
	// ExtAuthz maps a provider's service and port as the mesh config writes
	// them ("apikeys.api.svc.cluster.local:9191") to a local gRPC address.
	ExtAuthz map[string]string
}

// Gateway serves the selected Istio resources for one workload and port.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	access    *slog.Logger
	listener  *listener
	router    *router
	authn     *authn.Authenticator
	authz     *authz.Engine
	transport http.RoundTripper
	proxy     *httputil.ReverseProxy
	extAuthz  map[string]*extAuthz      // by provider name
	xfcc      *tokencache.Cache[string] // XFCC element by client certificate DER
}

func (c *Config) validate() error {
	var errs []error
	if c.Resources == nil {
		errs = append(errs, errors.New("Config.Resources is required (gateway.Load)"))
	}
	if c.HTTPClient == nil {
		errs = append(errs, errors.New("Config.HTTPClient is required (JWKS fetches)"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("Config.Logger is required"))
	}
	for name, dir := range c.Credentials {
		if dir == "" {
			errs = append(errs, fmt.Errorf("Config.Credentials[%q] is empty", name))
		}
	}
	for dst, addr := range c.Upstreams {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("Config.Upstreams[%q] = %q: want host:port: %v", dst, addr, err))
		}
	}
	return errors.Join(errs...)
}

// New selects what applies to the workload, opens the credentials and builds
// the engines. Everything the local gateway cannot honour is an error here,
// naming the file, resource and field, rather than a surprise per request.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.Workload.Namespace == "" {
		cfg.Workload = Workload{Namespace: DefaultNamespace, Labels: DefaultLabels()}
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AccessLog == nil {
		cfg.AccessLog = cfg.Logger
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, access: cfg.AccessLog, xfcc: tokencache.New[string](authn.DefaultCacheSize)}
	sel := cfg.Resources.Select(cfg.Workload)
	if len(sel.Gateways) == 0 {
		return nil, fmt.Errorf("gateway: no Gateway selects workload %s", cfg.Workload)
	}
	var err error
	if g.listener, err = g.newListener(sel); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.router, err = newRouter(sel.VirtualServices, cfg.Upstreams, cfg.Resources.origin); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.authn, err = g.newAuthenticator(sel.RequestAuthentications); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.authz, err = authz.New(sel.AuthorizationPolicies); err != nil {
		return nil, fmt.Errorf("gateway: AuthorizationPolicies %s: %w", names(sel.AuthorizationPolicies), err)
	}
	g.extAuthz = map[string]*extAuthz{}
	for _, name := range g.authz.Providers() {
		x, err := newExtAuthz(cfg.MeshConfig, name, cfg.ExtAuthz)
		if err != nil {
			closeExtAuthz(g.extAuthz)
			return nil, fmt.Errorf("gateway: AuthorizationPolicies %s: %w", names(sel.AuthorizationPolicies), err)
		}
		g.extAuthz[name] = x
		g.log.Info("gateway: CUSTOM provider", "name", name, "service", x.target, "address", cfg.ExtAuthz[x.target],
			"timeout", x.timeout.String(), "failOpen", x.failOpen, "statusOnError", x.statusOnError)
	}
	g.transport = cfg.Transport
	if g.transport == nil {
		g.transport = NewUpstreamTransport()
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: g.rewrite,
		// The backend's access line shares the request's trace and id.
		Transport:      middleware.Transport(g.transport),
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.upstreamError,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		// Zero still streams what must stream: ReverseProxy flushes at once
		// for a response of unknown length or text/event-stream. A response
		// of known length goes out in one write instead of a flush per copy
		// plus one at the end, which costs a TLS record and a syscall each.
		FlushInterval: 0,
		// Without a pool every response allocates a fresh 32 KB buffer.
		BufferPool: &bufferPool{},
	}
	for from, to := range cfg.JWKSOverride {
		g.log.Info("gateway: jwksUri overridden for local use", "jwksUri", from, "fetchedFrom", to)
	}
	return g, nil
}

func names(aps []*securityv1.AuthorizationPolicy) string {
	var n []string
	for _, ap := range aps {
		n = append(n, ap.Namespace+"/"+ap.Name)
	}
	return "[" + strings.Join(n, " ") + "]"
}

func (g *Gateway) newListener(sel Selected) (*listener, error) {
	l := &listener{port: g.cfg.Port}
	dirs := map[string]*tlsdir.Dir{}
	open := func(name string) (*tlsdir.Dir, error) {
		if d := dirs[name]; d != nil {
			return d, nil
		}
		dir, ok := g.cfg.Credentials[name]
		if !ok {
			return nil, fmt.Errorf("no local directory for it (Config.Credentials has %q)", slices.Sorted(maps.Keys(g.cfg.Credentials)))
		}
		d, err := tlsdir.Open(tlsdir.Config{Dir: dir, Logger: g.log, Now: g.cfg.Now})
		if err != nil {
			return nil, err
		}
		dirs[name] = d
		return d, nil
	}
	protocols := map[bool]bool{} // keyed by "speaks TLS"
	for _, gw := range sel.Gateways {
		for i, s := range gw.Spec.GetServers() {
			if s.GetPort().GetNumber() != g.cfg.Port {
				continue
			}
			where := fmt.Sprintf("%s: spec.servers[%d]", g.cfg.Resources.origin("Gateway", gw.Namespace, gw.Name), i)
			proto := strings.ToUpper(s.GetPort().GetProtocol())
			switch proto {
			case "HTTPS":
				if s.GetTls() == nil {
					return nil, fmt.Errorf("%s: protocol HTTPS needs tls", where)
				}
				ts, err := newTLSServer(where, s.GetHosts(), s.GetTls(), open)
				if err != nil {
					return nil, err
				}
				l.servers = append(l.servers, ts)
				l.tls = true
			case "HTTP", "HTTP2":
				if s.GetTls() != nil {
					return nil, fmt.Errorf("%s: protocol %s with tls is not supported by the local gateway", where, proto)
				}
			default:
				return nil, fmt.Errorf("%s.port.protocol %s is not supported by the local gateway (HTTP, HTTPS)", where, s.GetPort().GetProtocol())
			}
			protocols[proto == "HTTPS"] = true
		}
	}
	switch len(protocols) {
	case 0:
		return nil, fmt.Errorf("no selected Gateway has a server on port %d", g.cfg.Port)
	case 2:
		return nil, fmt.Errorf("port %d mixes HTTPS and plain HTTP servers, which the local gateway does not support", g.cfg.Port)
	}
	return l, nil
}

// newAuthenticator merges the jwtRules of every selected
// RequestAuthentication, as Istio does for one workload. Each one is first
// checked on its own so that an error names its resource.
func (g *Gateway) newAuthenticator(ras []*securityv1.RequestAuthentication) (*authn.Authenticator, error) {
	opts := authn.Options{
		HTTPClient:   g.cfg.HTTPClient,
		JWKSOverride: g.cfg.JWKSOverride,
		Now:          g.cfg.Now,
		Logger:       g.log,
		CacheSize:    g.cfg.TokenCacheSize,
	}
	var rules []*securityv1beta1.JWTRule
	for _, ra := range ras {
		if _, err := authn.New(ra.Spec.GetJwtRules(), opts); err != nil {
			return nil, fmt.Errorf("%s: spec: %w", g.cfg.Resources.origin("RequestAuthentication", ra.Namespace, ra.Name), err)
		}
		rules = append(rules, ra.Spec.GetJwtRules()...)
	}
	return authn.New(rules, opts)
}

// NewUpstreamTransport is the gateway's pool of connections to its backends:
// kept alive, as Envoy's connection pools are, with timeouts so that a dead
// backend cannot hang a request. Exported for the load tool's control proxy,
// which must forward exactly as the gateway does.
func NewUpstreamTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
}

// TLSConfig is the listener's TLS config, nil when the port serves plain HTTP.
func (g *Gateway) TLSConfig() *tls.Config {
	if !g.listener.tls {
		return nil
	}
	return g.listener.tlsConfig()
}

// Handler is the gateway's HTTP surface behind the shared HTTP layer (request
// id, trace, access log), for tests that bring their own server
// (httptest.NewUnstartedServer with TLSConfig()). Bodies stream on unlimited,
// as Envoy's do.
func (g *Gateway) Handler() http.Handler {
	return middleware.Handler(middleware.Config{Component: "gateway", Logger: g.access, BodyLimit: -1}, g)
}

// Listener returns ln for the gateway's server (serve.Options.Listener):
// on a TLS port the gateway handshakes itself, so that a refused handshake
// is logged with the certificate refused; net/http gets the connections
// that passed, and serves HTTP/2 on them as ALPN chose.
func (g *Gateway) Listener(ln net.Listener) net.Listener {
	g.log.Info("gateway: listening", "address", ln.Addr().String(), "port", g.cfg.Port,
		"workload", g.cfg.Workload.String(), "tls", g.listener.tls)
	if cfg := g.TLSConfig(); cfg != nil {
		return newHandshakingListener(ln, cfg, g.handshakeFailed)
	}
	return ln
}

// Close releases the connections to the CUSTOM providers and, once its
// server has answered every request, the kept-alive connections to the
// backends, as Envoy drains its pools (a Transport from the Config is the
// caller's).
func (g *Gateway) Close() error {
	if g.cfg.Transport == nil {
		g.transport.(*http.Transport).CloseIdleConnections()
	}
	return closeExtAuthz(g.extAuthz)
}

// outcome is what the access log records of one request, beside what the
// HTTP layer records of every request.
type outcome struct {
	reason           string // Envoy's response code details, or the policy decision
	route, upstream  string
	principal        string
	requestPrincipal string
	// peerSerial and peerNotAfter are the client certificate's, as Envoy's
	// %DOWNSTREAM_PEER_SERIAL% and %DOWNSTREAM_PEER_CERT_V_END% log them:
	// which certificate a request came with shows when a rotated one is
	// taken up.
	peerSerial, peerNotAfter string
}

// ServeHTTP runs Envoy's filter chain for a gateway: path normalization
// (connection manager), jwt_authn, rbac, then the router.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Before the gateway adds a header of its own: the codec judged the
	// request as it came.
	refused := refusedBeforeFilters(r)
	// The connection manager rewrites XFCC before any filter, so policies
	// and the backend see only the gateway's own (forwarded.go).
	r = r.WithContext(r.Context())
	r.Header = r.Header.Clone()
	sanitizeSetXFCC(r.Header, r.TLS, g.xfcc)
	o := &outcome{principal: peerPrincipal(r.TLS)}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		leaf := r.TLS.PeerCertificates[0]
		o.peerSerial, o.peerNotAfter = tlsdir.Serial(leaf), leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	w.Header().Set("Server", serverHeader)
	// The request id is the HTTP layer's: it keeps an internal client's
	// x-request-id, as an edge Envoy (use_remote_address) does, and
	// middleware.Transport passes it on to the backend.
	path := "" // normalized; the layer logs the URL as the client sent it
	defer func() {
		attrs := []slog.Attr{
			slog.String(middleware.KeyReason, o.reason),
			slog.String(middleware.KeyPrincipal, o.principal),
			slog.String(middleware.KeyRequestPrincipal, o.requestPrincipal),
			slog.String("peerSerial", o.peerSerial),
			slog.String("peerNotAfter", o.peerNotAfter),
			slog.String("route", o.route),
			slog.String("upstream", o.upstream),
		}
		if path != "" {
			attrs = append(attrs, slog.String("normalizedPath", path))
		}
		middleware.Annotate(r.Context(), attrs...)
	}()

	if c := refused; c != nil {
		o.reason = c.reason
		if c.status == 0 {
			// net/http resets an HTTP/2 stream whose handler aborts; the
			// HTTP layer logs no status, as Envoy logs 0.
			panic(http.ErrAbortHandler)
		}
		if c.close {
			w.Header().Set("Connection", "close")
		}
		localReply(w, c.status, c.body)
		return
	}

	norm, err := NormalizePath(rawPath(r))
	if err != nil {
		// The connection manager's local reply: 400, no body.
		o.reason = "path_normalization_failed"
		localReply(w, http.StatusBadRequest, "")
		return
	}
	path = norm
	r = withNormalizedPath(r, norm)

	// ext_authz (CUSTOM) comes first in an Istio gateway's filter chain,
	// before jwt_authn (istio/istio#51173), so the provider sees the request
	// as the client sent it and jwt_authn and rbac see it as the provider
	// left it.
	var extOK *authv3.OkHttpResponse
	if m, ok := g.authz.MatchCustom(&authz.Request{
		Method: r.Method, Host: r.Host, Path: norm, Headers: r.Header, Principal: o.principal,
		Port: int(g.cfg.Port), SourceIP: remoteIP(r),
	}); ok {
		in := checkInput{r: r, path: r.URL.RequestURI(), scheme: schemeOf(r), requestID: middleware.RequestID(r.Context())}
		x := g.extAuthz[m.Provider].check(r.Context(), in)
		if !x.allow {
			o.reason = x.reason + " (" + m.Rule + ")"
			for k, vs := range x.header {
				w.Header()[k] = vs
			}
			localReply(w, x.status, x.body)
			return
		}
		r = r.Clone(r.Context())
		applyOK(r, x.ok)
		extOK = x.ok
	}

	res, fail := g.authn.Authenticate(r)
	if fail != nil {
		o.reason = fail.Reason
		w.Header().Set("Www-Authenticate", fail.WWWAuthenticate)
		localReply(w, fail.Status, fail.Body)
		return
	}
	o.requestPrincipal = res.RequestPrincipal
	// jwt_authn changes the request before rbac sees it: client-sent copies
	// of the claim headers are gone and the gateway's own are set, so a
	// policy on request.headers[x-jwt-claim-...] cannot be fooled. Every
	// later stage, and the backend, sees this request.
	r = r.Clone(r.Context())
	res.Apply(r)

	d := g.authz.DecideLocal(authz.Request{
		Method:           r.Method,
		Host:             r.Host,
		Path:             norm,
		Headers:          r.Header,
		Principal:        o.principal,
		RequestPrincipal: res.RequestPrincipal,
		Claims:           res.Claims,
		Port:             int(g.cfg.Port),
		SourceIP:         remoteIP(r),
	})
	o.reason = d.Reason
	if !d.Allow {
		localReply(w, http.StatusForbidden, bodyRBACDenied)
		return
	}

	f := &facts{
		method:    r.Method,
		scheme:    schemeOf(r),
		authority: r.Host,
		path:      norm,
		query:     r.URL.Query(),
		header:    r.Header,
		port:      g.cfg.Port,
	}
	rt := g.router.find(f)
	if rt == nil {
		o.reason = "route_not_found"
		localReply(w, http.StatusNotFound, "")
		return
	}
	o.route = rt.name
	dst := rt.pick()
	o.upstream = dst.host

	ctx := context.WithValue(r.Context(), callKey{}, &call{outcome: o, route: rt, dest: dst, facts: f})
	if rt.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.timeout)
		defer cancel()
	}
	resp := &responseOps{ResponseWriter: w, ops: []*networking.Headers_HeaderOperations{rt.headers.GetResponse(), dst.headers.GetResponse()},
		extra: extOK.GetResponseHeadersToAdd()}
	g.proxy.ServeHTTP(resp, r.WithContext(ctx))
}

// call is what the proxy's Rewrite and ErrorHandler need of one request.
type call struct {
	sent    time.Time // when the request went upstream
	outcome *outcome
	route   *route
	dest    *destination
	facts   *facts
}

type callKey struct{}

// rewrite turns the client's request into the one Envoy sends the backend:
// rewritten path and authority, the route's
// header operations, and the edge proxy's x-forwarded-* headers (an Istio
// gateway uses the remote address: the client's own x-forwarded-for is not
// trusted, and ReverseProxy has already removed it).
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	c := pr.In.Context().Value(callKey{}).(*call)
	out := pr.Out
	p := c.route.rewritePath(c.facts)
	out.URL.Scheme = "http"
	out.URL.Host = c.dest.addr
	out.URL.RawPath = p
	out.URL.Path, _ = url.PathUnescape(p)
	if rw := c.route.rewrite; rw != nil && rw.authority != "" {
		out.Host = rw.authority
	}
	applyHeaderOps(out.Header, c.route.headers.GetRequest())
	applyHeaderOps(out.Header, c.dest.headers.GetRequest())
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		out.Header.Set("X-Forwarded-For", ip)
		out.Header.Set("X-Envoy-External-Address", ip)
	}
	out.Header.Set("X-Forwarded-Proto", c.facts.scheme)
	c.sent = time.Now()
}

// modifyResponse adds what Envoy's router adds to an upstream's response.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	if c, ok := resp.Request.Context().Value(callKey{}).(*call); ok {
		setUpstreamServiceTime(resp.Header, c.sent)
	}
	return nil
}

// upstreamError is the router's answer when the backend gives none: 504 on
// the route timeout, 503 when it cannot be reached or resets.
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	o := &outcome{}
	if c, ok := r.Context().Value(callKey{}).(*call); ok {
		o = c.outcome
	}
	var op *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		o.reason = "upstream_response_timeout"
		localReply(w, http.StatusGatewayTimeout, bodyUpstreamTimeout)
	case errors.Is(err, context.Canceled):
		// The client went away: Envoy logs 0 / downstream_remote_disconnect;
		// the HTTP layer logs the 499 of nginx.
		o.reason = "downstream_remote_disconnect"
	case errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED):
		o.reason = "upstream_reset_before_response_started{remote_connection_failure}"
		localReply(w, http.StatusServiceUnavailable, bodyUpstreamRefused)
	default:
		o.reason = "upstream_reset_before_response_started{connection_failure}"
		localReply(w, http.StatusServiceUnavailable, bodyUpstreamFailure)
	}
}

// localReply writes one of Envoy's local replies: text/plain, the body as is.
func localReply(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Del("Content-Length")
	// A content-type already set is ext_authz's, which Envoy applies over
	// the local reply's own.
	if body != "" && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/plain")
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func schemeOf(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// rawPath is the path as the client sent it, still escaped, without query.
func rawPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}

// withNormalizedPath returns a shallow copy of r whose URL carries the
// normalized path, which is what every later stage sees and the backend gets.
func withNormalizedPath(r *http.Request, norm string) *http.Request {
	u := *r.URL
	u.RawPath = norm
	u.Path, _ = url.PathUnescape(norm)
	r2 := r.WithContext(r.Context())
	r2.URL = &u
	r2.RequestURI = u.RequestURI()
	return r2
}

// bufferPool recycles the proxy's copy buffers.
type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) Get() []byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }

// responseOps applies the route's response header operations to the
// backend's response just before its header is written.
type responseOps struct {
	http.ResponseWriter
	ops []*networking.Headers_HeaderOperations
	// extra are ext_authz's response_headers_to_add, applied after the
	// route's operations, as the ext_authz filter encodes after the router.
	extra   []*corev3.HeaderValueOption
	written bool
}

func (w *responseOps) WriteHeader(code int) {
	if !w.written {
		w.written = true
		for _, ops := range w.ops {
			applyHeaderOps(w.Header(), ops)
		}
		applyHeaderValueOptions(w.Header(), w.extra)
		// Envoy overwrites the upstream's server header with its own.
		w.Header()["Server"] = []string{serverHeader}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseOps) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *responseOps) Unwrap() http.ResponseWriter { return w.ResponseWriter }
