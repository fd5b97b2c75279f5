// Package prodpki issues the certificates for the production mTLS hops to
// the Istio ingress gateway — from the Cloud Run frontend and from the machine
// caller (the apiclient job) — and writes them where each side takes them
// from: a Kubernetes Secret for the gateway's credentialName, and three files
// each for Secret Manager for the frontend and the job. It is
// the library behind cmd/certs; local/pki is its development counterpart and
// both issue through internal/certgen.
package prodpki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
)

// Defaults: the project's fixed names and a validity that makes rotation a
// yearly chore rather than a daily one. Renew leaves with CADir set.
const (
	DefaultClientURI    = "spiffe://acme.internal/ns/frontend/sa/frontend"
	DefaultMachineURI   = "spiffe://acme.internal/ns/jobs/sa/reporter"
	DefaultSecretName   = "api-gateway-mtls"
	DefaultNamespace    = "istio-ingress"
	DefaultCAValidity   = 5 * 365 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
)

// Config is what to issue and where to write it.
type Config struct {
	OutDir string // required
	// GatewayHosts are the names the frontend reaches the gateway by: the
	// internal load balancer's IP address and/or a host name. At least one.
	GatewayHosts []string
	ClientURI    string // the frontend's identity; default DefaultClientURI
	// MachineURI is the machine caller's identity, distinct from the
	// frontend's; default DefaultMachineURI.
	MachineURI string
	SecretName string // the Gateway's credentialName; default DefaultSecretName
	Namespace  string // the ingress gateway's namespace; default DefaultNamespace
	// CADir, when set, is an existing CA (tls.crt, tls.key) to sign with,
	// e.g. a previous run's OutDir/ca: leaves are renewed, trust unchanged.
	CADir                    string
	CAValidity, LeafValidity time.Duration
	Now                      func() time.Time // nil means time.Now
	Force                    bool             // replace existing output files
}

// Output paths, relative to OutDir.
const (
	caDir       = "ca"
	frontendDir = "frontend"
	machineDir  = "apiclient"
)

// SecretFile is the name of the gateway Secret's manifest in OutDir.
func (c Config) SecretFile() string { return c.SecretName + ".secret.yaml" }

func (c Config) withDefaults() (Config, error) {
	if c.OutDir == "" {
		return c, errors.New("OutDir is required")
	}
	if len(c.GatewayHosts) == 0 {
		return c, errors.New("GatewayHosts: give the gateway's IP address and/or host name")
	}
	for _, h := range c.GatewayHosts {
		if !certgen.ValidHost(h) {
			return c, fmt.Errorf("GatewayHosts: %q is neither an IP address nor a host name", h)
		}
	}
	if c.ClientURI == "" {
		c.ClientURI = DefaultClientURI
	}
	if u, err := url.Parse(c.ClientURI); err != nil || !u.IsAbs() || u.Host == "" {
		return c, fmt.Errorf("ClientURI %q is not an absolute URI such as %s", c.ClientURI, DefaultClientURI)
	}
	if c.MachineURI == "" {
		c.MachineURI = DefaultMachineURI
	}
	if u, err := url.Parse(c.MachineURI); err != nil || !u.IsAbs() || u.Host == "" {
		return c, fmt.Errorf("MachineURI %q is not an absolute URI such as %s", c.MachineURI, DefaultMachineURI)
	}
	if c.MachineURI == c.ClientURI {
		// The gateway's policy tells the frontend and the job apart by
		// certificate; one identity for both would merge their rules.
		return c, fmt.Errorf("MachineURI %q equals ClientURI: the machine caller needs its own identity", c.MachineURI)
	}
	if c.SecretName == "" {
		c.SecretName = DefaultSecretName
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.CAValidity == 0 {
		c.CAValidity = DefaultCAValidity
	}
	if c.LeafValidity == 0 {
		c.LeafValidity = DefaultLeafValidity
	}
	if c.LeafValidity < 0 || c.CAValidity <= c.LeafValidity {
		return c, fmt.Errorf("CAValidity %s must exceed LeafValidity %s, both positive", c.CAValidity, c.LeafValidity)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Issue issues the CA (unless CADir is given), the gateway's server
// certificate and the client certificates of the frontend and the machine
// caller, writes them under
// OutDir and returns the paths written. Without Force it refuses, before
// issuing anything, if any output file exists.
func Issue(cfg Config) ([]string, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("prodpki: %w", err)
	}
	secretPath := filepath.Join(cfg.OutDir, cfg.SecretFile())
	outputs := []string{secretPath}
	for _, dir := range []string{caDir, frontendDir, machineDir} {
		if dir == caDir && cfg.CADir != "" {
			continue // the CA is not copied again
		}
		for _, name := range []string{certgen.CertFile, certgen.KeyFile, certgen.CAFile} {
			outputs = append(outputs, filepath.Join(cfg.OutDir, dir, name))
		}
	}
	if !cfg.Force {
		for _, p := range outputs {
			if _, err := os.Lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("prodpki: %s exists; refusing to overwrite it without -force", p)
			}
		}
	}

	now := cfg.Now()
	ca, err := loadOrCreateCA(cfg, now)
	if err != nil {
		return nil, err
	}
	if ca.Cert.NotAfter.Before(now.Add(cfg.LeafValidity)) {
		return nil, fmt.Errorf("prodpki: the CA %q expires at %s, before a new certificate would; create a new CA",
			ca.Cert.Subject, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	leafValidity := certgen.For(now, cfg.LeafValidity)
	gateway, err := ca.IssueServer(cfg.GatewayHosts, leafValidity)
	if err != nil {
		return nil, fmt.Errorf("prodpki: issuing the gateway certificate: %w", err)
	}
	clientURI, _ := url.Parse(cfg.ClientURI) // validated
	frontend, err := ca.IssueClient("frontend", clientURI, leafValidity)
	if err != nil {
		return nil, fmt.Errorf("prodpki: issuing the frontend certificate: %w", err)
	}
	machineURI, _ := url.Parse(cfg.MachineURI) // validated
	machine, err := ca.IssueClient("apiclient", machineURI, leafValidity)
	if err != nil {
		return nil, fmt.Errorf("prodpki: issuing the machine caller's certificate: %w", err)
	}

	caPEM := certgen.Bundle(ca.Cert)
	if cfg.CADir == "" {
		if err := certgen.WriteDir(filepath.Join(cfg.OutDir, caDir), ca, caPEM); err != nil {
			return nil, fmt.Errorf("prodpki: %w", err)
		}
	}
	if err := certgen.WriteDir(filepath.Join(cfg.OutDir, frontendDir), frontend, caPEM); err != nil {
		return nil, fmt.Errorf("prodpki: %w", err)
	}
	if err := certgen.WriteDir(filepath.Join(cfg.OutDir, machineDir), machine, caPEM); err != nil {
		return nil, fmt.Errorf("prodpki: %w", err)
	}
	secret, err := GatewaySecret(cfg.SecretName, cfg.Namespace, gateway, caPEM)
	if err != nil {
		return nil, err
	}
	if err := certgen.WriteFileAtomic(secretPath, secret, 0o600); err != nil {
		return nil, fmt.Errorf("prodpki: %w", err)
	}
	return outputs, nil
}

func loadOrCreateCA(cfg Config, now time.Time) (*certgen.Pair, error) {
	if cfg.CADir == "" {
		ca, err := certgen.NewCA("acme frontend-gateway mTLS CA", certgen.For(now, cfg.CAValidity))
		if err != nil {
			return nil, fmt.Errorf("prodpki: creating the CA: %w", err)
		}
		return ca, nil
	}
	certPEM, err := os.ReadFile(filepath.Join(cfg.CADir, certgen.CertFile))
	if err != nil {
		return nil, fmt.Errorf("prodpki: reading the CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(cfg.CADir, certgen.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("prodpki: reading the CA: %w", err)
	}
	ca, err := certgen.ParsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("prodpki: the CA in %s: %w", cfg.CADir, err)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("prodpki: %s holds %q, which is not a CA", cfg.CADir, ca.Cert.Subject)
	}
	return ca, nil
}

// GatewaySecret renders the Secret an Istio Gateway server with tls.mode
// MUTUAL names in credentialName. Istio reads tls.crt, tls.key and ca.crt
// from one Secret of any type (ca.crt verifies client certificates); Opaque
// — kubectl's "generic" — is used as the project's manifests expect.
func GatewaySecret(name, namespace string, server *certgen.Pair, caPEM []byte) ([]byte, error) {
	s := corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			certgen.CertFile: server.CertPEM,
			certgen.KeyFile:  server.KeyPEM,
			certgen.CAFile:   caPEM,
		},
	}
	y, err := yaml.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("prodpki: rendering Secret %s/%s: %w", namespace, name, err)
	}
	header := "# Generated by cmd/certs. Holds the gateway's private key: apply it, never commit it.\n"
	return append([]byte(header), y...), nil
}
