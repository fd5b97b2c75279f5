package gateway

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/tokencache"
)

// The headers the gateway adds as an Istio ingress gateway's Envoy does.
const (
	// headerXFCC is Envoy's x-forwarded-client-cert:
	// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert
	headerXFCC = "X-Forwarded-Client-Cert"
	// headerUpstreamServiceTime is the router's
	// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter#x-envoy-upstream-service-time
	headerUpstreamServiceTime = "X-Envoy-Upstream-Service-Time"
)

// sanitizeSetXFCC does to the request what an Istio gateway's connection
// manager does before any filter: Istio 1.31 configures gateways with
// forward_client_cert_details SANITIZE_SET and set_current_client_cert_details
// {subject, cert, uri, dns} (pilot/pkg/networking/core/gateway.go,
// buildGatewayConnectionManager; deploy/istio/operator.yaml pins it). So a
// client's own XFCC never passes: it is replaced by one element describing
// the certificate the client presented, or removed when there is none.
//
// Envoy writes the element's keys in a fixed order, By, Hash, Cert, Chain,
// Subject, URI, DNS (http_connection_manager/config.cc and
// conn_manager_utility.cc). By is the URI SAN of the gateway's own serving
// certificate; the gateway's credentialName certificates name hosts only
// (DNS SANs), so By is absent here as it is on the real gateway.
//
// The element depends on the certificate alone, and a client presents the
// same one on every request of a connection and of its reconnections, so it
// is built once per certificate and kept in known (bounded; nil keeps
// nothing): building it hashes, PEM-encodes and escapes the certificate.
func sanitizeSetXFCC(h http.Header, cs *tls.ConnectionState, known *tokencache.Cache[string]) {
	h.Del(headerXFCC)
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return
	}
	leaf := cs.PeerCertificates[0]
	v, ok := known.Get(string(leaf.Raw), time.Now())
	if !ok {
		v = xfccElement(leaf)
		known.Put(string(leaf.Raw), v, time.Time{})
	}
	h.Set(headerXFCC, v)
}

// xfccElement is the XFCC element describing leaf, in Envoy's key order.
func xfccElement(leaf *x509.Certificate) string {
	sum := sha256.Sum256(leaf.Raw)
	parts := []string{
		"Hash=" + hex.EncodeToString(sum[:]),
		// Envoy's urlEncodedPemEncodedPeerCertificate.
		`Cert="` + url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))) + `"`,
		// The key is written even for an empty subject; Envoy prints it
		// in RFC 2253 form, as pkix.Name.String does.
		`Subject="` + leaf.Subject.String() + `"`,
	}
	if len(leaf.URIs) == 0 {
		parts = append(parts, "URI=") // likewise always present
	}
	for _, u := range leaf.URIs {
		parts = append(parts, "URI="+u.String())
	}
	for _, d := range leaf.DNSNames {
		parts = append(parts, "DNS="+d)
	}
	return strings.Join(parts, ";")
}

// setUpstreamServiceTime stamps the backend's response with the
// milliseconds from the request going upstream to its response headers
// coming back, whole milliseconds as Envoy's router writes them
// (std::chrono::duration_cast truncates). Envoy overwrites any value the
// backend sent; local replies carry none.
func setUpstreamServiceTime(h http.Header, sent time.Time) {
	h.Set(headerUpstreamServiceTime, strconv.FormatInt(time.Since(sent).Milliseconds(), 10))
}
