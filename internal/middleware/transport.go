package middleware

import "net/http"

// Transport returns a RoundTripper that carries the request id and trace of
// each call's context on to the next hop (see PropagateHeaders), then sends
// the call with base (http.DefaultTransport when nil).
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base}
}

type transport struct{ base http.RoundTripper }

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	if stateFrom(ctx) == nil {
		return t.base.RoundTrip(r) // not made while serving a request
	}
	// A RoundTripper must not change the caller's request: send a copy with
	// its own headers.
	out := new(http.Request)
	*out = *r
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	PropagateHeaders(ctx, out.Header)
	return t.base.RoundTrip(out)
}

// CloseIdleConnections closes base's idle connections, so that
// http.Client.CloseIdleConnections still reaches them.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
