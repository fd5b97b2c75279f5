// Package certgen issues the certificates this project's mTLS hop needs — a
// CA, a server certificate for the Istio ingress gateway and a client
// certificate for the frontend — and writes them in the Kubernetes TLS secret
// layout (tls.crt, tls.key, ca.crt). The dev PKI (local/pki) and the
// production tool (cmd/certs) share it, so both issue exactly the same shape
// of certificate: ECDSA P-256, SHA-256, the key usages Envoy and Go check.
package certgen

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names of the Kubernetes TLS secret layout. Istio reads the same keys
// from a generic secret named by a Gateway's credentialName.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// Pair is a certificate and its private key, parsed and PEM-encoded.
type Pair struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte // PKCS #8, "PRIVATE KEY"
}

// Validity is the interval a certificate is valid in.
type Validity struct {
	NotBefore, NotAfter time.Time
}

// For returns the validity of a certificate issued at now for d. NotBefore is
// set a few minutes back so that a peer whose clock is slightly behind does
// not reject a certificate issued a moment ago.
func For(now time.Time, d time.Duration) Validity {
	return Validity{NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(d)}
}

// NewCA creates a self-signed CA that may sign leaf certificates only
// (MaxPathLen 0): a dedicated CA per purpose limits what a leaked key can do.
func NewCA(commonName string, v Validity) (*Pair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return issue(tmpl, v, nil)
}

// IssueServer issues a TLS server certificate for hosts, each a DNS name or
// an IP address. The first host becomes the subject's common name, which only
// humans read: clients match the SANs.
func (ca *Pair) IssueServer(hosts []string, v Validity) (*Pair, error) {
	if len(hosts) == 0 {
		return nil, errors.New("certgen: a server certificate needs at least one host")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if !ValidHost(h) {
			return nil, fmt.Errorf("certgen: %q is neither an IP address nor a DNS name", h)
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return issue(tmpl, v, ca)
}

// ValidHost reports whether h can be a server certificate's SAN: an IP
// address or a DNS name (a leading "*." for a wildcard allowed).
func ValidHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimPrefix(h, "*."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// IssueClient issues a TLS client certificate whose identity is uri, e.g. the
// SPIFFE ID spiffe://acme.internal/ns/frontend/sa/frontend: Istio derives the
// peer principal an AuthorizationPolicy matches from the URI SAN.
func (ca *Pair) IssueClient(commonName string, uri *url.URL, v Validity) (*Pair, error) {
	if uri == nil || !uri.IsAbs() {
		return nil, fmt.Errorf("certgen: client identity %v is not an absolute URI", uri)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{uri},
	}
	return issue(tmpl, v, ca)
}

// issue signs tmpl with parent, or self-signs it when parent is nil.
func issue(tmpl *x509.Certificate, v Validity, parent *Pair) (*Pair, error) {
	if !v.NotBefore.Before(v.NotAfter) {
		return nil, fmt.Errorf("certgen: validity ends (%s) before it starts (%s)", v.NotAfter, v.NotBefore)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certgen: generating key: %w", err)
	}
	// 128 random bits: serials must be unique per CA and unpredictable.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certgen: generating serial: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = v.NotBefore, v.NotAfter
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.Key, parent.Cert
		// A leaf must not outlive its CA: verifiers would reject it anyway.
		if tmpl.NotAfter.After(parent.Cert.NotAfter) {
			tmpl.NotAfter = parent.Cert.NotAfter
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("certgen: signing %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certgen: parsing the certificate just signed: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certgen: encoding key: %w", err)
	}
	return &Pair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// ParsePair parses a PEM certificate (the first one, when tls.crt holds a
// chain) and its PEM private key, and checks that they belong together.
func ParsePair(certPEM, keyPEM []byte) (*Pair, error) {
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM private key found")
	}
	var k any
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q for a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want ECDSA", k)
	}
	if !key.PublicKey.Equal(certs[0].PublicKey) {
		return nil, fmt.Errorf("private key does not match certificate %q", certs[0].Subject)
	}
	return &Pair{Cert: certs[0], Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// ParseCerts parses every PEM certificate in data; it needs at least one.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// WriteDir writes p and the trust bundle caPEM into dir in the TLS secret
// layout. Each file is replaced atomically (temporary file, fsync, rename), so
// a reader never sees a torn file; the private key is created mode 0600. The
// key is written before the certificate, and a reader that catches the two
// out of step sees a mismatch it can refuse (internal/tlsdir does).
func WriteDir(dir string, p *Pair, caPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CAFile, caPEM, 0o644},
		{KeyFile, p.KeyPEM, 0o600},
		{CertFile, p.CertPEM, 0o644},
	}
	for _, f := range files {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// WriteFileAtomic replaces name with data: written to a temporary file in the
// same directory with mode perm from the start, synced, then renamed over
// name, so the file is always either the old or the new content.
func WriteFileAtomic(name string, data []byte, perm os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file 0600; widen it only where asked.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// Bundle concatenates PEM certificates into one trust bundle (ca.crt).
func Bundle(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}
