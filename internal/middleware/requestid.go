package middleware

import (
	"net/http"
	"net/netip"

	"github.com/google/uuid"
)

// HeaderRequestID is the header Envoy sets on every request it proxies and
// passes on, so one id follows a request through every hop's logs.
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-request-id
const HeaderRequestID = "X-Request-Id"

// maxRequestIDLen bounds an incoming id we adopt; Envoy's are 36-character
// UUIDs.
const maxRequestIDLen = 128

// SaneRequestID accepts short ids of printable ASCII without spaces, so that
// a client cannot make log lines huge or confusing with its header.
func SaneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := range len(id) {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// TrustRequestID decides whether a server adopts the X-Request-Id a request
// came with (when it is sane) or makes its own.
type TrustRequestID func(*http.Request) bool

// TrustAny adopts every sane incoming id: right for a server only reachable
// through our own hops (the backend behind the gateway).
func TrustAny(*http.Request) bool { return true }

// TrustNone always makes a new id: right for a public edge, so that a
// client cannot choose what support will search for.
func TrustNone(*http.Request) bool { return false }

// TrustPrivateNetwork adopts the id of a peer on loopback or a private
// network and replaces an external client's, as an edge Envoy does with
// use_remote_address (the frontend reaches the gateway's internal load
// balancer from the VPC).
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-request-id
func TrustPrivateNetwork(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	return ip.IsLoopback() || ip.IsPrivate()
}

// requestIDFor is the id the request is served and logged under.
func requestIDFor(r *http.Request, trust TrustRequestID) string {
	if trust == nil {
		trust = TrustPrivateNetwork
	}
	if id := r.Header.Get(HeaderRequestID); SaneRequestID(id) && trust(r) {
		return id
	}
	// A UUID, as Envoy makes, so that ids look alike whichever hop made them.
	return uuid.NewString()
}
