package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"firebase.google.com/go/v4/auth/hash"
	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"

	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
)

// Issue 17: each method the Admin SDK calls, run through the unmodified SDK.

const admin = "Bearer owner"

func signInCustom(t *testing.T, srv *httptest.Server, token string) (int, map[string]any) {
	t.Helper()
	return call(t, srv, "POST", "/identitytoolkit.googleapis.com/v1/accounts:signInWithCustomToken?key=k",
		map[string]any{"token": token, "returnSecureToken": true})
}

func TestAdminSDKCustomTokens(t *testing.T) {
	e, srv := newTestEmulator(t)
	client := newAdminClient(t, srv)
	ctx := t.Context()
	ct, err := client.CustomTokenWithClaims(ctx, "custom-user", map[string]any{"premium": true, "package": "gold"})
	if err != nil {
		t.Fatal(err)
	}
	code, out := signInCustom(t, srv, ct)
	if code != 200 || out["isNewUser"] != true {
		t.Fatalf("signInWithCustomToken = %d %v; want 200, a new user", code, out)
	}
	t.Run("the ID token carries the uid, the developer claims and provider custom", func(t *testing.T) {
		tok, err := client.VerifyIDToken(ctx, out["idToken"].(string))
		if err != nil || tok.UID != "custom-user" || tok.Claims["premium"] != true || tok.Claims["package"] != "gold" || tok.Firebase.SignInProvider != "custom" {
			t.Fatalf("VerifyIDToken = %+v, %v; want custom-user with premium and package claims, provider custom", tok, err)
		}
	})
	t.Run("a refresh keeps the claims and the provider", func(t *testing.T) {
		_, r := refreshForm(t, srv, out["refreshToken"].(string))
		tok, err := client.VerifyIDToken(ctx, r["id_token"].(string))
		if err != nil || tok.Claims["package"] != "gold" || tok.Firebase.SignInProvider != "custom" {
			t.Fatalf("refreshed token = %+v, %v; want the claims and provider kept", tok, err)
		}
	})
	signed, err := e.SignClaims(map[string]any{"aud": customTokenAudience, "uid": "forged",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	wrongAud, _ := client.CustomToken(ctx, "x")
	parts := strings.Split(wrongAud, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"https://example.com","uid":"x","iat":` +
		itoa(time.Now().Unix()) + `,"exp":` + itoa(time.Now().Add(time.Hour).Unix()) + `}`))
	refused := []struct{ name, token, want string }{
		{"a signed custom token is refused, not trusted unchecked", signed, "INVALID_CUSTOM_TOKEN"},
		{"a custom token for another audience is refused", strings.Join(parts, "."), "INVALID_CUSTOM_TOKEN"},
		{"garbage is refused", "not.a.token", "INVALID_CUSTOM_TOKEN"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if code, out := signInCustom(t, srv, tt.token); code != 400 || !strings.HasPrefix(errMessage(out), tt.want) {
				t.Fatalf("signInWithCustomToken = %d %q; want 400 %s", code, errMessage(out), tt.want)
			}
		})
	}
	t.Run("a disabled user's custom token is refused", func(t *testing.T) {
		if _, err := client.UpdateUser(ctx, "custom-user", (&auth.UserToUpdate{}).Disabled(true)); err != nil {
			t.Fatal(err)
		}
		if code, out := signInCustom(t, srv, ct); code != 400 || errMessage(out) != "USER_DISABLED" {
			t.Fatalf("signInWithCustomToken = %d %q; want 400 USER_DISABLED", code, errMessage(out))
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestAdminSDKSessionCookies(t *testing.T) {
	// Ten minutes behind the SDK, so that its revocation stamp postdates the cookie.
	clock := clocktest.New(time.Now().Add(-10 * time.Minute))
	_, srv := newTestEmulator(t, func(c *Config) { c.Now = clock.Now })
	client := newAdminClient(t, srv)
	ctx := t.Context()
	up := signUp(t, srv, "ada@example.com", "correct horse")
	cookie, err := client.SessionCookie(ctx, up["idToken"].(string), time.Hour)
	if err != nil {
		t.Fatalf("SessionCookie: %v", err)
	}
	t.Run("the cookie verifies with the Admin SDK", func(t *testing.T) {
		tok, err := client.VerifySessionCookieAndCheckRevoked(ctx, cookie)
		if err != nil || tok.UID != up["localId"] || tok.Issuer != "https://session.firebase.google.com/"+testProject {
			t.Fatalf("VerifySessionCookieAndCheckRevoked = %+v, %v; want the user, issued by session.firebase.google.com", tok, err)
		}
	})
	t.Run("the cookie is signed with a published key and lives an hour", func(t *testing.T) {
		set := fetchJWKS(t, srv)
		tok, err := josejwt.ParseSigned(cookie, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		keys := set.Key(tok.Headers[0].KeyID)
		var c josejwt.Claims
		if len(keys) != 1 || tok.Claims(keys[0].Key, &c) != nil {
			t.Fatalf("the cookie's kid %q does not verify against the JWKS", tok.Headers[0].KeyID)
		}
		if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life != time.Hour {
			t.Fatalf("cookie life = %v; want 1h", life)
		}
	})
	t.Run("a duration under five minutes is refused", func(t *testing.T) {
		code, out := call(t, srv, "POST", adminPath+":createSessionCookie", map[string]any{"idToken": up["idToken"], "validDuration": "60"}, "Authorization", admin)
		if code != 400 || !strings.HasPrefix(errMessage(out), "INVALID_DURATION") {
			t.Fatalf("createSessionCookie(60s) = %d %q; want 400 INVALID_DURATION", code, errMessage(out))
		}
	})
	t.Run("revocation is reported", func(t *testing.T) {
		if err := client.RevokeRefreshTokens(ctx, up["localId"].(string)); err != nil {
			t.Fatal(err)
		}
		if _, err := client.VerifySessionCookieAndCheckRevoked(ctx, cookie); !auth.IsSessionCookieRevoked(err) {
			t.Fatalf("VerifySessionCookieAndCheckRevoked after revocation = %v; want revoked", err)
		}
	})
}

func TestAdminSDKDeleteUsers(t *testing.T) {
	e, srv := newTestEmulator(t)
	client := newAdminClient(t, srv)
	ctx := t.Context()
	for _, uid := range []string{"a", "b", "keep"} {
		if _, err := client.CreateUser(ctx, (&auth.UserToCreate{}).UID(uid)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := client.DeleteUsers(ctx, []string{"a", "b", "never-existed"})
	if err != nil || res.SuccessCount != 3 || res.FailureCount != 0 {
		t.Fatalf("DeleteUsers = %+v, %v; want 3 successes (a missing user counts as deleted)", res, err)
	}
	if _, ok := e.accounts.byUID("a"); ok {
		t.Fatal("user a survived DeleteUsers")
	}
	t.Run("without force an enabled account is kept and reported", func(t *testing.T) {
		code, out := call(t, srv, "POST", adminPath+"/accounts:batchDelete", map[string]any{"localIds": []string{"keep"}}, "Authorization", admin)
		errs, _ := out["errors"].([]any)
		if code != 200 || len(errs) != 1 || !strings.HasPrefix(errs[0].(map[string]any)["message"].(string), "NOT_DISABLED") {
			t.Fatalf("batchDelete without force = %d %v; want one NOT_DISABLED error", code, out)
		}
		if _, ok := e.accounts.byUID("keep"); !ok {
			t.Fatal("the enabled account was deleted")
		}
	})
}

func TestAdminSDKImportedUsersSignInWithTheirPasswords(t *testing.T) {
	const password = "imported password"
	salt, key, sep := []byte("NaCl"), []byte("a signer key of the old project"), []byte{0x07}
	mac := func(in string) []byte { m := hmac.New(sha256.New, key); m.Write([]byte(in)); return m.Sum(nil) }
	sha := func(in []byte, rounds int) []byte {
		for range rounds {
			s := sha256.Sum256(in)
			in = s[:]
		}
		return in
	}
	tests := []struct {
		name string
		alg  auth.UserImportHash
		hash func(t *testing.T) []byte
	}{
		{"Firebase's scrypt", hash.Scrypt{Key: key, SaltSeparator: sep, Rounds: 8, MemoryCost: 10}, func(t *testing.T) []byte {
			// scrypt over salt+separator keys AES-256-CTR, which encrypts the signer key.
			dk, err := scrypt.Key([]byte(password), append(append([]byte{}, salt...), sep...), 1<<10, 8, 1, 64)
			if err != nil {
				t.Fatal(err)
			}
			blk, _ := aes.NewCipher(dk[:32])
			out := make([]byte, len(key))
			cipher.NewCTR(blk, make([]byte, 16)).XORKeyStream(out, key)
			return out
		}},
		{"standard scrypt", hash.StandardScrypt{MemoryCost: 1024, BlockSize: 8, Parallelization: 1, DerivedKeyLength: 32}, func(t *testing.T) []byte {
			k, _ := scrypt.Key([]byte(password), salt, 1024, 8, 1, 32)
			return k
		}},
		{"bcrypt", hash.Bcrypt{}, func(t *testing.T) []byte {
			h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			return h
		}},
		{"HMAC-SHA256, password first", hash.HMACSHA256{Key: key, InputOrder: hash.InputOrderPasswordFirst}, func(*testing.T) []byte { return mac(password + string(salt)) }},
		{"HMAC-SHA256, salt first", hash.HMACSHA256{Key: key, InputOrder: hash.InputOrderSaltFirst}, func(*testing.T) []byte { return mac(string(salt) + password) }},
		{"SHA-256, two rounds", hash.SHA256{Rounds: 2, InputOrder: hash.InputOrderSaltFirst}, func(*testing.T) []byte { return sha([]byte(string(salt)+password), 2) }},
		{"PBKDF2-SHA256", hash.PBKDF2SHA256{Rounds: 1000}, func(t *testing.T) []byte {
			k, _ := pbkdf2.Key(sha256.New, password, salt, 1000, 32)
			return k
		}},
	}
	for _, tt := range tests {
		t.Run("a user imported with "+tt.name+" signs in with the old password only", func(t *testing.T) {
			_, srv := newTestEmulator(t)
			client := newAdminClient(t, srv)
			user := (&auth.UserToImport{}).UID("imported").Email("old@example.com").PasswordHash(tt.hash(t)).PasswordSalt(salt)
			res, err := client.ImportUsers(t.Context(), []*auth.UserToImport{user}, auth.WithHash(tt.alg))
			if err != nil || res.SuccessCount != 1 {
				t.Fatalf("ImportUsers = %+v, %v; want one success", res, err)
			}
			code, out := call(t, srv, "POST", signInPath, map[string]any{"email": "old@example.com", "password": password, "returnSecureToken": true})
			if code != 200 || out["localId"] != "imported" {
				t.Fatalf("sign-in with the old password = %d %q; want 200 as imported", code, errMessage(out))
			}
			if code, _ := call(t, srv, "POST", signInPath, map[string]any{"email": "old@example.com", "password": "another password"}); code != 400 {
				t.Fatalf("sign-in with another password = %d; want 400", code)
			}
		})
	}
	t.Run("an algorithm the emulator lacks is refused by name", func(t *testing.T) {
		_, srv := newTestEmulator(t)
		code, out := call(t, srv, "POST", adminPath+"/accounts:batchCreate", map[string]any{
			"hashAlgorithm": "ARGON2", "users": []any{map[string]any{"localId": "u", "passwordHash": "aGFzaA"}}}, "Authorization", admin)
		if code != 400 || !strings.Contains(errMessage(out), "ARGON2") {
			t.Fatalf("batchCreate with ARGON2 = %d %q; want 400 naming ARGON2", code, errMessage(out))
		}
	})
}

func TestAdminSDKUserFields(t *testing.T) {
	e, srv := newTestEmulator(t)
	client := newAdminClient(t, srv)
	ctx := t.Context()
	u, err := client.CreateUser(ctx, (&auth.UserToCreate{}).Email("ada@example.com").Password("correct horse").
		MFASettings(auth.MultiFactorSettings{EnrolledFactors: []*auth.MultiFactorInfo{
			{Phone: &auth.PhoneMultiFactorInfo{PhoneNumber: "+15555550100"}, DisplayName: "work phone", FactorID: "phone"},
		}}))
	if err != nil {
		t.Fatalf("CreateUser with a second factor: %v", err)
	}
	t.Run("a second factor given at creation is kept", func(t *testing.T) {
		f := u.MultiFactor.EnrolledFactors
		if len(f) != 1 || f[0].PhoneNumber != "+15555550100" || f[0].DisplayName != "work phone" || f[0].UID == "" || f[0].EnrollmentTimestamp == 0 {
			t.Fatalf("EnrolledFactors = %+v; want the work phone with an id and enrollment time", f)
		}
	})
	t.Run("UpdateUser clears second factors", func(t *testing.T) {
		u, err := client.UpdateUser(ctx, u.UID, (&auth.UserToUpdate{}).MFASettings(auth.MultiFactorSettings{}))
		if err != nil || len(u.MultiFactor.EnrolledFactors) != 0 {
			t.Fatalf("UpdateUser(no factors) = %+v, %v; want none", u.MultiFactor, err)
		}
	})
	t.Run("a linked provider is found by its uid and can be unlinked", func(t *testing.T) {
		_, err := client.UpdateUser(ctx, u.UID, (&auth.UserToUpdate{}).ProviderToLink(&auth.UserProvider{ProviderID: "google.com", UID: "g-123", Email: "ada@gmail.test"}))
		if err != nil {
			t.Fatalf("UpdateUser(ProviderToLink): %v", err)
		}
		got, err := client.GetUserByProviderUID(ctx, "google.com", "g-123")
		if err != nil || got.UID != u.UID {
			t.Fatalf("GetUserByProviderUID = %v, %v; want %s", got, err, u.UID)
		}
		if _, err := client.UpdateUser(ctx, u.UID, (&auth.UserToUpdate{}).ProvidersToDelete([]string{"google.com"})); err != nil {
			t.Fatal(err)
		}
		if _, err := client.GetUserByProviderUID(ctx, "google.com", "g-123"); !auth.IsUserNotFound(err) {
			t.Fatalf("GetUserByProviderUID after unlinking = %v; want not found", err)
		}
	})
	t.Run("another account cannot link the same identity", func(t *testing.T) {
		client.UpdateUser(ctx, u.UID, (&auth.UserToUpdate{}).ProviderToLink(&auth.UserProvider{ProviderID: "github.com", UID: "gh-1"}))
		other, _ := client.CreateUser(ctx, (&auth.UserToCreate{}).UID("other"))
		if _, err := client.UpdateUser(ctx, other.UID, (&auth.UserToUpdate{}).ProviderToLink(&auth.UserProvider{ProviderID: "github.com", UID: "gh-1"})); err == nil {
			t.Fatal("linking an identity another account holds succeeded; want an error")
		}
	})
	t.Run("a sign-in sets lastRefreshAt", func(t *testing.T) {
		signIn(t, srv, "ada@example.com", "correct horse")
		got, err := client.GetUser(ctx, u.UID)
		if err != nil || got.UserMetadata.LastRefreshTimestamp == 0 {
			t.Fatalf("LastRefreshTimestamp = %+v, %v; want set", got.UserMetadata, err)
		}
	})
	t.Run("a field the emulator does not support is refused by name and changes nothing", func(t *testing.T) {
		code, out := call(t, srv, "POST", adminPath+"/accounts:update",
			map[string]any{"localId": u.UID, "displayName": "changed", "upgradeToFederatedLogin": true}, "Authorization", admin)
		if code != 400 || !strings.Contains(errMessage(out), `"upgradeToFederatedLogin"`) {
			t.Fatalf("update with upgradeToFederatedLogin = %d %q; want 400 naming the field", code, errMessage(out))
		}
		if a, _ := e.accounts.byUID(u.UID); a.DisplayName == "changed" {
			t.Fatal("the refused update changed the display name")
		}
	})
	t.Run("QueryUsers finds the user by email", func(t *testing.T) {
		res, err := client.QueryUsers(ctx, &auth.QueryUsersRequest{Expression: []*auth.Expression{{Email: "ADA@example.com"}}})
		if err != nil || len(res.Users) != 1 || res.Users[0].UID != u.UID || res.Count != 1 {
			t.Fatalf("QueryUsers = %+v, %v; want the one user", res, err)
		}
	})
}

func TestAdminSDKProjectConfig(t *testing.T) {
	_, srv := newTestEmulator(t)
	client := newAdminClient(t, srv)
	ctx := t.Context()
	mfa := auth.MultiFactorConfig{ProviderConfigs: []*auth.ProviderConfig{{State: auth.Enabled, TOTPProviderConfig: &auth.TOTPProviderConfig{AdjacentIntervals: 3}}}}
	if _, err := client.UpdateProjectConfig(ctx, (&auth.ProjectConfigToUpdate{}).MultiFactorConfig(mfa)); err != nil {
		t.Fatalf("UpdateProjectConfig: %v", err)
	}
	got, err := client.GetProjectConfig(ctx)
	if err != nil || got.MultiFactorConfig == nil || len(got.MultiFactorConfig.ProviderConfigs) != 1 ||
		got.MultiFactorConfig.ProviderConfigs[0].TOTPProviderConfig.AdjacentIntervals != 3 {
		t.Fatalf("GetProjectConfig = %+v, %v; want the TOTP setting back", got, err)
	}
	t.Run("a setting the emulator enforces is refused by name", func(t *testing.T) {
		code, out := call(t, srv, "PATCH", "/identitytoolkit.googleapis.com/v2/projects/"+testProject+"/config?updateMask=emailPrivacyConfig.enableImprovedEmailPrivacy",
			map[string]any{"emailPrivacyConfig": map[string]any{"enableImprovedEmailPrivacy": false}}, "Authorization", admin)
		if code != 400 || !strings.Contains(errMessage(out), "emailPrivacyConfig.enableImprovedEmailPrivacy") {
			t.Fatalf("PATCH emailPrivacyConfig = %d %q; want 400 naming the path", code, errMessage(out))
		}
	})
}

func TestAdminSDKActionLinksAreApplied(t *testing.T) {
	_, srv := newTestEmulator(t)
	client := newAdminClient(t, srv)
	ctx := t.Context()
	up := signUp(t, srv, "ada@example.com", "correct horse")
	code := func(link string) string {
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		return u.Query().Get("oobCode")
	}
	t.Run("a password reset link sets a new password and ends the old sessions", func(t *testing.T) {
		link, err := client.PasswordResetLink(ctx, "ada@example.com")
		if err != nil {
			t.Fatal(err)
		}
		c, out := call(t, srv, "POST", "/identitytoolkit.googleapis.com/v1/accounts:resetPassword?key=k", map[string]any{"oobCode": code(link), "newPassword": "a new password"})
		if c != 200 || out["email"] != "ada@example.com" || out["requestType"] != "PASSWORD_RESET" {
			t.Fatalf("resetPassword = %d %v; want 200 for ada@example.com", c, out)
		}
		signIn(t, srv, "ada@example.com", "a new password")
		if c, _ := refreshForm(t, srv, up["refreshToken"].(string)); c != 400 {
			t.Fatalf("the old refresh token after the reset = %d; want 400", c)
		}
	})
	t.Run("an email sign-in link signs a new user in, verified", func(t *testing.T) {
		link, err := client.EmailSignInLink(ctx, "new@example.com", &auth.ActionCodeSettings{URL: "http://localhost/done", HandleCodeInApp: true})
		if err != nil {
			t.Fatal(err)
		}
		c, out := call(t, srv, "POST", "/identitytoolkit.googleapis.com/v1/accounts:signInWithEmailLink?key=k", map[string]any{"email": "new@example.com", "oobCode": code(link)})
		if c != 200 || out["isNewUser"] != true || out["idToken"] == nil {
			t.Fatalf("signInWithEmailLink = %d %v; want 200, a new user with tokens", c, out)
		}
		got, err := client.GetUserByEmail(ctx, "new@example.com")
		if err != nil || !got.EmailVerified {
			t.Fatalf("the link's user = %+v, %v; want verified", got, err)
		}
	})
	t.Run("a continue URL outside the authorized domains is refused", func(t *testing.T) {
		_, err := client.EmailSignInLink(ctx, "new@example.com", &auth.ActionCodeSettings{URL: "https://evil.example/", HandleCodeInApp: true})
		if !auth.IsUnauthorizedContinueURI(err) {
			t.Fatalf("EmailSignInLink(evil.example) = %v; want unauthorized continue URI", err)
		}
	})
}

func TestUnknownMethodsAre404NamingThem(t *testing.T) {
	_, srv := newTestEmulator(t)
	tests := []struct{ name, method, path, want string }{
		{"an unknown accounts method", "POST", "/identitytoolkit.googleapis.com/v1/accounts:signInWithGameCenter?key=k", "accounts:signInWithGameCenter"},
		{"an unknown project method", "POST", adminPath + ":frobnicate", ":frobnicate"},
		{"tenants, which the emulator does not serve", "GET", "/identitytoolkit.googleapis.com/v2/projects/" + testProject + "/tenants", "/tenants"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is a 404 naming it", func(t *testing.T) {
			code, out := call(t, srv, tt.method, tt.path, map[string]any{}, "Authorization", admin)
			if code != 404 || !strings.Contains(errMessage(out), tt.want) {
				t.Fatalf("%s %s = %d %q; want 404 naming %s", tt.method, tt.path, code, errMessage(out), tt.want)
			}
		})
	}
}
