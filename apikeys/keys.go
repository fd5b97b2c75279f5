package apikeys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// keyPrefix marks our keys, so that secret scanners (and people) recognise
// one pasted where it should not be.
const keyPrefix = "ak_"

// keyRandomBytes is the key's randomness: 256 bits, beyond any guessing, so
// that a fast hash is enough to store it (see KeyHash).
const keyRandomBytes = 32

// keyLen is the length of every key we issue: the prefix and 43 base64url
// characters.
var keyLen = len(keyPrefix) + base64.RawURLEncoding.EncodedLen(keyRandomBytes)

// KeyHash is the SHA-256 of an API key: the only form in which a key is
// stored. A slow password hash (bcrypt, scrypt, Argon2) exists to make
// guessing low-entropy passwords from a stolen hash expensive; a key of 256
// random bits cannot be guessed from its hash at any cost per guess, so the
// slowness would buy nothing and would put milliseconds of CPU on every API
// request. This is the practice of GitHub's and Stripe's token stores too.
type KeyHash [sha256.Size]byte

func (h KeyHash) String() string { return hex.EncodeToString(h[:]) }

// Equal compares in constant time. A store finds a record by the hash (a
// map or Redis lookup, whose timing may depend on the bytes compared: that
// tells an attacker about a SHA-256 output, which gets them no nearer a key
// with it), then the check compares the record's stored hash with the one it
// computed here, in constant time, before trusting the record.
func (h KeyHash) Equal(o KeyHash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// newKey returns a fresh key and its hash.
func newKey() (string, KeyHash) {
	b := make([]byte, keyRandomBytes)
	rand.Read(b) // never returns an error (crypto/rand, Go 1.24+)
	key := keyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, hashKey(key)
}

func hashKey(key string) KeyHash { return sha256.Sum256([]byte(key)) }

// wellFormedKey tells a string that could be one of our keys from anything
// else, so that junk is refused without a store lookup.
func wellFormedKey(key string) bool {
	if len(key) != keyLen || !strings.HasPrefix(key, keyPrefix) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(key[len(keyPrefix):])
	return err == nil
}

// newID returns an opaque identifier with a readable prefix.
func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return fmt.Sprintf("%s_%s", prefix, base64.RawURLEncoding.EncodeToString(b))
}
