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

// idToken signs an ID token for a, signed in with a password, shaped like
// Identity Platform's.
func (e *Emulator) idToken(a account, authTime, issuedAt time.Time) (string, error) {
	return e.idTokenAs(a, authTime, issuedAt, "password", nil)
}

// idTokenAs signs an ID token for a signed in with provider ("password",
// "custom"), carrying developer claims (a custom token's) beside a's own
// custom claims; neither overrides the claims the emulator sets.
func (e *Emulator) idTokenAs(a account, authTime, issuedAt time.Time, provider string, developer map[string]any) (string, error) {
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
	for k, v := range developer {
		if !reservedClaims[k] {
			claims[k] = v
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
	claims["firebase"] = map[string]any{"identities": identities, "sign_in_provider": provider}
	return e.keys.sign(claims)
}

// verifyIDToken checks a token the way the Identity Toolkit API does when a
// client presents one: our signature (current or in-grace key), issuer,
// audience, expiry, and that its user still exists, is enabled and has not
// been revoked since.
func (e *Emulator) verifyIDToken(raw string) (account, *apiError) {
	a, _, _, aerr := e.verifyIDTokenFull(raw)
	return a, aerr
}

// recentSignIn is how long after signing in a user may still change their
// password or email, or delete themselves. Google documents that these
// "require the user to have signed in recently"
// (https://cloud.google.com/identity-platform/docs/web/reauth) without the
// figure; five minutes is what developers observe
// (github.com/episphere/connect/issues/709,
// github.com/Comfy-Org/ComfyUI_frontend/issues/3700).
const recentSignIn = 5 * time.Minute

// verifyRecentIDToken is verifyIDToken for sensitive changes: the token's
// sign-in (auth_time, which a refresh keeps) must be recent.
func (e *Emulator) verifyRecentIDToken(raw string) (account, *apiError) {
	a, authTime, _, aerr := e.verifyIDTokenFull(raw)
	if aerr != nil {
		return a, aerr
	}
	if e.now().Sub(authTime) > recentSignIn {
		return account{}, badRequest("CREDENTIAL_TOO_OLD_LOGIN_AGAIN")
	}
	return a, nil
}

// verifyIDTokenFull is verifyIDToken that also returns the token's
// auth_time and its claims.
func (e *Emulator) verifyIDTokenFull(raw string) (account, time.Time, jwt.Token, *apiError) {
	if raw == "" {
		return account{}, time.Time{}, nil, badRequest("MISSING_ID_TOKEN")
	}
	set, err := e.keys.publicSet()
	if err != nil {
		return account{}, time.Time{}, nil, internalError()
	}
	tok, err := jwt.ParseString(raw,
		jwt.WithKeySet(set),
		jwt.WithValidate(true),
		jwt.WithIssuer(e.issuer),
		jwt.WithAudience(e.project),
		jwt.WithClock(jwt.ClockFunc(e.now)),
	)
	if errors.Is(err, jwt.TokenExpiredError()) {
		return account{}, time.Time{}, nil, badRequest("TOKEN_EXPIRED")
	}
	if err != nil {
		return account{}, time.Time{}, nil, badRequest("INVALID_ID_TOKEN")
	}
	sub, _ := tok.Subject()
	var authTime float64
	_ = tok.Get("auth_time", &authTime) // always set by idToken; zero (too old) if not
	iat, _ := tok.IssuedAt()
	a, ok := e.accounts.byUID(sub)
	switch {
	case !ok:
		return account{}, time.Time{}, nil, badRequest("USER_NOT_FOUND")
	case a.Disabled:
		return account{}, time.Time{}, nil, badRequest("USER_DISABLED")
	case iat.Unix() < a.ValidSince:
		return account{}, time.Time{}, nil, badRequest("TOKEN_EXPIRED")
	}
	return a, time.Unix(int64(authTime), 0), tok, nil
}

// newRefreshToken starts a session: 256 random bits the client keeps, of
// which we keep only the digest.
func (s *sessionStore) newRefreshToken(uid string, authTime, now time.Time) string {
	return s.newSession(session{uid: uid, authTime: authTime, issued: now, provider: "password"})
}

// newSession is newRefreshToken for any sign-in method and its claims.
func (s *sessionStore) newSession(ss session) string {
	b := make([]byte, 32)
	rand.Read(b) // never fails; see crypto/rand.Read
	tok := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKey[sha256.Sum256([]byte(tok))] = ss
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
