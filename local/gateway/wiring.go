package gateway

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
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
	// JWKSOrigin ("http://127.0.0.1:9099") replaces the scheme and host of
	// every jwksUri: the Identity Platform emulator serves Google's key paths
	// on its own host, so only the origin differs.
	JWKSOrigin string
	// MeshConfig is the mesh config (LoadMeshConfig), and ExtAuthz the
	// local gRPC address of the decision service: every envoyExtAuthzGrpc
	// provider goes there, as on one machine there is one.
	MeshConfig *meshv1alpha1.MeshConfig
	ExtAuthz   string
	Logger     *slog.Logger
	Listener   net.Listener
}

// LocalConfig wires rs for one machine as Local describes. Every mapping is
// derived from the resources themselves, so istio/ stays the only place
// where credential names, destinations and key URLs are written down.
func LocalConfig(rs *Resources, l Local) (Config, error) {
	origin, err := url.Parse(l.JWKSOrigin)
	if err != nil || origin.Scheme == "" || origin.Host == "" || (origin.Path != "" && origin.Path != "/") {
		return Config{}, fmt.Errorf("gateway: Local.JWKSOrigin %q is not an origin such as http://127.0.0.1:9099", l.JWKSOrigin)
	}
	cfg := Config{
		Resources:    rs,
		Credentials:  map[string]string{},
		Upstreams:    map[string]string{},
		JWKSOverride: map[string]string{},
		HTTPClient:   &http.Client{Timeout: 5 * time.Second},
		Logger:       l.Logger,
		Listener:     l.Listener,
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
			u, err := url.Parse(r.GetJwksUri())
			if err != nil {
				return Config{}, fmt.Errorf("gateway: RequestAuthentication %s/%s jwksUri %q: %w", ra.Namespace, ra.Name, r.GetJwksUri(), err)
			}
			u.Scheme, u.Host = origin.Scheme, origin.Host
			cfg.JWKSOverride[r.GetJwksUri()] = u.String()
		}
	}
	return cfg, nil
}

// Overrides lists cfg's JWKS overrides as "from → to" lines in a stable
// order, for the start-up line that states the one local difference.
func (c Config) Overrides() []string {
	var out []string
	for from, to := range c.JWKSOverride {
		out = append(out, from+" → "+to)
	}
	sort.Strings(out)
	return out
}
