package frontend

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The session cookie is bound to this frontend by a MAC over the ID token:
// value = <ID token> "~" <base64url HMAC-SHA256(key, token)>.
//
// On HTTPS the cookie is __Host- prefixed, which keeps other sites from
// setting it. On plain-HTTP localhost it cannot be (browsers refuse __Host-
// without Secure), and cookies are not isolated by port (RFC 6265 section
// 8.5, https://www.rfc-editor.org/rfc/rfc6265#section-8.5: "cookies for a
// given host are shared across all the ports on that host"). So any page on
// another localhost port could plant a session: its own account's token,
// signing the developer into an account the attacker watches (login CSRF).
// A token is not enough to make a cookie; only this frontend's key is.
//
// The key: SessionKeyFile when set, else derived (HKDF-SHA256, a label of
// its own) from the frontend's client private key, the one secret every
// instance already has. Locally that key lives in the state directory's PKI,
// so each state directory has its own session key with nothing to wire. On
// Cloud Run every instance mounts the same Secret Manager version, so every
// instance accepts every other's cookies with no new secret to create. A
// rotated client key changes the session key: a refused cookie is then
// refreshed quietly by the sign-in module (the page's stale session path),
// so users are not asked to sign in again. SessionKeyFile separates the two
// for deployments that want it.
const (
	macSeparator  = "~"
	sessionKeyLen = 32
	// sessionKeyInfo is HKDF's label: a key derived for any other purpose
	// from the same secret is unrelated to this one (RFC 5869 section 3.2).
	sessionKeyInfo = "acme-vault frontend session cookie MAC v1"
	// minSessionSecret is what we accept as a session key file: a 256-bit key.
	minSessionSecret = 32
)

// errUnboundSession is a session cookie this frontend did not make.
var errUnboundSession = errors.New("the session cookie was not made by this frontend")

// loadSessionKey reads the session secret named by cfg and derives the MAC key.
func loadSessionKey(cfg Config) ([]byte, error) {
	path, what := cfg.SessionKeyFile, "SessionKeyFile"
	if path == "" {
		path, what = cfg.ClientKeyFile, "ClientKeyFile"
		if path == "" {
			path, what = filepath.Join(cfg.ClientTLSDir, "tls.key"), "ClientTLSDir/tls.key"
		}
	}
	secret, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the session secret (%s) %q: %w", what, path, err)
	}
	if len(secret) < minSessionSecret {
		return nil, fmt.Errorf("the session secret (%s) %q has %d bytes; want at least %d", what, path, len(secret), minSessionSecret)
	}
	return hkdf.Key(sha256.New, secret, nil, sessionKeyInfo, sessionKeyLen)
}

// SessionCookieValue is the session cookie value the frontend configured by
// cfg makes of idToken, whatever the token's state. POST /session binds only
// tokens it accepts; a test that needs a cookie it would refuse (an expired
// token's, in the e2e browser suite) makes it here rather than with a second
// copy of the binding.
func SessionCookieValue(cfg Config, idToken string) (string, error) {
	key, err := loadSessionKey(cfg)
	if err != nil {
		return "", err
	}
	return bindSession(key, idToken), nil
}

// bindSession returns the cookie value for an ID token.
func bindSession(key []byte, token string) string {
	return token + macSeparator + base64.RawURLEncoding.EncodeToString(sessionMAC(key, token))
}

// unbindSession returns the ID token from a cookie value this frontend made.
func unbindSession(key []byte, value string) (string, error) {
	token, mac, ok := strings.Cut(value, macSeparator)
	if !ok {
		return "", errUnboundSession
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil || !hmac.Equal(got, sessionMAC(key, token)) {
		return "", errUnboundSession
	}
	return token, nil
}

func sessionMAC(key []byte, token string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(token))
	return m.Sum(nil)
}
