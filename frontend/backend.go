package frontend

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// ClientTLS gives the TLS configuration for one new connection to the
// gateway: the current client certificate and the CA that verifies the
// gateway. *tlsdir.Dir implements it and follows certificate rotation, which
// is why it is asked once per dial rather than once at start-up.
type ClientTLS interface {
	ClientConfig(serverName string) (*tls.Config, error)
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

// Backend calls the private API through the Istio ingress gateway, over
// mutual TLS, on behalf of a signed-in user.
type Backend struct {
	base       *url.URL
	serverName string
	client     *http.Client
	timeout    time.Duration
}

// NewBackend returns a client for the gateway at baseURL (https://host[:port]).
// serverName is what the gateway's certificate must name.
func NewBackend(baseURL, serverName string, timeout time.Duration, creds ClientTLS) (*Backend, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("backend: gateway URL %q must be https://host[:port]", redactURL(baseURL))
	}
	if serverName == "" || creds == nil || timeout <= 0 {
		return nil, errors.New("backend: a server name, client TLS and a positive timeout are required")
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		// The gateway is on a private network: never through a proxy.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// A fresh TLS config per connection, so rotated certificates apply
		// to new connections while established ones carry on.
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			cfg, err := creds.ClientConfig(serverName)
			if err != nil {
				return nil, fmt.Errorf("client certificate: %w", err)
			}
			raw, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn := tls.Client(raw, cfg)
			if err := conn.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, fmt.Errorf("TLS handshake with %s (%s): %w", addr, serverName, err)
			}
			return conn, nil
		},
		// With a custom DialTLSContext, net/http speaks HTTP/2 only when
		// asked to; the connection's ALPN result then decides.
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64, // every request goes to the one gateway
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   timeout,
		// The API does not redirect; if something does, it is an answer,
		// not a place to send the user's token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Backend{base: u, serverName: serverName, client: client, timeout: timeout}, nil
}

// Close releases idle connections.
func (b *Backend) Close() { b.client.CloseIdleConnections() }

// Get sends GET path to the gateway with the bearer token (may be empty) and
// the request id, within the per-request timeout. The caller closes the body.
func (b *Backend) Get(ctx context.Context, path, idToken, requestID string) (*http.Response, error) {
	u := b.base.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", path, err)
	}
	// The gateway routes by :authority (a VirtualService's hosts), and the
	// load balancer is reached by IP: ask for the name, as TLS does.
	req.Host = b.serverName
	req.Header.Set("Accept", "application/json")
	if idToken != "" {
		req.Header.Set("Authorization", "Bearer "+idToken)
	}
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which holds no secrets; the token is
		// in a header and never part of an error.
		return nil, fmt.Errorf("%w: GET %s: %w", ErrUnavailable, path, err)
	}
	return resp, nil
}

// SecureMessage is the backend's answer to GET /api/secure.json.
type SecureMessage struct {
	Message string `json:"message"`
	UID     string `json:"uid"`
	Email   string `json:"email"`
}

// SecureMessage fetches /api/secure.json as the user whose ID token is given.
// Failures wrap ErrUnauthorized, ErrForbidden or ErrUnavailable.
func (b *Backend) SecureMessage(ctx context.Context, idToken, requestID string) (SecureMessage, error) {
	resp, err := b.Get(ctx, "/api/secure.json", idToken, requestID)
	if err != nil {
		return SecureMessage{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendBody))
	if err != nil {
		return SecureMessage{}, fmt.Errorf("%w: reading /api/secure.json: %w", ErrUnavailable, err)
	}
	if err := statusError(resp.StatusCode); err != nil {
		return SecureMessage{}, fmt.Errorf("%w: /api/secure.json answered %d %q", err, resp.StatusCode, snippet(body))
	}
	var m SecureMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return SecureMessage{}, fmt.Errorf("%w: /api/secure.json answered 200 with unreadable JSON: %w", ErrUnavailable, err)
	}
	return m, nil
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
