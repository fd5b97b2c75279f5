package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	keysFile = "signing-keys.json"
	// rsaBits matches the keys Google signs Identity Platform tokens with.
	rsaBits = 2048
	// certLifetime bounds the self-signed certificate wrapping each key in
	// the x509 PEM map; a key is rotated at load once less than certRenew of
	// it remains, so a long-lived state dir never serves an expired one.
	certLifetime = 365 * 24 * time.Hour
	certRenew    = 30 * 24 * time.Hour
)

// signingKey is one RS256 key. Retired is zero for the current key.
type signingKey struct {
	kid     string
	priv    *rsa.PrivateKey
	jwkPriv jwk.Key
	certPEM []byte
	created time.Time
	retired time.Time
}

type keyOnDisk struct {
	KID         string    `json:"kid"`
	PrivateKey  string    `json:"privateKey"` // PKCS #8 PEM
	Certificate string    `json:"certificate"`
	Created     time.Time `json:"created"`
	Retired     time.Time `json:"retired,omitzero"`
}

// keyRing holds the current signing key and the retired keys still within
// their grace period, persisted (mode 0600) in the state dir.
type keyRing struct {
	path  string
	grace time.Duration
	now   func() time.Time
	mu    sync.RWMutex
	keys  []*signingKey // oldest first; the last one is current
}

func loadKeyRing(dir string, grace time.Duration, now func() time.Time) (*keyRing, error) {
	kr := &keyRing{path: filepath.Join(dir, keysFile), grace: grace, now: now}
	b, err := os.ReadFile(kr.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return kr, kr.rotate()
	case err != nil:
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	var disk []keyOnDisk
	if err := json.Unmarshal(b, &disk); err != nil {
		return nil, fmt.Errorf("reading signing keys %s: %w", kr.path, err)
	}
	for _, d := range disk {
		k, err := keyFromDisk(d)
		if err != nil {
			return nil, fmt.Errorf("reading signing keys %s: key %s: %w", kr.path, d.KID, err)
		}
		kr.keys = append(kr.keys, k)
	}
	if len(kr.keys) == 0 || !kr.keys[len(kr.keys)-1].retired.IsZero() ||
		kr.keys[len(kr.keys)-1].created.Add(certLifetime-certRenew).Before(now()) {
		return kr, kr.rotate()
	}
	return kr, nil
}

func keyFromDisk(d keyOnDisk) (*signingKey, error) {
	blk, _ := pem.Decode([]byte(d.PrivateKey))
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("privateKey is not a PKCS #8 PEM block")
	}
	raw, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	priv, ok := raw.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want RSA", raw)
	}
	k := &signingKey{kid: d.KID, priv: priv, certPEM: []byte(d.Certificate), created: d.Created, retired: d.Retired}
	return k, k.initJWK()
}

func (k *signingKey) initJWK() error {
	j, err := jwk.Import(k.priv)
	if err != nil {
		return fmt.Errorf("importing key %s: %w", k.kid, err)
	}
	if err := j.Set(jwk.KeyIDKey, k.kid); err != nil {
		return err
	}
	if err := j.Set(jwk.AlgorithmKey, jwa.RS256()); err != nil {
		return err
	}
	k.jwkPriv = j
	return nil
}

// newSigningKey makes an RSA key, names it like Google does (40 hex digits,
// here from its public key's SHA-256) and wraps it in a self-signed
// certificate for the x509 PEM map.
func newSigningKey(now time.Time) (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return nil, fmt.Errorf("generating RSA key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	kid := hex.EncodeToString(sum[:20])
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "securetoken.system.gserviceaccount.com"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("self-signing certificate: %w", err)
	}
	k := &signingKey{
		kid:     kid,
		priv:    priv,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		created: now,
	}
	return k, k.initJWK()
}

// rotate adds a new current key, retires the previous one and forgets keys
// whose grace has passed. The new ring is on disk before it is used.
func (kr *keyRing) rotate() error {
	now := kr.now()
	k, err := newSigningKey(now)
	if err != nil {
		return err
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	var next []*signingKey
	for _, old := range kr.keys {
		cp := *old
		if cp.retired.IsZero() {
			cp.retired = now
		}
		if now.Sub(cp.retired) < kr.grace {
			next = append(next, &cp)
		}
	}
	next = append(next, k)
	if err := kr.save(next); err != nil {
		return err
	}
	kr.keys = next
	return nil
}

func (kr *keyRing) save(keys []*signingKey) error {
	disk := make([]keyOnDisk, 0, len(keys))
	for _, k := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.priv)
		if err != nil {
			return fmt.Errorf("encoding key %s: %w", k.kid, err)
		}
		disk = append(disk, keyOnDisk{
			KID:         k.kid,
			PrivateKey:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
			Certificate: string(k.certPEM),
			Created:     k.created,
			Retired:     k.retired,
		})
	}
	b, err := json.MarshalIndent(disk, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(kr.path, b, 0o600); err != nil {
		return fmt.Errorf("saving signing keys: %w", err)
	}
	return nil
}

func (kr *keyRing) current() *signingKey {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.keys[len(kr.keys)-1]
}

func (kr *keyRing) currentKID() string { return kr.current().kid }

// published returns the keys a verifier should accept now: the current one
// and the retired ones still in their grace period.
func (kr *keyRing) published() []*signingKey {
	now := kr.now()
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	var out []*signingKey
	for _, k := range kr.keys {
		if k.retired.IsZero() || now.Sub(k.retired) < kr.grace {
			out = append(out, k)
		}
	}
	return out
}

// publicSet is the JWKS: public halves only, with kid, alg and use.
func (kr *keyRing) publicSet() (jwk.Set, error) {
	set := jwk.NewSet()
	for _, k := range kr.published() {
		pub, err := jwk.PublicKeyOf(k.jwkPriv)
		if err != nil {
			return nil, fmt.Errorf("public key of %s: %w", k.kid, err)
		}
		if err := pub.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
			return nil, err
		}
		if err := set.AddKey(pub); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// sign makes a compact JWS of claims with the current key, its kid in the header.
func (kr *keyRing) sign(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	k := kr.current()
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, k.kid); err != nil {
		return "", err
	}
	if err := h.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	// The raw key, not k.jwkPriv: jwx would rebuild an rsa.PrivateKey from
	// the JWK for every signature and redo its CRT precomputation.
	tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", fmt.Errorf("signing with %s: %w", k.kid, err)
	}
	return string(tok), nil
}
