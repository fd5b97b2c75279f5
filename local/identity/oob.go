package identity

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

// OobCode is an out-of-band code: what Identity Platform would email (a
// verification or password-reset link). The emulator sends no mail; it keeps
// the codes, lists them at /emulator/v1/projects/{p}/oobCodes in the
// Firebase emulator's shape, and hands each to Config.OnOobCode.
type OobCode struct {
	Email       string `json:"email"`
	RequestType string `json:"requestType"` // VERIFY_EMAIL, VERIFY_AND_CHANGE_EMAIL, PASSWORD_RESET, EMAIL_SIGNIN
	OobCode     string `json:"oobCode"`
	OobLink     string `json:"oobLink"`
	NewEmail    string `json:"newEmail,omitempty"` // for VERIFY_AND_CHANGE_EMAIL
}

// oobRecord is a code and what it may do: it is bound to the account and to
// the email it was sent to, and is used at most once.
type oobRecord struct {
	OobCode
	uid string
}

// errStaleOobCode is a code for an address the account no longer has.
var errStaleOobCode = errors.New("INVALID_OOB_CODE")

// maxOobCodes bounds the outbox: the oldest codes are forgotten first, so a
// loop requesting links cannot grow the emulator's memory without end.
const maxOobCodes = 1000

// oobStore keeps codes in memory in issue order, as the Firebase emulator
// does: a restart forgets them, as it forgets refresh tokens.
type oobStore struct {
	mu    sync.Mutex
	order []string
	byKey map[string]oobRecord
}

func newOobStore() *oobStore { return &oobStore{byKey: map[string]oobRecord{}} }

func (s *oobStore) add(r oobRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.order) >= maxOobCodes {
		delete(s.byKey, s.order[0])
		s.order = s.order[1:]
	}
	s.order = append(s.order, r.OobCode.OobCode)
	s.byKey[r.OobCode.OobCode] = r
}

// take removes and returns the code if it exists and is of one of kinds.
func (s *oobStore) take(code string, kinds ...string) (oobRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byKey[code]
	if !ok || (len(kinds) > 0 && !containsString(kinds, r.RequestType)) {
		return oobRecord{}, false
	}
	delete(s.byKey, code)
	return r, true
}

// peek returns the code without using it (checkActionCode).
func (s *oobStore) peek(code string) (oobRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byKey[code]
	return r, ok
}

func (s *oobStore) list() []OobCode {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]OobCode, 0, len(s.byKey))
	for _, k := range s.order {
		if r, ok := s.byKey[k]; ok {
			out = append(out, r.OobCode)
		}
	}
	return out
}

func (s *oobStore) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.order, s.byKey = nil, map[string]oobRecord{}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// modes are the link's mode parameter for each request type, as the SDKs'
// action-code parsers read them (ActionCodeURL in @firebase/auth).
var modes = map[string]string{
	"VERIFY_EMAIL":            "verifyEmail",
	"VERIFY_AND_CHANGE_EMAIL": "verifyAndChangeEmail",
	"PASSWORD_RESET":          "resetPassword",
	"EMAIL_SIGNIN":            "signIn",
}

// issueOob creates a code for the account uid, sent to email, and returns it
// with its link: <action URL>?mode=…&oobCode=…&apiKey=…&continueUrl=…&lang=en,
// the query Identity Platform's links carry and the SDKs parse.
func (e *Emulator) issueOob(c echo.Context, uid, email, newEmail, requestType, continueURL, apiKey string) OobCode {
	b := make([]byte, 32)
	rand.Read(b) // never fails; see crypto/rand.Read
	code := base64.RawURLEncoding.EncodeToString(b)
	action := e.actionURL
	switch {
	case action != "":
	case e.baseURL != "":
		action = e.baseURL + actionPath
	default:
		// The emulator's own page, at the host the request named, which
		// checkHost admitted (loopback or configured).
		action = "http://" + c.Request().Host + actionPath
	}
	q := url.Values{"mode": {modes[requestType]}, "oobCode": {code}, "apiKey": {cmpOr(apiKey, "fake-api-key")}, "lang": {"en"}}
	if continueURL != "" {
		q.Set("continueUrl", continueURL)
	}
	sep := "?"
	if strings.Contains(action, "?") {
		sep = "&"
	}
	oc := OobCode{Email: email, RequestType: requestType, OobCode: code, OobLink: action + sep + q.Encode(), NewEmail: newEmail}
	e.oobs.add(oobRecord{OobCode: oc, uid: uid})
	if e.onOob != nil {
		e.onOob(oc)
	}
	return oc
}

// authorizedContinueURL reports whether a link may send the user on to u:
// its host must be an authorized domain, as on Identity Platform, whose
// defaults are localhost, <project>.firebaseapp.com and <project>.web.app;
// the emulator adds loopback addresses and Config.AuthorizedDomains.
func (e *Emulator) authorizedContinueURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") {
		return false
	}
	h := strings.ToLower(p.Hostname())
	if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) ||
		h == e.project+".firebaseapp.com" || h == e.project+".web.app" {
		return true
	}
	return e.domains[h]
}

// listOobCodes is the Firebase emulator's GET /emulator/v1/projects/{p}/oobCodes.
func (e *Emulator) listOobCodes(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"oobCodes": e.oobs.list()})
}

// sendOobCodeRequest is the body of accounts:sendOobCode.
type sendOobCodeRequest struct {
	RequestType   string `json:"requestType"`
	IDToken       string `json:"idToken"`
	Email         string `json:"email"`
	NewEmail      string `json:"newEmail"`
	ContinueURL   string `json:"continueUrl"`
	ReturnOobLink bool   `json:"returnOobLink"`
	// Accepted and ignored, as they only shape the link's handling in apps.
	CanHandleCodeInApp bool   `json:"canHandleCodeInApp"`
	DynamicLinkDomain  string `json:"dynamicLinkDomain"`
	LinkDomain         string `json:"linkDomain"`
	AndroidPackageName string `json:"androidPackageName"`
	AndroidInstallApp  bool   `json:"androidInstallApp"`
	AndroidMinimumVer  string `json:"androidMinimumVersion"`
	IOSBundleID        string `json:"iOSBundleId"`
	TenantID           string `json:"tenantId"`
	TargetProjectID    string `json:"targetProjectId"`
	CaptchaResp        string `json:"captchaResp"`
	ClientType         string `json:"clientType"`
	RecaptchaVersion   string `json:"recaptchaVersion"`
}

// sendOobCode "sends" an email action link. Clients ask with their ID token
// (VERIFY_EMAIL: sendEmailVerification; VERIFY_AND_CHANGE_EMAIL:
// verifyBeforeUpdateEmail) or with an email (PASSWORD_RESET:
// sendPasswordResetEmail; EMAIL_SIGNIN: sendSignInLinkToEmail); the admin may
// ask for any account by email and get the link back (returnOobLink: the
// Admin SDK's EmailVerificationLink, PasswordResetLink, EmailSignInLink).
func (e *Emulator) sendOobCode(c echo.Context) error {
	var req sendOobCodeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	admin := isAdmin(c.Request())
	if req.ReturnOobLink && !admin {
		return &apiError{code: http.StatusBadRequest, message: "INSUFFICIENT_PERMISSION : Only an administrator may ask for the link (returnOobLink)."}
	}
	if req.ContinueURL != "" && !e.authorizedContinueURL(req.ContinueURL) {
		return badRequest("UNAUTHORIZED_DOMAIN : Domain not allowlisted by project")
	}
	apiKey := c.QueryParam("key")
	resp := map[string]any{"kind": "identitytoolkit#GetOobConfirmationCodeResponse"}
	reply := func(oc *OobCode, email string) error {
		resp["email"] = email
		if req.ReturnOobLink && oc != nil {
			resp["oobCode"], resp["oobLink"] = oc.OobCode, oc.OobLink
		}
		return c.JSON(http.StatusOK, resp)
	}
	switch req.RequestType {
	case "VERIFY_EMAIL":
		var a account
		if req.IDToken != "" || !admin {
			got, aerr := e.verifyIDToken(req.IDToken)
			if aerr != nil {
				return aerr
			}
			a = got
		} else {
			found, ok := e.accounts.byEmailAddr(req.Email)
			if !ok {
				// USER_NOT_FOUND, as production answers the Admin SDK (the
				// Firebase emulator's sendOobCode notes it matches it).
				return badRequest("USER_NOT_FOUND")
			}
			a = found
		}
		if a.Email == "" {
			return badRequest("MISSING_EMAIL")
		}
		oc := e.issueOob(c, a.LocalID, a.Email, "", req.RequestType, req.ContinueURL, apiKey)
		return reply(&oc, a.Email)
	case "VERIFY_AND_CHANGE_EMAIL":
		// A sensitive change: it needs a recent sign-in, as on Google
		// (github.com/firebase/firebase-js-sdk/issues/5202).
		a, aerr := e.verifyRecentIDToken(req.IDToken)
		if aerr != nil {
			return aerr
		}
		newEmail, err := normalizeEmail(req.NewEmail)
		if err != nil {
			return badRequest("INVALID_NEW_EMAIL")
		}
		if o, taken := e.accounts.byEmailAddr(newEmail); taken && o.LocalID != a.LocalID {
			if e.reveal {
				return badRequest("EMAIL_EXISTS")
			}
			// With enumeration protection the answer does not tell whether the
			// address has an account; no code is issued, as no mail would go.
			return reply(nil, a.Email)
		}
		oc := e.issueOob(c, a.LocalID, newEmail, newEmail, req.RequestType, req.ContinueURL, apiKey)
		return reply(&oc, a.Email)
	case "PASSWORD_RESET", "EMAIL_SIGNIN":
		email, err := normalizeEmail(req.Email)
		if err != nil {
			return badRequest("INVALID_EMAIL")
		}
		a, found := e.accounts.byEmailAddr(email)
		switch {
		case found:
			oc := e.issueOob(c, a.LocalID, a.Email, "", req.RequestType, req.ContinueURL, apiKey)
			return reply(&oc, a.Email)
		case req.RequestType == "EMAIL_SIGNIN":
			// A sign-in link may create its account when used.
			oc := e.issueOob(c, "", email, "", req.RequestType, req.ContinueURL, apiKey)
			return reply(&oc, email)
		case e.reveal || admin:
			return badRequest("EMAIL_NOT_FOUND")
		default:
			// Enumeration protection: the same answer whether or not the
			// email has an account, and no mail for a stranger.
			return reply(nil, email)
		}
	case "":
		return badRequest("MISSING_REQ_TYPE")
	default:
		return badRequest("INVALID_REQ_TYPE : " + req.RequestType + " is not supported by this emulator")
	}
}

// applyOobCode is accounts:update with an oobCode (applyActionCode): it
// verifies the email the code was sent to, or changes to it.
func (e *Emulator) applyOobCode(c echo.Context, code string) error {
	rec, ok := e.oobs.take(code, "VERIFY_EMAIL", "VERIFY_AND_CHANGE_EMAIL")
	if !ok {
		return badRequest("INVALID_OOB_CODE")
	}
	var updated account
	err := e.accounts.mutate(func(s *accountSet) error {
		a, ok := s.byID[rec.uid]
		if !ok {
			return ErrUserNotFound
		}
		switch rec.RequestType {
		case "VERIFY_EMAIL":
			// Bound to the address it went to: a code sent before an email
			// change verifies nothing after it.
			if !strings.EqualFold(a.Email, rec.Email) {
				return errStaleOobCode
			}
		case "VERIFY_AND_CHANGE_EMAIL":
			a.Email = rec.NewEmail
		}
		a.EmailVerified = true
		if err := s.checkUnique(a); err != nil {
			return err
		}
		updated = *a
		return nil
	})
	switch {
	case errors.Is(err, errStaleOobCode):
		return badRequest("INVALID_OOB_CODE")
	case err != nil:
		return storeError(err)
	}
	resp := map[string]any{
		"kind": "identitytoolkit#SetAccountInfoResponse", "localId": updated.LocalID,
		"email": updated.Email, "emailVerified": true,
	}
	if rec.RequestType == "VERIFY_AND_CHANGE_EMAIL" {
		resp["newEmail"] = updated.Email
	}
	return c.JSON(http.StatusOK, resp)
}

// actionPath is the emulator's own page for email action links, as the
// Firebase emulator has one: following a verification link there applies it.
const actionPath = "/emulator/action"

// action applies a verifyEmail or verifyAndChangeEmail link followed in a
// browser. Other modes need the app's own handler (a new password, a
// sign-in), so the page says so instead.
func (e *Emulator) action(c echo.Context) error {
	mode, code := c.QueryParam("mode"), c.QueryParam("oobCode")
	if mode != "verifyEmail" && mode != "verifyAndChangeEmail" {
		return c.String(http.StatusBadRequest, "This emulator page applies email verification links only; open "+
			"links of mode "+mode+" in the app's own action handler (identity.Config.ActionURL).\n")
	}
	if err := e.applyOobCode(&discardJSON{Context: c}, code); err != nil {
		ae, _ := err.(*apiError)
		msg := "The link could not be applied"
		if ae != nil {
			msg += ": " + ae.message
		}
		return c.String(http.StatusBadRequest, msg+". It may have been used already; ask for a new one.\n")
	}
	return c.String(http.StatusOK, "Your email address is verified. You can close this page and sign in.\n")
}

// discardJSON lets the action page reuse applyOobCode, whose JSON answer
// it replaces with a sentence.
type discardJSON struct{ echo.Context }

func (d *discardJSON) JSON(int, any) error { return nil }

// resetPassword is accounts:resetPassword: with an oobCode alone it says
// what the code is for (checkActionCode, verifyPasswordResetCode); with a
// newPassword it sets the password (confirmPasswordReset), which also
// proves the email and ends every session.
func (e *Emulator) resetPassword(c echo.Context) error {
	var req struct {
		OobCode     string `json:"oobCode"`
		NewPassword string `json:"newPassword"`
		// Sent by older clients beside the code; the code decides.
		Email       string `json:"email"`
		OldPassword string `json:"oldPassword"`
		TenantID    string `json:"tenantId"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.TenantID != "" {
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	}
	if req.OobCode == "" {
		return badRequest("MISSING_OOB_CODE")
	}
	if req.NewPassword == "" {
		rec, ok := e.oobs.peek(req.OobCode)
		if !ok {
			return badRequest("INVALID_OOB_CODE")
		}
		resp := map[string]any{"kind": "identitytoolkit#ResetPasswordResponse", "email": rec.Email, "requestType": rec.RequestType}
		if rec.NewEmail != "" {
			resp["newEmail"] = rec.NewEmail
		}
		return c.JSON(http.StatusOK, resp)
	}
	if err := checkCredentials("", req.NewPassword); err != nil {
		return err
	}
	if err := checkPassword(req.NewPassword); err != nil {
		return badRequest(err.Error())
	}
	if _, ok := e.oobs.peek(req.OobCode); !ok {
		return badRequest("INVALID_OOB_CODE") // spare the hash
	}
	hash, err := e.hasher.hash(c.Request().Context(), req.NewPassword)
	if err != nil {
		return err
	}
	rec, ok := e.oobs.take(req.OobCode, "PASSWORD_RESET")
	if !ok {
		return badRequest("INVALID_OOB_CODE")
	}
	now := e.now()
	err = e.accounts.mutate(func(s *accountSet) error {
		a, ok := s.byID[rec.uid]
		if !ok {
			return ErrUserNotFound
		}
		if !strings.EqualFold(a.Email, rec.Email) {
			return errStaleOobCode
		}
		a.PasswordHash, a.PasswordUpdatedAt, a.ValidSince = hash, now.UnixMilli(), now.Unix()
		a.EmailVerified = true
		return nil
	})
	switch {
	case errors.Is(err, errStaleOobCode):
		return badRequest("INVALID_OOB_CODE")
	case err != nil:
		return storeError(err)
	}
	e.sessions.dropUser(rec.uid)
	e.throttle.succeeded(rec.Email) // "you can immediately restore it by resetting your password"
	return c.JSON(http.StatusOK, map[string]any{"kind": "identitytoolkit#ResetPasswordResponse", "email": rec.Email, "requestType": "PASSWORD_RESET"})
}

// signInWithEmailLink signs in with an EMAIL_SIGNIN code sent to email,
// creating the account on first use; following the link proves the email.
func (e *Emulator) signInWithEmailLink(c echo.Context) error {
	var req struct {
		Email             string `json:"email"`
		OobCode           string `json:"oobCode"`
		IDToken           string `json:"idToken"`
		ReturnSecureToken bool   `json:"returnSecureToken"`
		TenantID          string `json:"tenantId"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	switch {
	case req.TenantID != "":
		return badRequest("UNSUPPORTED_TENANT_OPERATION")
	case req.IDToken != "":
		return badRequest("INVALID_ARGUMENT : linking an email link to a signed-in user is not supported by this emulator")
	case req.OobCode == "":
		return badRequest("MISSING_OOB_CODE")
	case req.Email == "":
		return badRequest("MISSING_EMAIL")
	}
	rec, ok := e.oobs.peek(req.OobCode)
	if !ok || rec.RequestType != "EMAIL_SIGNIN" {
		return badRequest("INVALID_OOB_CODE")
	}
	if !strings.EqualFold(rec.Email, req.Email) {
		return badRequest("INVALID_EMAIL : The email provided does not match the sign-in email address.")
	}
	if _, ok := e.oobs.take(req.OobCode, "EMAIL_SIGNIN"); !ok {
		return badRequest("INVALID_OOB_CODE")
	}
	now := e.now()
	var a account
	isNew := false
	err := e.accounts.mutate(func(s *accountSet) error {
		got, ok := s.byEmail(rec.Email)
		if !ok {
			got = newAccount(newUID(), now)
			got.Email = rec.Email
			if err := s.insert(got); err != nil {
				return err
			}
			isNew = true
		}
		got.EmailVerified = true
		got.LastLoginAt, got.LastRefreshAt = now.UnixMilli(), now.UnixMilli()
		a = *got
		return nil
	})
	if err != nil {
		return storeError(err)
	}
	if a.Disabled {
		return badRequest("USER_DISABLED")
	}
	resp := map[string]any{"kind": "identitytoolkit#EmailLinkSigninResponse", "localId": a.LocalID, "email": a.Email, "isNewUser": isNew}
	if err := e.addTokens(resp, a, now); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, resp)
}
