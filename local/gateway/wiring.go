package gateway

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// Local is how one machine stands in for the cluster around the gateway.
type Local struct {
	// CredentialDir holds the gateway's TLS material (the dev PKI's gateway
	// directory); every credentialName in the Gateways is served from it.
	CredentialDir string
	// Upstream is the address every route destination goes to: on one
	// machine there is one backend.
	Upstream string
	// JWKS maps each token issuer in istio/ to the local stand-in's key set
	// that replaces its jwksUri: Identity Platform's issuer
	// (https://securetoken.google.com/PROJECT) to the identity emulator's,
	// https://accounts.google.com to local/google's CertsURL. A JWT rule
	// whose issuer is missing here is an error: the gateway would otherwise
	// fetch Google's real keys, and no local token would verify.
	JWKS map[string]string
	// MeshConfig is the mesh config (LoadMeshConfig), and ExtAuthz the
	// local gRPC address of the decision service: every envoyExtAuthzGrpc
	// provider goes there, as on one machine there is one.
	MeshConfig *meshv1alpha1.MeshConfig
	ExtAuthz   string
	Logger     *slog.Logger
}

// LocalConfig wires rs for one machine as Local describes. Every mapping is
// derived from the resources themselves, so istio/ stays the only place
// where credential names, destinations and key URLs are written down.
func LocalConfig(rs *Resources, l Local) (Config, error) {
	for iss, to := range l.JWKS {
		if u, err := url.Parse(to); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, fmt.Errorf("gateway: Local.JWKS[%q] = %q is not an http(s) URL", iss, to)
		}
	}
	cfg := Config{
		Resources:    rs,
		Credentials:  map[string]string{},
		Upstreams:    map[string]string{},
		JWKSOverride: map[string]string{},
		HTTPClient:   &http.Client{Timeout: 5 * time.Second},
		Logger:       l.Logger,
		MeshConfig:   l.MeshConfig,
		ExtAuthz:     map[string]string{},
	}
	for _, p := range l.MeshConfig.GetExtensionProviders() {
		if g := p.GetEnvoyExtAuthzGrpc(); g != nil && l.ExtAuthz != "" {
			cfg.ExtAuthz[net.JoinHostPort(g.GetService(), strconv.Itoa(int(g.GetPort())))] = l.ExtAuthz
		}
	}
	for _, g := range rs.Gateways {
		for _, s := range g.Spec.GetServers() {
			if name := s.GetTls().GetCredentialName(); name != "" {
				cfg.Credentials[name] = l.CredentialDir
			}
		}
	}
	for _, vs := range rs.VirtualServices {
		for _, hr := range vs.Spec.GetHttp() {
			for _, d := range hr.GetRoute() {
				dst := d.GetDestination()
				key := dst.GetHost()
				if p := dst.GetPort().GetNumber(); p != 0 {
					key = net.JoinHostPort(key, strconv.Itoa(int(p)))
				}
				cfg.Upstreams[key] = l.Upstream
			}
		}
	}
	for _, ra := range rs.RequestAuthentications {
		for _, r := range ra.Spec.GetJwtRules() {
			if r.GetJwksUri() == "" {
				continue
			}
			to, ok := l.JWKS[r.GetIssuer()]
			if !ok {
				return Config{}, fmt.Errorf("gateway: RequestAuthentication %s/%s: no local key set for issuer %q in Local.JWKS",
					ra.Namespace, ra.Name, r.GetIssuer())
			}
			if prev, ok := cfg.JWKSOverride[r.GetJwksUri()]; ok && prev != to {
				return Config{}, fmt.Errorf("gateway: jwksUri %q serves two issuers mapped to different local key sets (%s, %s)", r.GetJwksUri(), prev, to)
			}
			cfg.JWKSOverride[r.GetJwksUri()] = to
		}
	}
	return cfg, nil
}

// Overrides lists cfg's JWKS overrides as "issuer I: jwksUri from → to"
// lines in a stable order, for the start-up lines that state the one local
// difference, issuer by issuer.
func (c Config) Overrides() []string {
	var out []string
	seen := map[string]bool{}
	if c.Resources != nil {
		for _, ra := range c.Resources.RequestAuthentications {
			for _, r := range ra.Spec.GetJwtRules() {
				to, ok := c.JWKSOverride[r.GetJwksUri()]
				if !ok || seen[r.GetIssuer()+" "+r.GetJwksUri()] {
					continue
				}
				seen[r.GetIssuer()+" "+r.GetJwksUri()] = true
				out = append(out, "issuer "+r.GetIssuer()+": jwksUri "+r.GetJwksUri()+" → "+to)
			}
		}
	}
	sort.Strings(out)
	return out
}

// KeysAt is a Local.JWKS for one stand-in serving every issuer's key path on
// its own origin, as the identity emulator serves Google's: each jwksUri in rs
// with its scheme and host replaced by origin's. For callers that are users
// only (load tools, component tests): a workload's Google ID token finds no
// key of its issuer there and is refused, as a token of an unknown key is.
func KeysAt(rs *Resources, origin string) map[string]string {
	m := map[string]string{}
	for _, ra := range rs.RequestAuthentications {
		for _, r := range ra.Spec.GetJwtRules() {
			if u, err := url.Parse(r.GetJwksUri()); err == nil && r.GetJwksUri() != "" {
				m[r.GetIssuer()] = strings.TrimSuffix(origin, "/") + u.EscapedPath()
			}
		}
	}
	return m
}
