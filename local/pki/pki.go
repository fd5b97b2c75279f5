// Package pki is the development PKI that lets the local stack speak real
// mutual TLS between the frontend and the gateway without any setup: Ensure
// creates, on first use, a dev CA, the gateway's server certificate and the
// client certificates of the frontend and of the machine caller (cmd/apiclient)
// under a state directory, reuses them on later runs, and renews them when
// under a third of their life remains.
//
// Layout, each directory in the Kubernetes TLS secret layout (see
// internal/tlsdir, which reads it):
//
//	<dir>/ca/        the dev CA (tls.key is its signing key)
//	<dir>/gateway/   server certificate; ca.crt verifies client certificates
//	<dir>/frontend/  client certificate; ca.crt verifies the gateway
//	<dir>/apiclient/ the machine caller's client certificate, its own identity
//
// When the CA is renewed, ca.crt holds the new CA and the previous one until
// it expires, so a peer that has not yet picked up its new certificate is
// still trusted.
package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
)

// Defaults for the zero values of Config.
const (
	DefaultClientURI = "spiffe://acme.internal/ns/frontend/sa/frontend"
	// DefaultMachineURI is the machine caller's identity: a workload, not the
	// frontend, so the gateway can tell the two apart by certificate.
	DefaultMachineURI   = "spiffe://acme.internal/ns/jobs/sa/reporter"
	DefaultLeafValidity = 72 * time.Hour
	DefaultCAValidity   = 30 * 24 * time.Hour
)

// Config says where the dev PKI lives and what it certifies.
type Config struct {
	Dir string // required; created if missing
	// GatewayHosts are names for the gateway's certificate besides
	// localhost, 127.0.0.1 and ::1, which are always in it: DNS names such
	// as "api.internal.example" or IP addresses.
	GatewayHosts []string
	// ClientURI is the frontend's identity, the URI SAN of its certificate;
	// default DefaultClientURI.
	ClientURI string
	// MachineURI is the machine caller's identity, the URI SAN of the
	// apiclient certificate; default DefaultMachineURI. It must differ from
	// ClientURI.
	MachineURI string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LeafValidity and CAValidity default to DefaultLeafValidity and
	// DefaultCAValidity; the CA must outlive a leaf.
	LeafValidity, CAValidity time.Duration
}

// Bundle is where the dev PKI's material is, and what Ensure did.
type Bundle struct {
	CADir, GatewayDir, FrontendDir string
	// MachineDir holds the machine caller's client certificate.
	MachineDir string
	// Issued names what this call created or renewed: "ca", "gateway",
	// "frontend", "apiclient"; empty when everything on disk was reused.
	Issued []string
	// RenewAt is when the first certificate becomes due for renewal: a
	// long-running process calls Ensure again then.
	RenewAt time.Time
}

// loopbackHosts are always in the gateway's certificate: the local stack
// reaches the gateway on loopback.
var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, errors.New("pki: Config.Dir is required")
	}
	if c.ClientURI == "" {
		c.ClientURI = DefaultClientURI
	}
	if u, err := url.Parse(c.ClientURI); err != nil || !u.IsAbs() || u.Host == "" {
		return c, fmt.Errorf("pki: Config.ClientURI %q is not an absolute URI such as %s", c.ClientURI, DefaultClientURI)
	}
	if c.MachineURI == "" {
		c.MachineURI = DefaultMachineURI
	}
	if u, err := url.Parse(c.MachineURI); err != nil || !u.IsAbs() || u.Host == "" {
		return c, fmt.Errorf("pki: Config.MachineURI %q is not an absolute URI such as %s", c.MachineURI, DefaultMachineURI)
	}
	if c.MachineURI == c.ClientURI {
		// The gateway admits each by its certificate: one identity for both
		// would let a machine token ride the frontend's rule and vice versa.
		return c, fmt.Errorf("pki: Config.MachineURI %q is the frontend's Config.ClientURI; give the machine caller its own identity", c.MachineURI)
	}
	// The gateway's names, loopback first, IPs in canonical form, so that
	// comparing them with a certificate's SANs is exact.
	hosts := slices.Clone(loopbackHosts)
	for _, h := range c.GatewayHosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		} else if !certgen.ValidHost(h) {
			return c, fmt.Errorf("pki: Config.GatewayHosts: %q is neither an IP address nor a DNS name", h)
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	c.GatewayHosts = hosts
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LeafValidity == 0 {
		c.LeafValidity = DefaultLeafValidity
	}
	if c.CAValidity == 0 {
		c.CAValidity = DefaultCAValidity
	}
	if c.LeafValidity < 0 {
		return c, fmt.Errorf("pki: Config.LeafValidity %s is negative", c.LeafValidity)
	}
	if c.CAValidity <= c.LeafValidity {
		return c, fmt.Errorf("pki: Config.CAValidity %s must exceed Config.LeafValidity %s", c.CAValidity, c.LeafValidity)
	}
	return c, nil
}

// Ensure makes the dev PKI in cfg.Dir current: it reuses what is valid and
// matches cfg, and issues the rest. It is not safe to run concurrently on the
// same directory from two processes.
func Ensure(cfg Config) (*Bundle, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	now := cfg.Now()
	b := &Bundle{
		CADir:       filepath.Join(cfg.Dir, "ca"),
		GatewayDir:  filepath.Join(cfg.Dir, "gateway"),
		FrontendDir: filepath.Join(cfg.Dir, "frontend"),
		MachineDir:  filepath.Join(cfg.Dir, "apiclient"),
	}

	ca, trustPEM, caRenewAt, err := ensureCA(b, cfg, now)
	if err != nil {
		return nil, err
	}
	b.RenewAt = caRenewAt

	clientURI, _ := url.Parse(cfg.ClientURI)   // validated above
	machineURI, _ := url.Parse(cfg.MachineURI) // validated above
	hosts := cfg.GatewayHosts                  // loopback included, see withDefaults
	leaves := []struct {
		name, dir string
		matches   func(*x509.Certificate) bool
		issue     func() (*certgen.Pair, error)
	}{
		{
			name: "gateway", dir: b.GatewayDir,
			matches: func(c *x509.Certificate) bool { return sameHosts(c, hosts) && hasUsage(c, x509.ExtKeyUsageServerAuth) },
			issue:   func() (*certgen.Pair, error) { return ca.IssueServer(hosts, certgen.For(now, cfg.LeafValidity)) },
		},
		{
			name: "frontend", dir: b.FrontendDir,
			matches: func(c *x509.Certificate) bool {
				return len(c.URIs) == 1 && c.URIs[0].String() == cfg.ClientURI && hasUsage(c, x509.ExtKeyUsageClientAuth)
			},
			issue: func() (*certgen.Pair, error) {
				return ca.IssueClient("frontend", clientURI, certgen.For(now, cfg.LeafValidity))
			},
		},
		{
			name: "apiclient", dir: b.MachineDir,
			matches: func(c *x509.Certificate) bool {
				return len(c.URIs) == 1 && c.URIs[0].String() == cfg.MachineURI && hasUsage(c, x509.ExtKeyUsageClientAuth)
			},
			issue: func() (*certgen.Pair, error) {
				return ca.IssueClient("apiclient", machineURI, certgen.For(now, cfg.LeafValidity))
			},
		},
	}
	for _, l := range leaves {
		cur, err := readPair(l.dir)
		reuse := err == nil && l.matches(cur.Cert) && cur.Cert.CheckSignatureFrom(ca.Cert) == nil &&
			!now.Before(cur.Cert.NotBefore) && now.Before(renewAt(cur.Cert, 0)) &&
			bytes.Equal(readFile(filepath.Join(l.dir, certgen.CAFile)), trustPEM)
		if !reuse {
			if cur, err = l.issue(); err != nil {
				return nil, fmt.Errorf("pki: issuing the %s certificate: %w", l.name, err)
			}
			if err := certgen.WriteDir(l.dir, cur, trustPEM); err != nil {
				return nil, fmt.Errorf("pki: %w", err)
			}
			b.Issued = append(b.Issued, l.name)
		}
		if at := renewAt(cur.Cert, 0); at.Before(b.RenewAt) {
			b.RenewAt = at
		}
	}
	return b, nil
}

// ensureCA returns the CA to sign with and the trust bundle (ca.crt) every
// directory gets, renewing the CA when under a third of its life — or less
// than a leaf's — remains.
func ensureCA(b *Bundle, cfg Config, now time.Time) (ca *certgen.Pair, trustPEM []byte, renew time.Time, err error) {
	caFile := filepath.Join(b.CADir, certgen.CAFile)
	old, err := readPair(b.CADir)
	if err == nil && old.Cert.IsCA && !now.Before(old.Cert.NotBefore) && now.Before(renewAt(old.Cert, cfg.LeafValidity)) {
		// Reuse; keep in the trust bundle only what has not expired.
		trust, _ := certgen.ParseCerts(readFile(caFile))
		trust = slices.DeleteFunc(trust, func(c *x509.Certificate) bool { return !now.Before(c.NotAfter) })
		if !slices.ContainsFunc(trust, old.Cert.Equal) {
			trust = append([]*x509.Certificate{old.Cert}, trust...)
		}
		trustPEM = certgen.Bundle(trust...)
		if !bytes.Equal(trustPEM, readFile(caFile)) {
			if err := certgen.WriteFileAtomic(caFile, trustPEM, 0o644); err != nil {
				return nil, nil, time.Time{}, fmt.Errorf("pki: %w", err)
			}
		}
		return old, trustPEM, renewAt(old.Cert, cfg.LeafValidity), nil
	}

	ca, err = certgen.NewCA("acme dev CA", certgen.For(now, cfg.CAValidity))
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("pki: creating the dev CA: %w", err)
	}
	trust := []*x509.Certificate{ca.Cert}
	if old != nil && old.Cert.IsCA && now.Before(old.Cert.NotAfter) {
		// Peers holding certificates from the old CA stay trusted until
		// they pick up their re-issued ones.
		trust = append(trust, old.Cert)
	}
	trustPEM = certgen.Bundle(trust...)
	if err := certgen.WriteDir(b.CADir, ca, trustPEM); err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("pki: %w", err)
	}
	b.Issued = append(b.Issued, "ca")
	return ca, trustPEM, renewAt(ca.Cert, cfg.LeafValidity), nil
}

// renewAt is when c is due for renewal: when a third of its life remains,
// or earlier if less than minRemaining would be left.
func renewAt(c *x509.Certificate, minRemaining time.Duration) time.Time {
	before := max(c.NotAfter.Sub(c.NotBefore)/3, minRemaining)
	return c.NotAfter.Add(-before)
}

func readPair(dir string) (*certgen.Pair, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, certgen.CertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, certgen.KeyFile))
	if err != nil {
		return nil, err
	}
	return certgen.ParsePair(certPEM, keyPEM)
}

// readFile returns the file's content, or nil if it cannot be read: callers
// only compare it with what it should be.
func readFile(name string) []byte {
	b, _ := os.ReadFile(name)
	return b
}

func sameHosts(c *x509.Certificate, hosts []string) bool {
	var have []string
	have = append(have, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		have = append(have, ip.String())
	}
	want := slices.Clone(hosts)
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

func hasUsage(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	return slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{u})
}
