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
	"slices"
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

// signingKey is one RS256 key in one of three states: next (published, not
// yet signing), current (signing; retired is zero), or retired (still
// published until its grace has passed).
type signingKey struct {
	kid     string
	priv    *rsa.PrivateKey
	jwkPriv jwk.Key
	certPEM []byte
	created time.Time
	retired time.Time
	next    bool
}

type keyOnDisk struct {
	KID         string    `json:"kid"`
	PrivateKey  string    `json:"privateKey"` // PKCS #8 PEM
	Certificate string    `json:"certificate"`
	Created     time.Time `json:"created"`
	Retired     time.Time `json:"retired,omitzero"`
	Next        bool      `json:"next,omitempty"`
}

// keyRing holds the signing keys, persisted (mode 0600) in the state dir:
// the retired keys still within their grace period, the current key, and the
// next key, oldest first.
//
// Publishing the next key is how rotation works without a gap for verifiers
// that cache keys: it is in the JWKS and the x509 map from the moment it is
// made, a whole rotation before it signs anything, so a verifier that fetched
// either document at any time since the previous rotation already holds the
// key that the next rotation promotes. Real verifiers do not refetch for an
// unknown kid: istiod refreshes the keys it inlines into Envoy every 20
// minutes, Envoy's remote JWKS is kept for its 5 minute cache_duration, and
// the Firebase Admin SDKs keep the x509 map for the response's max-age (hours
// on Google's endpoints) and otherwise answer "invalid signature". Google's
// keys must therefore be published at least that long before they sign, and
// the emulator behaves the same way.
type keyRing struct {
	path  string
	grace time.Duration
	now   func() time.Time
	mu    sync.RWMutex
	keys  []*signingKey // oldest first: retired..., current, next
}

func loadKeyRing(dir string, grace time.Duration, now func() time.Time) (*keyRing, error) {
	kr := &keyRing{path: filepath.Join(dir, keysFile), grace: grace, now: now}
	// A write the process died in leaves a copy of the private keys behind.
	if err := removeAtomicLeftovers(kr.path); err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
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
	switch {
	case wellFormed(kr.keys):
	case wellFormed(append(kr.keys[:len(kr.keys):len(kr.keys)], &signingKey{next: true})):
		// A state dir from before next keys were published: keep signing
		// with its current key, and publish a next one from now on.
		if err := kr.addNext(); err != nil {
			return nil, err
		}
	default:
		// No current key, or a file edited by hand: start a proper ring,
		// keeping what is still within its grace so that tokens already
		// issued keep verifying.
		if err := kr.rotate(); err != nil {
			return nil, err
		}
	}
	// A key whose certificate nears its end is rotated out at load. The next
	// key may be as old as the current one (a state dir unused for a year),
	// so a second rotation may be needed; a third never is: it promotes a
	// key made by the first.
	for range 2 {
		if !kr.currentLocked().created.Add(certLifetime - certRenew).Before(now()) {
			break
		}
		if err := kr.rotate(); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// wellFormed reports whether keys are retired keys followed by exactly one
// current and one next key.
func wellFormed(keys []*signingKey) bool {
	n := len(keys)
	if n < 2 || !keys[n-1].next || !keys[n-1].retired.IsZero() ||
		keys[n-2].next || !keys[n-2].retired.IsZero() {
		return false
	}
	for _, k := range keys[:n-2] {
		if k.next || k.retired.IsZero() {
			return false
		}
	}
	return true
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
	k := &signingKey{kid: d.KID, priv: priv, certPEM: []byte(d.Certificate), created: d.Created, retired: d.Retired, next: d.Next}
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

// rotate promotes the next key to current, retires the current one, makes
// and publishes a new next key, and forgets keys whose grace has passed. The
// new ring is on disk before it is used. On a ring without a next key (the
// first start) it makes both.
func (kr *keyRing) rotate() error {
	now := kr.now()
	fresh, err := newSigningKey(now)
	if err != nil {
		return err
	}
	fresh.next = true
	// Made before taking the lock, as RSA key generation takes a while: a
	// current key for a ring that has no next key to promote.
	var cur *signingKey
	if !kr.hasNext() {
		if cur, err = newSigningKey(now); err != nil {
			return err
		}
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	var ring []*signingKey
	promoted := false
	for _, old := range kr.keys {
		cp := *old
		switch {
		case cp.next && !promoted:
			cp.next, cp.retired, promoted = false, time.Time{}, true
		case cp.next, cp.retired.IsZero():
			// The current key; or a second next key in a hand-edited file,
			// retired at once since it never signed.
			cp.next, cp.retired = false, now
		}
		if cp.retired.IsZero() || now.Sub(cp.retired) < kr.grace {
			ring = append(ring, &cp)
		}
	}
	if !promoted {
		ring = append(ring, cur)
	}
	ring = append(ring, fresh)
	// The promoted key must sit just before the next one, after any key
	// that was current before it and has just been retired.
	sortRing(ring)
	if err := kr.save(ring); err != nil {
		return err
	}
	kr.keys = ring
	return nil
}

func (kr *keyRing) hasNext() bool {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return slices.ContainsFunc(kr.keys, func(k *signingKey) bool { return k.next })
}

// addNext publishes a new next key on a ring that has none.
func (kr *keyRing) addNext() error {
	fresh, err := newSigningKey(kr.now())
	if err != nil {
		return err
	}
	fresh.next = true
	kr.mu.Lock()
	defer kr.mu.Unlock()
	ring := append(slices.Clone(kr.keys), fresh)
	if err := kr.save(ring); err != nil {
		return err
	}
	kr.keys = ring
	return nil
}

// sortRing orders keys retired (oldest retirement first), current, next,
// keeping the relative order of keys in the same state.
func sortRing(keys []*signingKey) {
	rank := func(k *signingKey) int {
		switch {
		case k.next:
			return 2
		case k.retired.IsZero():
			return 1
		}
		return 0
	}
	slices.SortStableFunc(keys, func(a, b *signingKey) int {
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		return a.retired.Compare(b.retired)
	})
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
			Next:        k.next,
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

// current is the key that signs now.
func (kr *keyRing) current() *signingKey {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.currentLocked()
}

func (kr *keyRing) currentLocked() *signingKey { return kr.keys[len(kr.keys)-2] }

func (kr *keyRing) currentKID() string { return kr.current().kid }

// nextKID is the kid of the key the next rotation promotes, already published.
func (kr *keyRing) nextKID() string {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.keys[len(kr.keys)-1].kid
}

// published returns the keys a verifier should accept now: the next key,
// the current one and the retired ones still in their grace period.
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
