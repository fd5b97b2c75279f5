package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// decodeKnown is decode that refuses a field v does not name, in Google's
// words for an unknown field, rather than answer 200 having changed nothing.
func decodeKnown(c echo.Context, v any) error {
	var raw map[string]json.RawMessage
	if err := decode(c, &raw); err != nil {
		return err
	}
	known := jsonFields(v)
	for k := range raw {
		if !known[k] {
			return &apiError{code: http.StatusBadRequest, status: "INVALID_ARGUMENT",
				message: "Invalid JSON payload received. Unknown name " + strconv.Quote(k) + ": this emulator does not support the field."}
		}
	}
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, v); err != nil {
		return bodyError(err)
	}
	return nil
}

// jsonFields lists the JSON names of the struct v points to.
func jsonFields(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	out := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out[name] = true
	}
	return out
}

// decode reads a JSON body of at most maxBody bytes into v. An empty body is
// an empty request, as on Google's APIs.
func decode(c echo.Context, v any) error {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxBody)
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return bodyError(err)
	}
	// The rest is read to its end, not peeked at with dec.More: More stops
	// at the first '}' or ']', and treats a read error as the end, so a
	// closing bracket after the object, or whitespace past maxBody, would
	// pass unseen.
	rest, err := io.ReadAll(io.MultiReader(dec.Buffered(), r.Body))
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
		return bodyError(errors.New("trailing data after the JSON object"))
	}
	return nil
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig):
		return &apiError{code: http.StatusRequestEntityTooLarge, status: "INVALID_ARGUMENT",
			message: "Request payload size exceeds the limit: " + strconv.Itoa(maxBody) + " bytes."}
	default:
		// The decoder's message names the offending field or offset, never its value.
		return &apiError{code: http.StatusBadRequest, status: "INVALID_ARGUMENT",
			message: "Invalid JSON payload received. " + err.Error()}
	}
}

const expiresIn = "3600" // IDTokenLifetime in seconds, as the API spells it

// passwordRequest is the body of accounts:signUp and accounts:signInWithPassword.
type passwordRequest struct {
	Email             string `json:"email"`
	Password          string `json:"password"`
	ReturnSecureToken bool   `json:"returnSecureToken"`
	TenantID          string `json:"tenantId"`
}

// signUp creates an email/password user (createUserWithEmailAndPassword).
func (e *Emulator) signUp(c echo.Context) error {
	var req passwordRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	switch {
	case req.Email == "" && req.Password == "":
		// An anonymous sign-up: this emulator serves email/password users only.
		return badRequest("ADMIN_ONLY_OPERATION")
	case req.Email == "":
		return badRequest("MISSING_EMAIL")
	case req.Password == "":
		return badRequest("MISSING_PASSWORD")
	}
	if err := checkCredentials(req.Email, req.Password); err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return badRequest(err.Error())
	}
	if err := checkPassword(req.Password); err != nil {
		return badRequest(err.Error())
	}
	ctx := c.Request().Context()
	if _, ok := e.accounts.byEmailAddr(email); ok {
		return badRequest("EMAIL_EXISTS") // spare the hash; rechecked under the lock
	}
	hash, err := e.hasher.hash(ctx, req.Password)
	if err != nil {
		return err
	}
	now := e.now()
	a := newAccount(newUID(), now)
	a.Email, a.PasswordHash, a.PasswordUpdatedAt, a.LastLoginAt = email, hash, now.UnixMilli(), now.UnixMilli()
	if err := e.accounts.mutate(func(s *accountSet) error { return s.insert(a) }); err != nil {
		return storeError(err)
	}
	resp := map[string]any{"kind": "identitytoolkit#SignupNewUserResponse", "localId": a.LocalID, "email": a.Email}
	if req.ReturnSecureToken {
		if err := e.addTokens(resp, *a, now); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, resp)
}

// addTokens starts a session for a, signed in with a password now.
func (e *Emulator) addTokens(resp map[string]any, a account, now time.Time) error {
	id, err := e.idToken(a, now, now)
	if err != nil {
		return err
	}
	resp["idToken"] = id
	resp["refreshToken"] = e.sessions.newRefreshToken(a.LocalID, now, now)
	resp["expiresIn"] = expiresIn
	return nil
}

// signInWithPassword signs a user in (signInWithEmailAndPassword).
func (e *Emulator) signInWithPassword(c echo.Context) error {
	var req passwordRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	// Looked up as sign-up stored it (trimmed; case is folded by the index).
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return badRequest("INVALID_EMAIL")
	}
	if req.Password == "" {
		return badRequest("MISSING_PASSWORD")
	}
	// Throttled before any hashing, so a guessing loop costs no CPU.
	if !e.throttle.allowed(email, e.now()) {
		return badRequest(tooManyAttempts)
	}
	ctx := c.Request().Context()
	a, found := e.accounts.byEmailAddr(email)
	stored := a.PasswordHash
	if !found {
		// Spend the same time as for a real account, so that response times
		// do not reveal which emails have one.
		stored = e.decoyHash()
	}
	ok := e.hasher.verify(ctx, stored, req.Password)
	if err := ctx.Err(); err != nil {
		return err
	}
	if found && ok {
		e.throttle.succeeded(email)
	} else {
		e.throttle.failed(email, e.now())
	}
	switch {
	case !found && e.reveal:
		return badRequest("EMAIL_NOT_FOUND")
	case !ok && e.reveal:
		return badRequest("INVALID_PASSWORD")
	case !found || !ok:
		return badRequest("INVALID_LOGIN_CREDENTIALS")
	case a.Disabled:
		return badRequest("USER_DISABLED")
	}
	now := e.now()
	e.accounts.touch(a.LocalID, now, now) // a sign-in is also a refresh (lastRefreshAt)
	resp := map[string]any{
		"kind": "identitytoolkit#VerifyPasswordResponse", "localId": a.LocalID, "email": a.Email,
		"displayName": a.DisplayName, "registered": true,
	}
	if req.ReturnSecureToken {
		if err := e.addTokens(resp, a, now); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, resp)
}

// decoyHash is a hash of a random password at the configured cost, made once.
func (e *Emulator) decoyHash() string {
	e.decoyOnce.Do(func() {
		pw := make([]byte, 16)
		rand.Read(pw) // never fails; see crypto/rand.Read
		// Not the request's context: a cancelled first caller must not leave
		// every later one without a decoy.
		e.decoy, _ = e.hasher.hash(context.Background(), base64.RawURLEncoding.EncodeToString(pw))
	})
	return e.decoy
}

// refresh exchanges a refresh token for a new ID token (the Secure Token API).
// It never touches a password hash: one map lookup and one RS256 signature.
func (e *Emulator) refresh(c echo.Context) error {
	var req struct {
		GrantType    string `json:"grant_type"`
		RefreshToken string `json:"refresh_token"`
		// The API also takes camelCase in JSON bodies.
		GrantTypeCamel    string `json:"grantType"`
		RefreshTokenCamel string `json:"refreshToken"`
	}
	r := c.Request()
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" {
		// The body alone, not r.ParseForm: that also parses the query, so a
		// stray malformed parameter beside ?key= would fail a good form.
		b, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxBody))
		if err != nil {
			return bodyError(err)
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			return &apiError{code: http.StatusBadRequest, status: "INVALID_ARGUMENT",
				message: "Invalid form payload received. " + err.Error()}
		}
		req.GrantType, req.RefreshToken = form.Get("grant_type"), form.Get("refresh_token")
	} else if err := decode(c, &req); err != nil {
		return err
	}
	req.GrantType = cmpOr(req.GrantType, req.GrantTypeCamel)
	req.RefreshToken = cmpOr(req.RefreshToken, req.RefreshTokenCamel)
	switch {
	case req.GrantType == "":
		return badRequest("MISSING_GRANT_TYPE")
	case req.GrantType != "refresh_token":
		return badRequest("INVALID_GRANT_TYPE")
	case req.RefreshToken == "":
		return badRequest("MISSING_REFRESH_TOKEN")
	}
	s, ok := e.sessions.lookup(req.RefreshToken)
	if !ok {
		return badRequest("INVALID_REFRESH_TOKEN")
	}
	a, ok := e.accounts.byUID(s.uid)
	switch {
	case !ok:
		return badRequest("USER_NOT_FOUND")
	case a.Disabled:
		return badRequest("USER_DISABLED")
	case s.issued.Unix() < a.ValidSince:
		return badRequest("TOKEN_EXPIRED")
	}
	now := e.now()
	id, err := e.idTokenAs(a, s.authTime, now, cmpOr(s.provider, "password"), s.claims)
	if err != nil {
		return err
	}
	e.accounts.touch(a.LocalID, time.Time{}, now)
	return c.JSON(http.StatusOK, map[string]string{
		"access_token":  id,
		"expires_in":    expiresIn,
		"token_type":    "Bearer",
		"refresh_token": req.RefreshToken,
		"id_token":      id,
		"user_id":       a.LocalID,
		"project_id":    e.project,
	})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// storeError turns a failed change into its API error.
func storeError(err error) error {
	switch {
	case errors.Is(err, errEmailExists), errors.Is(err, errUIDExists), errors.Is(err, errPhoneExists), errors.Is(err, errFederatedExists):
		return badRequest(err.Error())
	case errors.Is(err, ErrUserNotFound):
		return badRequest("USER_NOT_FOUND")
	case errors.Is(err, errTooManyAccounts):
		return badRequest(err.Error())
	default:
		return err
	}
}

// redacted is what Google sends instead of a password hash to callers who
// may not see it; the JS SDK only checks that one is present.
var redacted = base64.StdEncoding.EncodeToString([]byte("REDACTED"))

// userInfo is an account as accounts:lookup returns it.
type userInfo struct {
	LocalID           string          `json:"localId"`
	Email             string          `json:"email,omitempty"`
	EmailVerified     bool            `json:"emailVerified"`
	DisplayName       string          `json:"displayName,omitempty"`
	PhotoURL          string          `json:"photoUrl,omitempty"`
	PhoneNumber       string          `json:"phoneNumber,omitempty"`
	PasswordHash      string          `json:"passwordHash,omitempty"`
	PasswordUpdatedAt int64           `json:"passwordUpdatedAt,omitempty"`
	ProviderUserInfo  []providerInfo  `json:"providerUserInfo,omitempty"`
	Salt              string          `json:"salt,omitempty"`
	MFAInfo           []mfaEnrollment `json:"mfaInfo,omitempty"`
	ValidSince        string          `json:"validSince"`
	Disabled          bool            `json:"disabled,omitempty"`
	LastLoginAt       string          `json:"lastLoginAt,omitempty"`
	CreatedAt         string          `json:"createdAt"`
	LastRefreshAt     string          `json:"lastRefreshAt,omitempty"`
	CustomAttributes  string          `json:"customAttributes,omitempty"`
}

type providerInfo struct {
	ProviderID  string `json:"providerId"`
	FederatedID string `json:"federatedId,omitempty"`
	RawID       string `json:"rawId"`
	Email       string `json:"email,omitempty"`
	PhoneNumber string `json:"phoneNumber,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	PhotoURL    string `json:"photoUrl,omitempty"`
}

func infoOf(a account) userInfo {
	u := userInfo{
		LocalID: a.LocalID, Email: a.Email, EmailVerified: a.EmailVerified, DisplayName: a.DisplayName,
		PhotoURL: a.PhotoURL, PhoneNumber: a.PhoneNumber, Disabled: a.Disabled,
		CustomAttributes: a.CustomAttributes, MFAInfo: a.MFA,
		ValidSince: strconv.FormatInt(a.ValidSince, 10), CreatedAt: strconv.FormatInt(a.CreatedAt, 10),
	}
	if a.LastLoginAt != 0 {
		u.LastLoginAt = strconv.FormatInt(a.LastLoginAt, 10)
	}
	if a.LastRefreshAt != 0 {
		u.LastRefreshAt = time.UnixMilli(a.LastRefreshAt).UTC().Format(time.RFC3339)
	}
	if a.PasswordHash != "" {
		u.PasswordHash, u.PasswordUpdatedAt = redacted, a.PasswordUpdatedAt
		u.ProviderUserInfo = append(u.ProviderUserInfo, providerInfo{
			ProviderID: "password", FederatedID: a.Email, RawID: a.Email, Email: a.Email,
			DisplayName: a.DisplayName, PhotoURL: a.PhotoURL,
		})
	}
	if a.PhoneNumber != "" {
		u.ProviderUserInfo = append(u.ProviderUserInfo, providerInfo{
			ProviderID: "phone", RawID: a.PhoneNumber, PhoneNumber: a.PhoneNumber,
		})
	}
	u.ProviderUserInfo = append(u.ProviderUserInfo, a.Providers...)
	return u
}

// lookup returns accounts: the caller's own (by idToken), or, for the admin,
// any by localId, email or phoneNumber. No match is a 200 without "users".
func (e *Emulator) lookup(c echo.Context) error {
	var req struct {
		IDToken     string        `json:"idToken"`
		LocalID     []string      `json:"localId"`
		Email       []string      `json:"email"`
		PhoneNumber []string      `json:"phoneNumber"`
		Federated   []providerKey `json:"federatedUserId"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	resp := map[string]any{"kind": "identitytoolkit#GetAccountInfoResponse"}
	var found []account
	if req.IDToken != "" || !isAdmin(c.Request()) {
		a, aerr := e.verifyIDToken(req.IDToken)
		if aerr != nil {
			return aerr
		}
		found = []account{a}
	} else {
		found = e.accounts.find(req.LocalID, req.Email, req.PhoneNumber, req.Federated)
	}
	if len(found) > 0 {
		users := make([]userInfo, len(found))
		for i, a := range found {
			users[i] = infoOf(a)
		}
		resp["users"] = users
	}
	return c.JSON(http.StatusOK, resp)
}

// updateRequest is the body of accounts:update. Pointers tell "unset" from
// "set to the zero value".
type updateRequest struct {
	IDToken           string        `json:"idToken"`
	LocalID           string        `json:"localId"`
	Email             *string       `json:"email"`
	Password          *string       `json:"password"`
	DisplayName       *string       `json:"displayName"`
	PhotoURL          *string       `json:"photoUrl"`
	PhoneNumber       *string       `json:"phoneNumber"`
	EmailVerified     *bool         `json:"emailVerified"`
	DisableUser       *bool         `json:"disableUser"`
	CustomAttributes  *string       `json:"customAttributes"`
	ValidSince        json.Number   `json:"validSince"`
	DeleteAttribute   []string      `json:"deleteAttribute"`
	DeleteProvider    []string      `json:"deleteProvider"`
	ReturnSecureToken bool          `json:"returnSecureToken"`
	OobCode           string        `json:"oobCode"`
	LinkProvider      *providerInfo `json:"linkProviderUserInfo"`
	MFA               *struct {
		Enrollments []mfaEnrollment `json:"enrollments"`
	} `json:"mfa"`
	TenantID string `json:"tenantId"`
}

// update changes an account: the caller's own (by idToken: profile, email,
// password) or, for the admin, any (by localId: also disabled, emailVerified,
// custom claims and revocation).
func (e *Emulator) update(c echo.Context) error {
	var req updateRequest
	if err := decodeKnown(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	if req.OobCode != "" {
		return e.applyOobCode(c, req.OobCode)
	}
	admin := isAdmin(c.Request()) && req.IDToken == ""
	uid := req.LocalID
	if !admin {
		verify := e.verifyIDToken
		if req.Password != nil || req.Email != nil {
			verify = e.verifyRecentIDToken
		}
		a, aerr := verify(req.IDToken)
		if aerr != nil {
			return aerr
		}
		uid = a.LocalID
		if req.EmailVerified != nil || req.DisableUser != nil || req.CustomAttributes != nil || req.ValidSince != "" ||
			req.LinkProvider != nil || req.MFA != nil {
			return &apiError{code: http.StatusBadRequest, message: "INSUFFICIENT_PERMISSION"}
		}
		// A phone number is a sign-in method: a user gets one only by
		// proving they hold it (a verification code), which this emulator
		// does not offer; the admin may set one.
		if req.PhoneNumber != nil {
			return badRequest("INSUFFICIENT_PERMISSION : a user's phone number is set by verifying it, not by accounts:update")
		}
	} else if uid == "" {
		return badRequest("MISSING_LOCAL_ID")
	}

	if err := checkSizes(req.DisplayName, req.PhotoURL, req.PhoneNumber); err != nil {
		return err
	}
	if err := checkCredentials(deref(req.Email), deref(req.Password)); err != nil {
		return err
	}
	// Validate and hash before taking the store's lock.
	var hash string
	if req.Password != nil {
		if err := checkPassword(*req.Password); err != nil {
			return badRequest(err.Error())
		}
		h, err := e.hasher.hash(c.Request().Context(), *req.Password)
		if err != nil {
			return err
		}
		hash = h
	}
	var email string
	if req.Email != nil {
		em, err := normalizeEmail(*req.Email)
		if err != nil {
			return badRequest(err.Error())
		}
		email = em
		// With email enumeration protection on (the default here, as for
		// projects created since September 2023), "users cannot change their
		// email address without first verifying the new address": a user's
		// plain update is refused and the change goes through
		// accounts:sendOobCode VERIFY_AND_CHANGE_EMAIL (verifyBeforeUpdateEmail)
		// instead. An administrator may still change it.
		// https://cloud.google.com/identity-platform/docs/admin/email-enumeration-protection;
		// the answer's wording as users report it:
		// https://github.com/firebase/firebase-js-sdk/issues/8009
		if !admin && !e.reveal {
			return badRequest("OPERATION_NOT_ALLOWED : Please verify the new email before changing email.")
		}
	}
	if req.CustomAttributes != nil && *req.CustomAttributes != "" {
		if msg := checkClaims(*req.CustomAttributes); msg != "" {
			return badRequest(msg)
		}
	}
	var validSince int64
	if req.ValidSince != "" {
		v, err := req.ValidSince.Int64()
		if err != nil {
			return badRequest("INVALID_VALID_SINCE")
		}
		validSince = v
	}

	now := e.now()
	var mfa []mfaEnrollment
	if req.MFA != nil {
		m, err := checkMFA(req.MFA.Enrollments, now)
		if err != nil {
			return err
		}
		mfa = m
	}
	if p := req.LinkProvider; p != nil {
		switch {
		case p.ProviderID == "":
			return badRequest("MISSING_PROVIDER_ID")
		case p.RawID == "":
			return badRequest("MISSING_RAW_ID")
		case p.ProviderID == "password" || p.ProviderID == "phone":
			return badRequest("INVALID_PROVIDER_ID : " + p.ProviderID + " is linked by setting the email and password, or the phone number")
		}
		if err := checkSizes(&p.DisplayName, &p.PhotoURL, &p.PhoneNumber); err != nil {
			return err
		}
	}
	var updated account
	err := e.accounts.mutate(func(s *accountSet) error {
		a, ok := s.byID[uid]
		if !ok {
			return ErrUserNotFound
		}
		if req.MFA != nil {
			a.MFA = mfa
		}
		if p := req.LinkProvider; p != nil {
			kept := []providerInfo{}
			for _, q := range a.Providers {
				if q.ProviderID != p.ProviderID {
					kept = append(kept, q)
				}
			}
			a.Providers = append(kept, *p)
		}
		if req.Email != nil && !strings.EqualFold(email, a.Email) {
			a.Email = email
			if !admin {
				a.EmailVerified = false
			}
		}
		if hash != "" {
			a.PasswordHash, a.PasswordUpdatedAt = hash, now.UnixMilli()
			// A new password ends every other session, as on Google Cloud.
			a.ValidSince = now.Unix()
		}
		setIf(&a.DisplayName, req.DisplayName)
		setIf(&a.PhotoURL, req.PhotoURL)
		setIf(&a.PhoneNumber, req.PhoneNumber)
		setIf(&a.CustomAttributes, req.CustomAttributes)
		if req.EmailVerified != nil {
			a.EmailVerified = *req.EmailVerified
		}
		if req.DisableUser != nil {
			a.Disabled = *req.DisableUser
		}
		if req.ValidSince != "" {
			a.ValidSince = validSince
		}
		for _, attr := range req.DeleteAttribute {
			switch attr {
			case "DISPLAY_NAME":
				a.DisplayName = ""
			case "PHOTO_URL":
				a.PhotoURL = ""
			}
		}
		for _, p := range req.DeleteProvider {
			if p == "phone" {
				a.PhoneNumber = ""
			}
			a.Providers = slices.DeleteFunc(slices.Clone(a.Providers), func(q providerInfo) bool { return q.ProviderID == p })
		}
		if err := s.checkUnique(a); err != nil {
			return err
		}
		updated = *a
		return nil
	})
	if err != nil {
		return storeError(err)
	}
	if updated.Disabled || hash != "" || req.ValidSince != "" {
		e.sessions.dropUser(uid)
	}
	info := infoOf(updated)
	resp := map[string]any{
		"kind": "identitytoolkit#SetAccountInfoResponse", "localId": info.LocalID, "email": info.Email,
		"displayName": info.DisplayName, "photoUrl": info.PhotoURL, "passwordHash": info.PasswordHash,
		"providerUserInfo": info.ProviderUserInfo, "emailVerified": info.EmailVerified,
	}
	if !admin && req.ReturnSecureToken && (hash != "" || req.Email != nil) {
		if err := e.addTokens(resp, updated, now); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, resp)
}

// exportHash returns a stored hash's key and salt in base64.
func exportHash(stored string) (hash, salt string) {
	if _, s, k, ok := parseHash(stored); ok {
		return base64.URLEncoding.EncodeToString(k), base64.URLEncoding.EncodeToString(s)
	}
	if h, ok := parseImported(stored); ok {
		return base64.URLEncoding.EncodeToString(h.Hash), base64.URLEncoding.EncodeToString(h.Salt)
	}
	return redacted, ""
}

// checkClaims validates custom claims as Google does: a JSON object of at
// most 1000 bytes that sets none of the reserved claims. It returns the
// error code, or "".
func checkClaims(attrs string) string {
	var claims map[string]any
	if err := json.Unmarshal([]byte(attrs), &claims); err != nil {
		return "INVALID_CLAIMS"
	}
	if len(attrs) > 1000 {
		return "CLAIMS_TOO_LARGE"
	}
	for k := range claims {
		if reservedClaims[k] {
			return "FORBIDDEN_CLAIM : " + k
		}
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func setIf(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// deleteAccount deletes the caller (by idToken) or, for the admin, any account
// (by localId). Its refresh tokens die with it.
func (e *Emulator) deleteAccount(c echo.Context) error {
	var req struct {
		IDToken string `json:"idToken"`
		LocalID string `json:"localId"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	uid := req.LocalID
	if req.IDToken != "" || !isAdmin(c.Request()) {
		a, aerr := e.verifyRecentIDToken(req.IDToken)
		if aerr != nil {
			return aerr
		}
		uid = a.LocalID
	} else if uid == "" {
		return badRequest("MISSING_LOCAL_ID")
	}
	err := e.accounts.mutate(func(s *accountSet) error {
		if _, ok := s.byID[uid]; !ok {
			return ErrUserNotFound
		}
		delete(s.byID, uid)
		return nil
	})
	if err != nil {
		return storeError(err)
	}
	e.sessions.dropUser(uid)
	return c.JSON(http.StatusOK, map[string]string{"kind": "identitytoolkit#DeleteAccountResponse"})
}

// createAccount is the Admin SDK's CreateUser: any fields, password optional.
func (e *Emulator) createAccount(c echo.Context) error {
	var req struct {
		LocalID       string          `json:"localId"`
		Email         string          `json:"email"`
		Password      string          `json:"password"`
		DisplayName   string          `json:"displayName"`
		PhotoURL      string          `json:"photoUrl"`
		PhoneNumber   string          `json:"phoneNumber"`
		EmailVerified bool            `json:"emailVerified"`
		Disabled      bool            `json:"disabled"`
		MFAInfo       []mfaEnrollment `json:"mfaInfo"`
		TenantID      string          `json:"tenantId"`
	}
	if err := decodeKnown(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	if err := checkSizes(&req.DisplayName, &req.PhotoURL, &req.PhoneNumber); err != nil {
		return err
	}
	if err := checkCredentials(req.Email, req.Password); err != nil {
		return err
	}
	now := e.now()
	a := newAccount(cmpOr(req.LocalID, newUID()), now)
	if len(a.LocalID) > 128 {
		return badRequest("INVALID_LOCAL_ID")
	}
	if req.Email != "" {
		email, err := normalizeEmail(req.Email)
		if err != nil {
			return badRequest(err.Error())
		}
		a.Email = email
	}
	if req.Password != "" {
		if err := checkPassword(req.Password); err != nil {
			return badRequest(err.Error())
		}
		hash, err := e.hasher.hash(c.Request().Context(), req.Password)
		if err != nil {
			return err
		}
		a.PasswordHash, a.PasswordUpdatedAt = hash, now.UnixMilli()
	}
	a.DisplayName, a.PhotoURL, a.PhoneNumber = req.DisplayName, req.PhotoURL, req.PhoneNumber
	a.EmailVerified, a.Disabled = req.EmailVerified, req.Disabled
	mfa, err := checkMFA(req.MFAInfo, now)
	if err != nil {
		return err
	}
	a.MFA = mfa
	if err := e.accounts.mutate(func(s *accountSet) error { return s.insert(a) }); err != nil {
		return storeError(err)
	}
	return c.JSON(http.StatusOK, map[string]string{
		"kind": "identitytoolkit#SignupNewUserResponse", "localId": a.LocalID, "email": a.Email,
	})
}

// listAccounts is the Admin SDK's Users iterator: pages in localId order,
// the page token being the last localId of the previous page.
func (e *Emulator) listAccounts(c echo.Context) error {
	n := 1000
	if v := c.QueryParam("maxResults"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || m > 1000 {
			return badRequest("INVALID_PAGE_SELECTION")
		}
		n = m
	}
	page, more := e.accounts.page(c.QueryParam("nextPageToken"), n)
	users := make([]userInfo, len(page))
	for i, a := range page {
		users[i] = infoOf(a)
		// The download is for migrating users out: like Google, it gives
		// the admin the hash and salt themselves (bytes, in base64).
		if a.PasswordHash != "" {
			users[i].PasswordHash, users[i].Salt = exportHash(a.PasswordHash)
		}
	}
	resp := map[string]any{"kind": "identitytoolkit#DownloadAccountResponse", "users": users}
	if more {
		resp["nextPageToken"] = page[len(page)-1].LocalID
	}
	return c.JSON(http.StatusOK, resp)
}

// reset deletes every account and session, as the Firebase emulator's
// DELETE /emulator/v1/projects/{project}/accounts does.
func (e *Emulator) reset(c echo.Context) error {
	err := e.accounts.mutate(func(s *accountSet) error {
		clear(s.byID)
		return nil
	})
	if err != nil {
		return err
	}
	e.sessions.clear()
	e.oobs.clear()
	return c.JSON(http.StatusOK, map[string]any{})
}

// jwks serves the public keys as Google does at the same path: the next key,
// the current one and the retired ones in their grace. A short max-age lets
// verifiers pick up a new next key quickly; KeyGrace outlasts it.
func (e *Emulator) jwks(c echo.Context) error {
	set, err := e.keys.publicSet()
	if err != nil {
		return err
	}
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300, must-revalidate, no-transform")
	return c.JSONBlob(http.StatusOK, b)
}

// x509 serves {kid: certificate PEM}, the map the Admin SDKs fetch outside
// emulator mode.
func (e *Emulator) x509(c echo.Context) error {
	m := map[string]string{}
	for _, k := range e.keys.published() {
		m[k.kid] = string(k.certPEM)
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300, must-revalidate, no-transform")
	return c.JSON(http.StatusOK, m)
}

// discovery is the OpenID configuration of the issuer, pointing at this
// emulator's JWKS at Config.BaseURL: never at the request's Host, which a
// DNS-rebinding or misdirected request chooses.
func (e *Emulator) discovery(c echo.Context) error {
	if e.baseURL == "" {
		return &apiError{code: http.StatusNotFound, status: "NOT_FOUND",
			message: "The discovery document needs identity.Config.BaseURL, the address clients reach this emulator at."}
	}
	return c.JSON(http.StatusOK, map[string]any{
		"issuer":                                e.issuer,
		"jwks_uri":                              e.baseURL + JWKSPath,
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}
