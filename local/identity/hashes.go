package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

// Imported password hashes (accounts:batchCreate, the Admin SDK's
// ImportUsers) keep the algorithm and parameters they came with, so that
// imported users sign in with their old passwords, as on Identity Platform
// (https://firebase.google.com/docs/auth/admin/import-users). They are
// stored as "$import$" + base64(JSON of importedHash).
const importedPrefix = "$import$"

type importedHash struct {
	Alg     string `json:"alg"`
	Hash    []byte `json:"hash"`
	Salt    []byte `json:"salt,omitempty"`
	Key     []byte `json:"key,omitempty"`     // HMAC key, or the Firebase scrypt signer key
	SaltSep []byte `json:"saltSep,omitempty"` // Firebase scrypt
	Rounds  int    `json:"rounds,omitempty"`  // digests, PBKDF2; Firebase scrypt's r
	Mem     int    `json:"mem,omitempty"`     // Firebase scrypt: log2 N; standard scrypt: N
	Block   int    `json:"block,omitempty"`   // standard scrypt r
	Par     int    `json:"par,omitempty"`     // standard scrypt p
	DKLen   int    `json:"dkLen,omitempty"`   // standard scrypt
	Order   string `json:"order,omitempty"`   // SALT_AND_PASSWORD, PASSWORD_AND_SALT, or unspecified
}

func (h importedHash) encode() string {
	b, _ := json.Marshal(h)
	return importedPrefix + base64.RawStdEncoding.EncodeToString(b)
}

func parseImported(s string) (importedHash, bool) {
	var h importedHash
	rest, ok := strings.CutPrefix(s, importedPrefix)
	if !ok {
		return h, false
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || json.Unmarshal(b, &h) != nil {
		return h, false
	}
	return h, true
}

// digests are the hash functions the plain and HMAC algorithms use.
var digests = map[string]func() hash.Hash{"MD5": md5.New, "SHA1": sha1.New, "SHA256": sha256.New, "SHA512": sha512.New}

// verify reports whether password matches; a malformed record matches nothing.
func (h importedHash) verify(password string) bool {
	pw := []byte(password)
	eq := func(got []byte) bool { return subtle.ConstantTimeCompare(got, h.Hash) == 1 }
	// An unspecified order is tried both ways: the documentation does not
	// pin the default down, and either answer is the user's own password.
	orders := [][]byte{append(append([]byte{}, h.Salt...), pw...), append(append([]byte{}, pw...), h.Salt...)}
	switch h.Order {
	case "SALT_AND_PASSWORD":
		orders = orders[:1]
	case "PASSWORD_AND_SALT":
		orders = orders[1:]
	}
	switch alg := h.Alg; {
	case alg == "BCRYPT":
		return bcrypt.CompareHashAndPassword(h.Hash, pw) == nil
	case alg == "SCRYPT":
		return eq(firebaseScrypt(pw, h.Salt, h.SaltSep, h.Key, h.Rounds, h.Mem))
	case alg == "STANDARD_SCRYPT":
		k, err := scrypt.Key(pw, h.Salt, h.Mem, h.Block, h.Par, h.DKLen)
		return err == nil && eq(k)
	case strings.HasPrefix(alg, "HMAC_"):
		for _, in := range orders {
			m := hmac.New(digests[strings.TrimPrefix(alg, "HMAC_")], h.Key)
			m.Write(in)
			if eq(m.Sum(nil)) {
				return true
			}
		}
	case alg == "PBKDF2_SHA256" || alg == "PBKDF_SHA1":
		d := sha256.New
		if alg == "PBKDF_SHA1" {
			d = sha1.New
		}
		k, err := pbkdf2.Key(d, password, h.Salt, h.Rounds, len(h.Hash))
		return err == nil && eq(k)
	case digests[alg] != nil:
		for _, in := range orders {
			sum := in
			for range max(h.Rounds, 1) {
				d := digests[alg]()
				d.Write(sum)
				sum = d.Sum(nil)
			}
			if eq(sum) {
				return true
			}
		}
	}
	return false
}

// firebaseScrypt is Firebase's modified scrypt
// (https://github.com/firebase/scrypt): scrypt over salt+separator with
// N = 2^mem, r = rounds, p = 1, whose first 32 bytes key AES-256-CTR (zero
// IV) to encrypt the project's signer key; the ciphertext is the hash.
func firebaseScrypt(pw, salt, sep, signerKey []byte, rounds, mem int) []byte {
	dk, err := scrypt.Key(pw, append(append([]byte{}, salt...), sep...), 1<<mem, rounds, 1, 64)
	if err != nil {
		return nil
	}
	block, err := aes.NewCipher(dk[:32])
	if err != nil {
		return nil
	}
	out := make([]byte, len(signerKey))
	cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(out, signerKey)
	return out
}

// decodeB64 reads the base64 the Admin SDKs send: URL-safe unpadded from
// Go, standard padded from others.
func decodeB64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}
