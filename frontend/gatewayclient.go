package frontend

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/acme/cloudrun-istio-gke/internal/secureapi"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

// ClientTLS gives the TLS configuration for one new connection to the
// gateway: the current client certificate and the CA that verifies the
// gateway. *tlsdir.Dir implements it and follows certificate rotation, which
// is why it is asked once per dial rather than once at start-up.
type ClientTLS interface {
	ClientConfig(serverName string) (*tls.Config, error)
}

// certificateInUse is what a ClientTLS that follows rotation (*tlsdir.Dir)
// also tells: the client certificate new connections present now.
type certificateInUse interface {
	Certificate() *x509.Certificate
}

// Errors a backend call ends in, for callers to branch on. They map the
// gateway's answers: Istio refuses a bad JWT with 401, a missing one with 403
// "RBAC: access denied", and says 503/504 when the backend is down or slow.
var (
	ErrUnauthorized = errors.New("the gateway refused the ID token")
	ErrForbidden    = errors.New("the gateway denied access")
	ErrUnavailable  = errors.New("the backend is unavailable")
)

// maxBackendBody bounds what we read from the gateway.
const maxBackendBody = 1 << 20

// GatewayClient calls the private API through the Istio ingress gateway, over
// mutual TLS, on behalf of a signed-in user.
//
// A rotated client certificate is used from the first request after
// ClientTLS reports it: connections are kept alive, and TLS authenticates a
// connection once, at its handshake, so the connections made with the old
// certificate would otherwise go on presenting it for as long as they are
// busy, past its expiry even. Instead the client moves to a fresh pool of
// connections; the old pool's connections finish the requests they carry
// and are closed when idle (at the next rotation or Close at the latest).
type GatewayClient struct {
	base       *url.URL
	serverName string
	timeout    time.Duration
	creds      ClientTLS

	pool atomic.Pointer[pool]
	mu   sync.Mutex // serialises the move to a new pool
	old  *pool      // the pool retired by the last rotation

	// presented is the client certificate of the latest handshake, to name
	// it when the gateway refuses a connection after the handshake (TLS 1.3
	// reports a refused client certificate on the first read).
	presented atomic.Pointer[x509.Certificate]
}

// pool is an HTTP client whose connections present one client certificate.
type pool struct {
	client *http.Client
	cert   *x509.Certificate // nil when ClientTLS does not say
}

// NewGatewayClient returns a client for the gateway at baseURL (https://host[:port]).
// serverName is what the gateway's certificate must name.
func NewGatewayClient(baseURL, serverName string, timeout time.Duration, creds ClientTLS) (*GatewayClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("gateway client: URL %q must be https://host[:port]", redactURL(baseURL))
	}
	if serverName == "" || creds == nil || timeout <= 0 {
		return nil, errors.New("gateway client: a server name, client TLS and a positive timeout are required")
	}
	g := &GatewayClient{base: u, serverName: serverName, timeout: timeout, creds: creds}
	g.pool.Store(g.newPool(g.certificateInUse()))
	return g, nil
}

// certificateInUse is the client certificate new connections present, or
// nil if ClientTLS does not say.
func (g *GatewayClient) certificateInUse() *x509.Certificate {
	if c, ok := g.creds.(certificateInUse); ok {
		return c.Certificate()
	}
	return nil
}

// current returns the pool to send a request with, first retiring the pool
// in use if the client certificate has rotated since it was made.
func (g *GatewayClient) current() *pool {
	p := g.pool.Load()
	cert := g.certificateInUse()
	if cert == nil || p.cert == nil || cert == p.cert || cert.Equal(p.cert) {
		return p
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if p = g.pool.Load(); cert.Equal(p.cert) {
		return p // another request moved first
	}
	if g.old != nil {
		g.old.client.CloseIdleConnections() // its requests ended long ago
	}
	g.old = p
	next := g.newPool(cert)
	g.pool.Store(next)
	p.client.CloseIdleConnections() // busy ones close when idle: at the next rotation or Close
	return next
}

func (g *GatewayClient) newPool(cert *x509.Certificate) *pool {
	dialer := &net.Dialer{Timeout: g.timeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		// The gateway is on a private network: never through a proxy.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// A fresh TLS config per connection, so rotated certificates apply
		// to new connections while established ones carry on.
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return g.dialTLS(ctx, dialer, network, addr)
		},
		// With a custom DialTLSContext, net/http speaks HTTP/2 only when
		// asked to; the connection's ALPN result then decides.
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64, // every request goes to the one gateway
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: g.timeout,
	}
	client := &http.Client{
		// The gateway's access line shares this request's trace and id.
		Transport: middleware.Transport(transport),
		Timeout:   g.timeout,
		// The API does not redirect; if something does, it is an answer,
		// not a place to send the user's token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &pool{client: client, cert: cert}
}

// dialTLS makes one connection to the gateway with the client TLS of the
// moment. A failed handshake is returned as a *HandshakeError naming the
// certificate at fault.
func (g *GatewayClient) dialTLS(ctx context.Context, dialer *net.Dialer, network, addr string) (net.Conn, error) {
	cfg, err := g.creds.ClientConfig(g.serverName)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	var (
		asked     bool
		presented *x509.Certificate
	)
	cfg = notePresented(cfg, func(c *x509.Certificate) { asked, presented = true, c })
	raw, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cfg)
	err = conn.HandshakeContext(ctx)
	if asked {
		g.presented.Store(presented)
	}
	if err != nil {
		raw.Close()
		return nil, newHandshakeError(addr, g.serverName, asked, presented, err)
	}
	return conn, nil
}

// notePresented returns a copy of cfg that tells note, if the gateway asks
// for a client certificate, which one the handshake presents (nil: none),
// chosen as crypto/tls would choose it.
func notePresented(cfg *tls.Config, note func(*x509.Certificate)) *tls.Config {
	cfg = cfg.Clone()
	get, certs := cfg.GetClientCertificate, cfg.Certificates
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		var c *tls.Certificate
		if get != nil {
			var err error
			if c, err = get(cri); err != nil {
				return nil, err
			}
		} else {
			c = &tls.Certificate{} // none: crypto/tls then sends an empty one
			for i := range certs {
				if cri.SupportsCertificate(&certs[i]) == nil {
					c = &certs[i]
					break
				}
			}
		}
		note(leafOf(c))
		return c, nil
	}
	return cfg
}

func leafOf(c *tls.Certificate) *x509.Certificate {
	if c == nil || len(c.Certificate) == 0 {
		return nil
	}
	if c.Leaf != nil {
		return c.Leaf
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// HandshakeError is a TLS handshake with the gateway that failed, naming
// the certificate at fault, so that the log line of a failed call answers
// "which certificate?": the gateway's, when the frontend refused it; the
// frontend's own as presented, when the gateway refused the connection.
type HandshakeError struct {
	Addr, ServerName string
	// GatewayCertificate is the gateway's leaf certificate when the frontend
	// refused it, else nil.
	GatewayCertificate *x509.Certificate
	// Refused says the gateway ended the handshake with an alert; then
	// ClientCertificateAsked says whether it had asked for a client
	// certificate, and ClientCertificate is the one presented (nil: none).
	Refused                bool
	ClientCertificateAsked bool
	ClientCertificate      *x509.Certificate
	// ClosedAfterHandshake says the gateway closed a new connection right
	// after the handshake without an alert we could read: under TLS 1.3 a
	// refused client certificate can show so, when the alert is lost to
	// the reset of a connection we had already written to.
	// ClientCertificate is then the one presented.
	ClosedAfterHandshake bool
	Err                  error
}

func newHandshakeError(addr, serverName string, asked bool, presented *x509.Certificate, err error) *HandshakeError {
	e := &HandshakeError{Addr: addr, ServerName: serverName, Err: err}
	if cve, ok := errors.AsType[*tls.CertificateVerificationError](err); ok && len(cve.UnverifiedCertificates) > 0 {
		e.GatewayCertificate = cve.UnverifiedCertificates[0]
	} else if isRemoteAlert(err) {
		e.Refused, e.ClientCertificateAsked, e.ClientCertificate = true, asked, presented
	}
	return e
}

func (e *HandshakeError) Error() string {
	head := fmt.Sprintf("TLS handshake with %s (server name %s)", e.Addr, e.ServerName)
	switch {
	case e.GatewayCertificate != nil:
		return fmt.Sprintf("%s: refused the gateway's %s: %v", head, tlsdir.Describe(e.GatewayCertificate), e.Err)
	case e.Refused && e.ClientCertificate != nil:
		return fmt.Sprintf("%s: the gateway refused it (%v); our client %s", head, e.Err, tlsdir.Describe(e.ClientCertificate))
	case e.Refused && e.ClientCertificateAsked:
		return fmt.Sprintf("%s: the gateway refused it (%v); we had no client certificate to present", head, e.Err)
	case e.Refused:
		return fmt.Sprintf("%s: the gateway refused it (%v) before asking for a client certificate", head, e.Err)
	case e.ClosedAfterHandshake && e.ClientCertificate != nil:
		return fmt.Sprintf("%s: the gateway closed the new connection right after the handshake (%v); "+
			"a refusal of our client certificate looks like this when its alert is lost, and the gateway's log says why. Our client %s",
			head, e.Err, tlsdir.Describe(e.ClientCertificate))
	}
	return fmt.Sprintf("%s: %v", head, e.Err)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// isRemoteAlert reports whether err is a TLS alert the gateway sent.
func isRemoteAlert(err error) bool {
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "remote error"
}

// Close releases idle connections.
func (g *GatewayClient) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.old != nil {
		g.old.client.CloseIdleConnections()
	}
	g.pool.Load().client.CloseIdleConnections()
}

// Get sends GET path to the gateway with the bearer token (may be empty),
// within the per-request timeout; the request id and trace of ctx go with it
// (middleware.Transport). The caller closes the body.
func (g *GatewayClient) Get(ctx context.Context, path, idToken string) (*http.Response, error) {
	return g.Send(ctx, http.MethodGet, path, nil, idToken)
}

// Send is Get for any method, as a signed-in user (the management API of
// the developers' page): a non-nil body is sent as JSON, and path may end in
// a query.
func (g *GatewayClient) Send(ctx context.Context, method, path string, body []byte, idToken string) (*http.Response, error) {
	path, query, _ := strings.Cut(path, "?")
	h := http.Header{}
	if idToken != "" {
		h.Set("Authorization", "Bearer "+idToken)
	}
	return g.send(ctx, method, path, query, body, h)
}

// send is the one request to the gateway: any method, query, JSON body and
// headers (each replacing the default of the same name).
func (g *GatewayClient) send(ctx context.Context, method, path, rawQuery string, body []byte, header http.Header) (*http.Response, error) {
	u := g.base.JoinPath(path)
	u.RawQuery = rawQuery
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// The gateway routes by :authority (a VirtualService's hosts), and the
	// load balancer is reached by IP: ask for the name, as TLS does.
	req.Host = g.serverName
	req.Header.Set("Accept", "application/json")
	for k, vs := range header {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	var reused atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(c httptrace.GotConnInfo) { reused.Store(c.Reused) },
	}))
	resp, err := g.current().client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which holds no secrets; the token is
		// in a header and never part of an error.
		return nil, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, path, g.afterHandshake(err, reused.Load()))
	}
	return resp, nil
}

// afterHandshake names our client certificate in the error of a request
// that failed as the gateway refused it. Under TLS 1.3 the gateway checks
// the certificate after our side of the handshake is done, so its refusal
// comes on the first read, or, when the alert is lost to the reset of a
// connection we had already written to, as a reset of the new connection.
// The certificate named is the one the latest handshake presented.
func (g *GatewayClient) afterHandshake(err error, reused bool) error {
	if _, ok := errors.AsType[*HandshakeError](err); ok {
		return err
	}
	e := &HandshakeError{Addr: g.base.Host, ServerName: g.serverName, ClientCertificate: g.presented.Load(), Err: err}
	switch {
	case isRemoteAlert(err):
		e.Refused, e.ClientCertificateAsked = true, true
	case !reused && e.ClientCertificate != nil &&
		(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
			closedBeforeFirstRequest(err)):
		e.ClosedAfterHandshake = true
	default:
		return err
	}
	return e
}

// closedBeforeFirstRequest reports the HTTP/2 client's answer when a new
// connection closed (here: reset after the handshake) before its first
// request was sent. The reset itself is lost; the error is net/http's
// unexported http2errClientConnNotEstablished, so only its text can be
// matched (net/http h2_bundle.go, awaitOpenSlotForStreamLocked).
func closedBeforeFirstRequest(err error) bool {
	return strings.Contains(err.Error(), "http2: client conn could not be established")
}

// SecureMessage fetches /api/secure.json as the user whose ID token is given,
// with what the hops reported of the call (requestpath.go). Failures wrap
// ErrUnauthorized, ErrForbidden or ErrUnavailable.
func (g *GatewayClient) SecureMessage(ctx context.Context, idToken string) (secureapi.SecureMessage, Hops, error) {
	start := time.Now()
	resp, err := g.Get(ctx, "/api/secure.json", idToken)
	if err != nil {
		return secureapi.SecureMessage{}, Hops{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendBody))
	if err != nil {
		return secureapi.SecureMessage{}, Hops{}, fmt.Errorf("%w: reading /api/secure.json: %w", ErrUnavailable, err)
	}
	if err := statusError(resp.StatusCode); err != nil {
		return secureapi.SecureMessage{}, Hops{}, fmt.Errorf("%w: /api/secure.json answered %d %q", err, resp.StatusCode, snippet(body))
	}
	var m secureapi.SecureMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return secureapi.SecureMessage{}, Hops{}, fmt.Errorf("%w: /api/secure.json answered 200 with unreadable JSON: %w", ErrUnavailable, err)
	}
	return m, readHops(resp.Header, time.Since(start)), nil
}

// statusError maps a gateway status to the error a user is shown.
func statusError(code int) error {
	switch {
	case code == http.StatusOK:
		return nil
	case code == http.StatusUnauthorized:
		return ErrUnauthorized
	case code == http.StatusForbidden:
		return ErrForbidden
	default: // 503 no healthy upstream, 504 upstream timeout, anything odd
		return ErrUnavailable
	}
}

// snippet keeps the start of an error body for logs: Envoy's bodies are
// short ("Jwt is expired", "RBAC: access denied") and carry no secrets.
func snippet(b []byte) string {
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
