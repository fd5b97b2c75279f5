package identity

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// customTokenAudience is the aud of every custom token, as Identity Platform
// requires it (https://cloud.google.com/identity-platform/docs/admin/create-custom-tokens).
const customTokenAudience = "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"

// maxCustomTokenLife is how far exp may lie past iat: "the maximum
// expiration time is one hour" (same page).
const maxCustomTokenLife = time.Hour

// signInWithCustomToken exchanges a custom token for an ID token
// (signInWithCustomToken in the SDKs). The emulator takes the unsigned
// tokens (alg "none") that the Admin SDK mints in emulator mode, as the
// Firebase emulator does; it has no service account to check a signature
// against, so a signed token is refused rather than trusted unchecked. The
// account is created on first use; the ID token carries the developer
// claims and sign_in_provider "custom", and so does every refresh of it.
func (e *Emulator) signInWithCustomToken(c echo.Context) error {
	var req struct {
		Token             string `json:"token"`
		ReturnSecureToken bool   `json:"returnSecureToken"`
		TenantID          string `json:"tenantId"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	if req.Token == "" {
		return badRequest("MISSING_CUSTOM_TOKEN")
	}
	uid, developer, aerr := e.parseCustomToken(req.Token)
	if aerr != nil {
		return aerr
	}
	now := e.now()
	var a account
	isNew := false
	err := e.accounts.mutate(func(s *accountSet) error {
		if got, ok := s.byID[uid]; ok {
			got.LastLoginAt, got.LastRefreshAt = now.UnixMilli(), now.UnixMilli()
			a = *got
			return nil
		}
		n := newAccount(uid, now)
		n.LastLoginAt, n.LastRefreshAt = now.UnixMilli(), now.UnixMilli()
		isNew, a = true, *n
		return s.insert(n)
	})
	if err != nil {
		return storeError(err)
	}
	if a.Disabled {
		return badRequest("USER_DISABLED")
	}
	id, err := e.idTokenAs(a, now, now, "custom", developer)
	if err != nil {
		return err
	}
	resp := map[string]any{"kind": "identitytoolkit#VerifyCustomTokenResponse", "isNewUser": isNew, "expiresIn": expiresIn}
	resp["idToken"] = id
	resp["refreshToken"] = e.sessions.newSession(session{uid: uid, authTime: now, issued: now, provider: "custom", claims: developer})
	return c.JSON(http.StatusOK, resp)
}

// parseCustomToken checks a custom token's header and claims and returns
// its uid and developer claims.
func (e *Emulator) parseCustomToken(raw string) (string, map[string]any, *apiError) {
	invalid := func(why string) (string, map[string]any, *apiError) {
		return "", nil, badRequest("INVALID_CUSTOM_TOKEN : " + why)
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil || len(msg.Signatures()) != 1 {
		return invalid("not a compact JWT")
	}
	if alg, ok := msg.Signatures()[0].ProtectedHeaders().Algorithm(); !ok || alg.String() != "none" || len(msg.Signatures()[0].Signature()) != 0 {
		return invalid("this emulator takes the unsigned custom tokens the Admin SDK mints in emulator mode (alg none)")
	}
	tok, err := jwt.ParseInsecure(msg.Payload())
	if err != nil {
		return invalid("its claims do not parse")
	}
	if aud, _ := tok.Audience(); len(aud) != 1 || aud[0] != customTokenAudience {
		return "", nil, badRequest("INVALID_CUSTOM_TOKEN : The custom token corresponds to a different audience.")
	}
	now := e.now()
	iat, okIat := tok.IssuedAt()
	exp, okExp := tok.Expiration()
	switch {
	case !okIat || !okExp || exp.Sub(iat) > maxCustomTokenLife:
		return invalid("iat and exp must be set, at most an hour apart")
	case !now.Before(exp):
		return invalid("Token expired")
	case iat.After(now.Add(5 * time.Minute)):
		return invalid("Token used before issued")
	}
	var uid, tenant string
	_ = tok.Get("uid", &uid)
	_ = tok.Get("tenant_id", &tenant)
	if uid == "" || len(uid) > 128 {
		return invalid("uid must be 1 to 128 characters")
	}
	if tenant != "" {
		return "", nil, badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	var claims map[string]any
	if tok.Has("claims") {
		if err := tok.Get("claims", &claims); err != nil {
			return invalid("claims must be an object")
		}
		b, _ := json.Marshal(claims)
		if len(b) > 1000 {
			return "", nil, badRequest("CLAIMS_TOO_LARGE")
		}
		for k := range claims {
			if reservedClaims[k] {
				return "", nil, badRequest("FORBIDDEN_CLAIM : " + k)
			}
		}
	}
	return uid, claims, nil
}

// Session cookies last between five minutes and two weeks
// (https://firebase.google.com/docs/auth/admin/manage-cookies).
const (
	minSessionCookie = 5 * time.Minute
	maxSessionCookie = 14 * 24 * time.Hour
)

// createSessionCookie is projects/{p}:createSessionCookie (the Admin SDK's
// SessionCookie): the ID token's claims, re-issued by
// https://session.firebase.google.com/<project> for validDuration seconds,
// signed with the emulator's keys like the ID tokens.
func (e *Emulator) createSessionCookie(c echo.Context) error {
	var req struct {
		IDToken       string      `json:"idToken"`
		ValidDuration json.Number `json:"validDuration"`
		TenantID      string      `json:"tenantId"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	secs, err := strconv.ParseInt(cmpOr(req.ValidDuration.String(), "0"), 10, 64)
	if d := time.Duration(secs) * time.Second; err != nil || d < minSessionCookie || d > maxSessionCookie {
		return badRequest("INVALID_DURATION : The duration must be between 5 minutes and 2 weeks.")
	}
	_, _, tok, aerr := e.verifyIDTokenFull(req.IDToken)
	if aerr != nil {
		return aerr
	}
	claims := map[string]any{}
	for _, k := range tok.Keys() {
		var v any
		if err := tok.Get(k, &v); err == nil {
			claims[k] = v
		}
	}
	now := e.now()
	claims["iss"] = "https://session.firebase.google.com/" + e.project
	claims["aud"] = e.project
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(time.Duration(secs) * time.Second).Unix()
	cookie, err := e.keys.sign(claims)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"sessionCookie": cookie})
}
