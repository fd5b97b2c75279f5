package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

// listener is what the Gateway servers on one port ask of the connection:
// the servers, tried by SNI as Envoy's filter chain match does.
type listener struct {
	port    uint32
	tls     bool
	servers []*tlsServer
}

type tlsServer struct {
	where string   // for errors: "file: Gateway ns/name: spec.servers[i]"
	hosts []string // SNI names it answers; "*" answers any
	base  *tls.Config
	min   uint16
	max   uint16
	sans  []string
}

var tlsVersions = map[networking.ServerTLSSettings_TLSProtocol]uint16{
	networking.ServerTLSSettings_TLSV1_0: tls.VersionTLS10,
	networking.ServerTLSSettings_TLSV1_1: tls.VersionTLS11,
	networking.ServerTLSSettings_TLSV1_2: tls.VersionTLS12,
	networking.ServerTLSSettings_TLSV1_3: tls.VersionTLS13,
}

// newTLSServer turns one Gateway server's tls block into serving material.
// credentialName maps to a local directory in the Kubernetes TLS secret
// layout (tls.crt, tls.key, ca.crt); tlsdir follows rotations.
// https://istio.io/latest/docs/reference/config/networking/gateway/#ServerTLSSettings
func newTLSServer(where string, hosts []string, s *networking.ServerTLSSettings, open func(credentialName string) (*tlsdir.Dir, error)) (*tlsServer, error) {
	switch {
	case s.GetHttpsRedirect():
		return nil, fmt.Errorf("%s.tls.httpsRedirect is not supported by the local gateway", where)
	case s.GetServerCertificate() != "" || s.GetPrivateKey() != "" || s.GetCaCertificates() != "":
		return nil, fmt.Errorf("%s.tls: file paths (serverCertificate, privateKey, caCertificates) are not supported; use credentialName", where)
	case len(s.GetCredentialNames()) > 0 || len(s.GetTlsCertificates()) > 0 || s.GetCaCertCredentialName() != "":
		return nil, fmt.Errorf("%s.tls: credentialNames, tlsCertificates and caCertCredentialName are not supported; use credentialName", where)
	case s.GetCaCrl() != "":
		return nil, fmt.Errorf("%s.tls.caCrl is not supported by the local gateway", where)
	case len(s.GetVerifyCertificateSpki()) > 0 || len(s.GetVerifyCertificateHash()) > 0:
		return nil, fmt.Errorf("%s.tls: verifyCertificateSpki/Hash are not supported by the local gateway", where)
	case len(s.GetCipherSuites()) > 0:
		return nil, fmt.Errorf("%s.tls.cipherSuites is not supported by the local gateway", where)
	case s.GetInsecureSkipVerify().GetValue():
		return nil, fmt.Errorf("%s.tls.insecureSkipVerify is not supported by the local gateway", where)
	case s.GetCredentialName() == "":
		return nil, fmt.Errorf("%s.tls.credentialName is required", where)
	}
	var auth tls.ClientAuthType
	switch s.GetMode() {
	case networking.ServerTLSSettings_SIMPLE:
		auth = tls.NoClientCert
	case networking.ServerTLSSettings_MUTUAL:
		auth = tls.RequireAndVerifyClientCert
	case networking.ServerTLSSettings_OPTIONAL_MUTUAL:
		auth = tls.VerifyClientCertIfGiven
	default:
		return nil, fmt.Errorf("%s.tls.mode %s is not supported by the local gateway (SIMPLE, MUTUAL, OPTIONAL_MUTUAL)", where, s.GetMode())
	}
	if len(s.GetSubjectAltNames()) > 0 && auth == tls.NoClientCert {
		return nil, fmt.Errorf("%s.tls.subjectAltNames needs mode MUTUAL or OPTIONAL_MUTUAL", where)
	}
	dir, err := open(s.GetCredentialName())
	if err != nil {
		return nil, fmt.Errorf("%s.tls.credentialName %q: %w", where, s.GetCredentialName(), err)
	}
	ts := &tlsServer{
		where: where,
		base:  dir.ServerConfig(auth),
		// Istio's default minimum for gateways (meshConfig.tlsDefaults) is
		// TLS 1.2; TLS_AUTO means the default.
		min:  tls.VersionTLS12,
		max:  tls.VersionTLS13,
		sans: s.GetSubjectAltNames(),
	}
	if v, ok := tlsVersions[s.GetMinProtocolVersion()]; ok {
		ts.min = v
	}
	if v, ok := tlsVersions[s.GetMaxProtocolVersion()]; ok {
		ts.max = v
	}
	if ts.max < ts.min {
		return nil, fmt.Errorf("%s.tls: maxProtocolVersion is below minProtocolVersion", where)
	}
	for _, h := range hosts {
		if _, after, ok := strings.Cut(h, "/"); ok {
			h = after
		}
		ts.hosts = append(ts.hosts, strings.ToLower(h))
	}
	return ts, nil
}

// tlsConfig returns the listener's server config: each handshake is given to
// the server whose hosts match the SNI, as Istio's per-server filter chains
// (server_names from the server's hosts) do. A client that sends no SNI, or
// one no server answers, gets no handshake.
func (l *listener) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			sni := strings.ToLower(hello.ServerName)
			for _, s := range l.servers {
				if (sni != "" || slices.Contains(s.hosts, "*")) && hostMatches(s.hosts, sni) {
					return s.config(hello)
				}
			}
			return nil, fmt.Errorf("no gateway server for SNI %q", hello.ServerName)
		},
	}
}

func (s *tlsServer) config(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	cfg := s.base
	if cfg.GetConfigForClient != nil {
		c, err := cfg.GetConfigForClient(hello)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	cfg = cfg.Clone()
	cfg.MinVersion, cfg.MaxVersion = s.min, s.max
	if len(s.sans) > 0 {
		cfg.VerifyConnection = s.verifySANs
	}
	return cfg, nil
}

// verifySANs is subjectAltNames: the client certificate, already verified
// against ca.crt, must name one of them (DNS, URI, IP or email SAN).
func (s *tlsServer) verifySANs(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil // OPTIONAL_MUTUAL without a certificate
	}
	names := certSANs(cs.PeerCertificates[0])
	for _, want := range s.sans {
		if slices.Contains(names, want) {
			return nil
		}
	}
	return errors.New("client certificate names none of the gateway's subjectAltNames")
}

func certSANs(c *x509.Certificate) []string {
	names := slices.Clone(c.DNSNames)
	names = append(names, c.EmailAddresses...)
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// peerPrincipal is Istio's source.principal for a client certificate: its
// URI SAN without the spiffe:// scheme ("acme.internal/ns/frontend/sa/frontend").
func peerPrincipal(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	for _, u := range cs.PeerCertificates[0].URIs {
		if u.Scheme == "spiffe" {
			return strings.TrimPrefix(u.String(), "spiffe://")
		}
	}
	return ""
}
