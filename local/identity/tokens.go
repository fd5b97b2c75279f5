package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
)

// reservedClaims are the claims the emulator sets; custom claims never override them.
var reservedClaims = map[string]bool{
	"iss": true, "aud": true, "auth_time": true, "user_id": true, "sub": true, "iat": true,
	"exp": true, "email": true, "email_verified": true, "firebase": true, "name": true,
	"picture": true, "phone_number": true, "nbf": true, "jti": true, "amr": true, "acr": true,
	"at_hash": true, "azp": true, "cnf": true, "nonce": true,
}

// idToken signs an ID token for a shaped like Identity Platform's.
func (e *Emulator) idToken(a account, authTime, issuedAt time.Time) (string, error) {
	claims := map[string]any{}
	if a.CustomAttributes != "" {
		// Validated when stored; custom claims come first so ours win.
		var custom map[string]any
		if err := json.Unmarshal([]byte(a.CustomAttributes), &custom); err == nil {
			for k, v := range custom {
				if !reservedClaims[k] {
					claims[k] = v
				}
			}
		}
	}
	identities := map[string]any{}
	if a.Email != "" {
		identities["email"] = []string{a.Email}
		claims["email"] = a.Email
		claims["email_verified"] = a.EmailVerified
	}
	if a.PhoneNumber != "" {
		identities["phone"] = []string{a.PhoneNumber}
		claims["phone_number"] = a.PhoneNumber
	}
	if a.DisplayName != "" {
		claims["name"] = a.DisplayName
	}
	if a.PhotoURL != "" {
		claims["picture"] = a.PhotoURL
	}
	claims["iss"] = e.issuer
	claims["aud"] = e.project
	claims["auth_time"] = authTime.Unix()
	claims["user_id"] = a.LocalID
	claims["sub"] = a.LocalID
	claims["iat"] = issuedAt.Unix()
	claims["exp"] = issuedAt.Add(IDTokenLifetime).Unix()
	claims["firebase"] = map[string]any{"identities": identities, "sign_in_provider": "password"}
	return e.keys.sign(claims)
}

// verifyIDToken checks a token the way the Identity Toolkit API does when a
// client presents one: our signature (current or in-grace key), issuer,
// audience, expiry, and that its user still exists, is enabled and has not
// been revoked since.
func (e *Emulator) verifyIDToken(raw string) (account, *apiError) {
	if raw == "" {
		return account{}, badRequest("MISSING_ID_TOKEN")
	}
	set, err := e.keys.publicSet()
	if err != nil {
		return account{}, internalError()
	}
	tok, err := jwt.ParseString(raw,
		jwt.WithKeySet(set),
		jwt.WithValidate(true),
		jwt.WithIssuer(e.issuer),
		jwt.WithAudience(e.project),
		jwt.WithClock(jwt.ClockFunc(e.now)),
	)
	if errors.Is(err, jwt.TokenExpiredError()) {
		return account{}, badRequest("TOKEN_EXPIRED")
	}
	if err != nil {
		return account{}, badRequest("INVALID_ID_TOKEN")
	}
	sub, _ := tok.Subject()
	iat, _ := tok.IssuedAt()
	a, ok := e.accounts.byUID(sub)
	switch {
	case !ok:
		return account{}, badRequest("USER_NOT_FOUND")
	case a.Disabled:
		return account{}, badRequest("USER_DISABLED")
	case iat.Unix() < a.ValidSince:
		return account{}, badRequest("TOKEN_EXPIRED")
	}
	return a, nil
}

// newRefreshToken starts a session: 256 random bits the client keeps, of
// which we keep only the digest.
func (s *sessionStore) newRefreshToken(uid string, authTime, now time.Time) string {
	b := make([]byte, 32)
	rand.Read(b) // never fails; see crypto/rand.Read
	tok := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKey[sha256.Sum256([]byte(tok))] = session{uid: uid, authTime: authTime, issued: now}
	return tok
}

func (s *sessionStore) lookup(tok string) (session, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ss, ok := s.byKey[sha256.Sum256([]byte(tok))]
	return ss, ok
}

// dropUser ends every session of uid, as disabling or deleting a user does.
func (s *sessionStore) dropUser(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ss := range s.byKey {
		if ss.uid == uid {
			delete(s.byKey, k)
		}
	}
}

func (s *sessionStore) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.byKey)
}
