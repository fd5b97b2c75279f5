package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"firebase.google.com/go/v4/auth"
	"github.com/acme/cloudrun-istio-gke/internal/idtoken"
	"github.com/labstack/echo/v4"
)

// The session is the user's Identity Platform ID token itself, bound to this
// frontend by a MAC (binding.go), in an HttpOnly cookie that lives no longer
// than the token. The frontend verifies it on every page and forwards it to
// the gateway, which verifies it again; the browser's SDK refreshes it
// (hourly) and posts the new one.
const sessionCookieBase = "session"

// cookieName is __Host-<base> on HTTPS, and plain <base> on plain-HTTP
// localhost, where browsers refuse __Host- cookies (they must be Secure).
func cookieName(r *http.Request, base string) string {
	if plainLocalhost(r) {
		return base
	}
	return "__Host-" + base
}

// newCookie returns a cookie for this request's scheme: Secure except on
// plain-HTTP localhost, HttpOnly, SameSite=Lax, host-only, whole site.
// maxAge 0 makes a browser-session cookie; negative deletes it.
func newCookie(r *http.Request, base, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     cookieName(r, base),
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   !plainLocalhost(r),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// sessionToken returns the ID token from the session cookie, or "" when
// there is none. A cookie this frontend did not make (see binding.go) wraps
// idtoken.ErrInvalidToken. Two session cookies (one planted beside ours, say,
// with another Path) wrap errTwoCredentials: which one the browser meant is
// not ours to guess.
func (s *server) sessionToken(r *http.Request) (string, error) {
	cookies := r.CookiesNamed(cookieName(r, sessionCookieBase))
	switch len(cookies) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", fmt.Errorf("%w: %d session cookies", errTwoCredentials, len(cookies))
	}
	token, err := unbindSession(s.sessionKey, cookies[0].Value)
	if err != nil {
		return "", fmt.Errorf("%w: %w", idtoken.ErrInvalidToken, err)
	}
	return token, nil
}

// maxSessionRequest bounds POST /session: an ID token is about 1 KB.
const maxSessionRequest = 32 << 10

// createSession verifies the ID token the sign-in module posts and keeps it
// in the session cookie until the token expires.
func (s *server) createSession(c echo.Context) error {
	var body struct {
		IDToken string `json:"idToken"`
	}
	r := c.Request()
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), r.Body, maxSessionRequest))
	if err := dec.Decode(&body); err != nil || body.IDToken == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "Expected a JSON body with an idToken.")
	}
	tok, err := s.verifier.Verify(r.Context(), body.IDToken)
	if err != nil {
		return sessionRefused(err)
	}
	ttl := time.Unix(tok.Expires, 0).Sub(s.now())
	if ttl < time.Second {
		return echo.NewHTTPError(http.StatusUnauthorized, "That sign-in has expired. Sign in again.")
	}
	c.SetCookie(newCookie(r, sessionCookieBase, bindSession(s.sessionKey, body.IDToken), int(ttl/time.Second)))
	return c.NoContent(http.StatusNoContent)
}

// sessionRefused turns a verification failure into the user's answer: 401
// for a refused token, 503 when it could not be checked at all.
func sessionRefused(err error) error {
	if errors.Is(err, idtoken.ErrInvalidToken) {
		return echo.NewHTTPError(http.StatusUnauthorized, "That sign-in was not accepted. Sign in again.").SetInternal(err)
	}
	return echo.NewHTTPError(http.StatusServiceUnavailable, "We could not check your sign-in right now. Try again in a moment.").SetInternal(err)
}

// revokeTimeout bounds the revocation at sign-out: Identity Platform answers
// in well under a second, and the Admin SDK's retries of an unreachable one
// would otherwise keep the user waiting on the button for several seconds.
const revokeTimeout = 3 * time.Second

// signOut ends the session: it revokes the user's refresh tokens at
// Identity Platform, so no browser of theirs can mint a new ID token, then
// forgets the cookie. An ID token already issued stays valid at the gateway
// until its exp (at most an hour); the backend's revocation check bounds that.
// This browser is signed out whatever happens (on a shared computer that
// matters most); if revocation fails, the user is told that their other
// sessions may go on, and the log says why (in production, most likely the
// service account lacking firebaseauth.users.update). A session that is
// already invalid is only forgotten. The sign-in module also signs the SDK
// out before it submits the form, so the browser does not sign straight
// back in.
func (s *server) signOut(c echo.Context) error {
	r := c.Request()
	_, tok, err := s.currentUser(r)
	c.SetCookie(newCookie(r, sessionCookieBase, "", -1))
	if err == nil && tok != nil {
		ctx, cancel := context.WithTimeout(r.Context(), revokeTimeout)
		defer cancel()
		if err := s.revoker.RevokeRefreshTokens(ctx, tok.UID); err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable,
				"You are signed out of this browser, but we could not sign you out of your other devices. Sign in and out again to retry.").
				SetInternal(fmt.Errorf("revoking the refresh tokens of %s: %w", tok.UID, err))
		}
	}
	if wantsJSON(r) {
		return c.NoContent(http.StatusNoContent)
	}
	return c.Redirect(http.StatusSeeOther, "/")
}

// currentUser verifies the session cookie. It returns the token and its
// claims for a live session, ("", nil, nil) with no session, and an error
// wrapping idtoken.ErrInvalidToken for a cookie that is no longer (or never
// was) good: expired, revoked, forged.
func (s *server) currentUser(r *http.Request) (string, *auth.Token, error) {
	raw, err := s.sessionToken(r)
	if err != nil || raw == "" {
		return "", nil, err
	}
	tok, err := s.verifier.Verify(r.Context(), raw)
	if err != nil {
		return "", nil, err
	}
	return raw, tok, nil
}
