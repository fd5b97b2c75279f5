package google

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
)

const (
	stateFile = "google-keys.json"
	// rsaBits is what Google's service-account keys and token-signing keys use.
	rsaBits = 2048
)

// account is one service account: its numeric unique id (the sub of its
// tokens) and the key pair of its one key file.
type account struct {
	email    string
	uniqueID string
	keyID    string // private_key_id in the key file, kid of its assertions
	priv     *rsa.PrivateKey
}

// signer is the stand-in's own token-signing key, published in the JWKS.
type signer struct {
	kid  string
	priv *rsa.PrivateKey
	pub  jwk.Key // public JWK with kid, alg and use set
}

type state struct {
	signer   *signer
	accounts []*account        // in Config order
	users    map[string]string // refresh token → user email
}

type stateOnDisk struct {
	SigningKey keyOnDisk       `json:"signingKey"`
	Accounts   []accountOnDisk `json:"accounts"`
	Users      []userOnDisk    `json:"users,omitempty"`
}

// userOnDisk is a person who may impersonate the service accounts, and the
// refresh token of their gcloud login (what an ADC file holds).
type userOnDisk struct {
	Email        string `json:"email"`
	RefreshToken string `json:"refreshToken"`
}

type keyOnDisk struct {
	KID        string `json:"kid"`
	PrivateKey string `json:"privateKey"` // PKCS #8 PEM
}

type accountOnDisk struct {
	Email    string    `json:"email"`
	UniqueID string    `json:"uniqueId"`
	Key      keyOnDisk `json:"key"`
}

// loadState reads the state file, adds what emails lack, and drops accounts
// no longer configured (their key files then get "account not found", as a
// deleted service account's do). It writes the file back (0600, atomically)
// only when something changed.
func loadState(dir string, emails, users []string) (*state, error) {
	// 0700: the directory holds private keys.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state dir: %w", err)
	}
	path := filepath.Join(dir, stateFile)
	var disk stateOnDisk
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", path, err)
	default:
		if err := json.Unmarshal(b, &disk); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
	}
	changed := false
	st := &state{}
	if disk.SigningKey.PrivateKey == "" {
		k, err := newKey()
		if err != nil {
			return nil, err
		}
		disk.SigningKey, changed = k, true
	}
	if st.signer, err = signerFrom(disk.SigningKey); err != nil {
		return nil, fmt.Errorf("reading %s: signing key: %w", path, err)
	}
	old := map[string]accountOnDisk{}
	for _, a := range disk.Accounts {
		old[a.Email] = a
	}
	var kept []accountOnDisk
	for _, email := range emails {
		a, ok := old[email]
		if !ok {
			k, err := newKey()
			if err != nil {
				return nil, err
			}
			a, changed = accountOnDisk{Email: email, UniqueID: newUniqueID(), Key: k}, true
		}
		priv, err := parseKey(a.Key.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("reading %s: key of %s: %w", path, email, err)
		}
		st.accounts = append(st.accounts, &account{email: email, uniqueID: a.UniqueID, keyID: a.Key.KID, priv: priv})
		kept = append(kept, a)
	}
	if len(kept) != len(disk.Accounts) {
		changed = true
	}
	oldUsers := map[string]string{}
	for _, u := range disk.Users {
		oldUsers[u.Email] = u.RefreshToken
	}
	st.users = map[string]string{}
	var keptUsers []userOnDisk
	for _, email := range users {
		tok, ok := oldUsers[email]
		if !ok {
			tok, changed = "1//"+randomToken(), true // shaped like Google's refresh tokens
		}
		st.users[tok] = email
		keptUsers = append(keptUsers, userOnDisk{Email: email, RefreshToken: tok})
	}
	if len(keptUsers) != len(disk.Users) {
		changed = true
	}
	if changed {
		disk.Accounts, disk.Users = kept, keptUsers
		out, err := json.MarshalIndent(disk, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := certgen.WriteFileAtomic(path, out, 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return st, nil
}

// newKey makes an RSA key with a kid shaped like Google's: 40 hex digits.
func newKey() (keyOnDisk, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return keyOnDisk{}, fmt.Errorf("generating a key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return keyOnDisk{}, err
	}
	kid := make([]byte, 20)
	rand.Read(kid) // never fails; see crypto/rand.Read
	return keyOnDisk{
		KID:        hex.EncodeToString(kid),
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}, nil
}

func parseKey(p string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an RSA key", k)
	}
	return rk, nil
}

func signerFrom(k keyOnDisk) (*signer, error) {
	priv, err := parseKey(k.PrivateKey)
	if err != nil {
		return nil, err
	}
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]any{
		jwk.KeyIDKey: k.KID, jwk.AlgorithmKey: jwa.RS256(), jwk.KeyUsageKey: jwk.ForSignature,
	} {
		if err := pub.Set(name, v); err != nil {
			return nil, err
		}
	}
	return &signer{kid: k.KID, priv: priv, pub: pub}, nil
}

// randomToken is 256 random bits, base64url: an unguessable opaque token.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails; see crypto/rand.Read
	return base64.RawURLEncoding.EncodeToString(b)
}

// newUniqueID is a service account's numeric unique id: 21 decimal digits,
// as Google's are (the oauth2ClientId of a service account).
func newUniqueID() string {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(20), nil) // 10^20
	n, _ := rand.Int(rand.Reader, new(big.Int).Mul(lo, big.NewInt(9)))
	return n.Add(n, lo).String()
}
