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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/middleware"
	"github.com/acme/cloudrun-istio-gke/internal/secureapi"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

// ClientTLS gives the TLS configuration for one new connection to the
// gateway. *tlsdir.Dir implements it and follows certificate rotation, so it
// is asked per dial.
type ClientTLS interface {
	ClientConfig(serverName string) (*tls.Config, error)
}

// Errors a gateway call ends in. Istio refuses a bad JWT with 401, a missing
// one with 403 "RBAC: access denied", and says 503/504 when the backend is
// down or slow.
var (
	ErrUnauthorized = errors.New("the gateway refused the ID token")
	ErrForbidden    = errors.New("the gateway denied access")
	ErrUnavailable  = errors.New("the backend is unavailable")
)

const maxBackendBody = 1 << 20 // what we read of an answer

// GatewayClient calls the private API through the Istio ingress gateway, over
// mutual TLS, on behalf of a signed-in user.
type GatewayClient struct {
	base       *url.URL
	serverName string
	timeout    time.Duration
	creds      ClientTLS

	mu     sync.Mutex
	cert   *x509.Certificate // what client's new connections present; nil if creds do not say
	client *http.Client
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
	g.httpClient()
	return g, nil
}

// httpClient returns the client to send with. TLS authenticates a connection
// once, so a kept-alive connection would present a rotated-out certificate
// for as long as it is busy: a new certificate gets a new transport, and the
// old one's connections finish their requests and close when idle.
func (g *GatewayClient) httpClient() *http.Client {
	var cert *x509.Certificate
	if c, ok := g.creds.(interface{ Certificate() *x509.Certificate }); ok { // *tlsdir.Dir
		cert = c.Certificate()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.client != nil && cert.Equal(g.cert) {
		return g.client
	}
	if g.client != nil {
		g.client.CloseIdleConnections()
	}
	g.cert = cert
	g.client = &http.Client{
		// The gateway's access line shares our trace and request id.
		Transport: middleware.Transport(&http.Transport{
			Proxy:          nil, // the gateway is on the private network
			DialTLSContext: g.dial,
			// With its own DialTLSContext, net/http speaks HTTP/2 only if told.
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64, // every request goes to the one gateway
			IdleConnTimeout:     90 * time.Second,
		}),
		Timeout: g.timeout,
		// The API does not redirect: a redirect is an answer, not a place to
		// send the user's token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return g.client
}

// Close releases idle connections.
func (g *GatewayClient) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.client.CloseIdleConnections()
}

// gatewayConn is the TCP connection under one TLS session with the gateway.
// It keeps the client certificate the handshake presented, and marks its
// write errors with itself: when the HTTP/2 client cannot send its preface,
// that error is all a request gets (no httptrace GotConn).
type gatewayConn struct {
	net.Conn
	asked     bool              // the gateway asked for a client certificate
	presented *x509.Certificate // nil: none
}

type writeError struct {
	conn *gatewayConn
	error
}

func (e *writeError) Unwrap() error { return e.error }

func (c *gatewayConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		err = &writeError{c, err}
	}
	return n, err
}

// dial makes one connection with the client TLS of the moment, within the
// timeout, handshake included: net/http dials apart from the request.
func (g *GatewayClient) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	cfg, err := g.creds.ClientConfig(g.serverName)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	raw, err := new(net.Dialer).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := &gatewayConn{Conn: raw}
	cfg = cfg.Clone()
	get, certs := cfg.GetClientCertificate, cfg.Certificates
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c.asked = true
		cert, err := new(tls.Certificate), error(nil) // none fits: an empty one, as crypto/tls sends
		if get != nil {
			cert, err = get(cri)
		} else if i := slices.IndexFunc(certs, func(c tls.Certificate) bool { return cri.SupportsCertificate(&c) == nil }); i >= 0 {
			cert = &certs[i]
		}
		if err == nil && len(cert.Certificate) > 0 {
			if c.presented = cert.Leaf; c.presented == nil {
				c.presented, _ = x509.ParseCertificate(cert.Certificate[0])
			}
		}
		return cert, err
	}
	conn := tls.Client(c, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, g.handshakeError(c, err, false)
	}
	return conn, nil
}

// HandshakeError is a TLS handshake with the gateway that failed, naming the
// certificate at fault: the gateway's when we refused it, ours as presented
// when the gateway refused the connection.
type HandshakeError struct {
	Addr, ServerName   string
	GatewayCertificate *x509.Certificate // the gateway's leaf, when we refused it
	// Refused: the gateway sent an alert, asked or not for our certificate.
	Refused, ClientCertificateAsked bool
	ClientCertificate               *x509.Certificate // what we presented; nil: none
	// ClosedAfterHandshake: the gateway ended the new connection without an
	// alert we could read, as a TLS 1.3 refusal does when a reset loses it.
	ClosedAfterHandshake bool
	Err                  error
}

func (g *GatewayClient) handshakeError(c *gatewayConn, err error, afterHandshake bool) *HandshakeError {
	e := &HandshakeError{Addr: c.RemoteAddr().String(), ServerName: g.serverName, Err: err}
	cve, _ := errors.AsType[*tls.CertificateVerificationError](err)
	op, _ := errors.AsType[*net.OpError](err)
	switch {
	case cve != nil && len(cve.UnverifiedCertificates) > 0:
		e.GatewayCertificate = cve.UnverifiedCertificates[0]
	case op != nil && op.Op == "remote error": // crypto/tls's word for the peer's alert
		e.Refused, e.ClientCertificateAsked, e.ClientCertificate = true, c.asked, c.presented
	case afterHandshake:
		e.ClosedAfterHandshake, e.ClientCertificate = true, c.presented
	}
	return e
}

func (e *HandshakeError) Error() string {
	head := fmt.Sprintf("TLS handshake with %s (server name %s)", e.Addr, e.ServerName)
	ours := "we had no client certificate to present"
	if e.ClientCertificate != nil {
		ours = "our client " + tlsdir.Describe(e.ClientCertificate)
	}
	switch {
	case e.GatewayCertificate != nil:
		return fmt.Sprintf("%s: refused the gateway's %s: %v", head, tlsdir.Describe(e.GatewayCertificate), e.Err)
	case e.Refused && !e.ClientCertificateAsked:
		return fmt.Sprintf("%s: the gateway refused it (%v) before asking for a client certificate", head, e.Err)
	case e.Refused:
		return fmt.Sprintf("%s: the gateway refused it (%v); %s", head, e.Err, ours)
	case e.ClosedAfterHandshake:
		return fmt.Sprintf("%s: the gateway closed the new connection right after the handshake (%v), as it does when "+
			"it refuses our client certificate and the tls alert is lost (the gateway's log says why); %s", head, e.Err, ours)
	}
	return fmt.Sprintf("%s: %v", head, e.Err)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// Get sends GET path to the gateway with the bearer token (may be empty).
// The caller closes the body.
func (g *GatewayClient) Get(ctx context.Context, path, idToken string) (*http.Response, error) {
	return g.Send(ctx, http.MethodGet, path, nil, idToken)
}

// Send is Get for any method (the developers' page): a non-nil body is sent
// as JSON, and path may end in a query.
func (g *GatewayClient) Send(ctx context.Context, method, path string, body []byte, idToken string) (*http.Response, error) {
	path, query, _ := strings.Cut(path, "?")
	h := http.Header{}
	if idToken != "" {
		h.Set("Authorization", "Bearer "+idToken)
	}
	return g.send(ctx, method, path, query, body, h)
}

// send is the one request to the gateway; header replaces the defaults.
func (g *GatewayClient) send(ctx context.Context, method, path, rawQuery string, body []byte, header http.Header) (*http.Response, error) {
	u := g.base.JoinPath(path)
	u.RawQuery = rawQuery
	var got httptrace.GotConnInfo
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { got = i }})
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Host = g.serverName // the gateway routes by it; the URL may hold an IP
	req.Header.Set("Accept", "application/json")
	for k, vs := range header {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	resp, err := g.httpClient().Do(req)
	if err != nil { // the token is in a header, never in an error
		return nil, fmt.Errorf("%w: %s %s: %w", ErrUnavailable, method, path, g.firstRequestError(err, got))
	}
	return resp, nil
}

// firstRequestError names our client certificate when the first request on a
// new connection fails other than by time: under TLS 1.3 the gateway checks
// it after our side of the handshake, so a refusal comes on the first read,
// or as a reset when that loses the alert (Go's HTTP/2 client then says only
// "client conn could not be established").
func (g *GatewayClient) firstRequestError(err error, got httptrace.GotConnInfo) error {
	var c *gatewayConn
	if tc, ok := got.Conn.(*tls.Conn); ok {
		c, _ = tc.NetConn().(*gatewayConn)
	} else if we, ok := errors.AsType[*writeError](err); ok {
		c = we.conn
	}
	he, _ := errors.AsType[*HandshakeError](err)
	ne, _ := errors.AsType[net.Error](err)
	if c == nil || he != nil || got.Reused || ne != nil && ne.Timeout() || errors.Is(err, context.Canceled) {
		return err
	}
	return g.handshakeError(c, err, true)
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
	switch code {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	}
	return ErrUnavailable // 503 no healthy upstream, 504 upstream timeout, anything odd
}

// snippet keeps the start of an error body for logs: Envoy's bodies are
// short ("Jwt is expired", "RBAC: access denied") and carry no secrets.
func snippet(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "…"
	}
	return string(b)
}
