package identity

import (
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"

	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
)

const (
	sendOobPath = "/identitytoolkit.googleapis.com/v1/accounts:sendOobCode?key=the-api-key"
	oobListPath = "/emulator/v1/projects/" + testProject + "/oobCodes"
)

// outbox collects what Config.OnOobCode receives.
type outbox struct {
	mu    sync.Mutex
	codes []OobCode
}

func (o *outbox) add(c OobCode) { o.mu.Lock(); o.codes = append(o.codes, c); o.mu.Unlock() }

func (o *outbox) len() int { o.mu.Lock(); defer o.mu.Unlock(); return len(o.codes) }

func (o *outbox) last(t *testing.T) OobCode {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.codes) == 0 {
		t.Fatal("OnOobCode was never called; want the link handed to it")
	}
	return o.codes[len(o.codes)-1]
}

func TestEmailVerificationGoesThroughAnOutOfBandCode(t *testing.T) {
	var box outbox
	_, srv := newTestEmulator(t, func(c *Config) {
		c.OnOobCode = box.add
		c.ActionURL = "http://127.0.0.1:1/auth/action"
	})
	up := signUp(t, srv, "ada@example.com", "correct horse")

	code, out := call(t, srv, "POST", sendOobPath, map[string]any{
		"requestType": "VERIFY_EMAIL", "idToken": up["idToken"], "continueUrl": "http://127.0.0.1:1/after"})
	if code != 200 || out["email"] != "ada@example.com" || out["oobLink"] != nil {
		t.Fatalf("sendOobCode = %d %v; want 200 naming the email, without the link (only the admin gets it)", code, out)
	}
	sent := box.last(t)

	t.Run("the link carries what the SDKs parse", func(t *testing.T) {
		u, err := url.Parse(sent.OobLink)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if u.Scheme+"://"+u.Host+u.Path != "http://127.0.0.1:1/auth/action" || q.Get("mode") != "verifyEmail" ||
			q.Get("oobCode") != sent.OobCode || q.Get("apiKey") != "the-api-key" || q.Get("continueUrl") != "http://127.0.0.1:1/after" || q.Get("lang") != "en" {
			t.Fatalf("link = %s; want the action URL with mode=verifyEmail, the code, apiKey=the-api-key, the continueUrl and lang=en", sent.OobLink)
		}
	})
	t.Run("the outbox lists the code as the Firebase emulator does", func(t *testing.T) {
		code, out := call(t, srv, "GET", oobListPath, nil)
		codes, _ := out["oobCodes"].([]any)
		if code != 200 || len(codes) != 1 {
			t.Fatalf("GET oobCodes = %d %v; want 200 with one code", code, out)
		}
		c := codes[0].(map[string]any)
		if c["email"] != "ada@example.com" || c["requestType"] != "VERIFY_EMAIL" || c["oobCode"] != sent.OobCode || c["oobLink"] != sent.OobLink {
			t.Fatalf("listed code = %v; want email, requestType VERIFY_EMAIL, oobCode and oobLink as handed to OnOobCode", c)
		}
	})
	t.Run("applying the code verifies the email, once", func(t *testing.T) {
		code, out := call(t, srv, "POST", updatePath, map[string]any{"oobCode": sent.OobCode})
		if code != 200 || out["emailVerified"] != true || out["email"] != "ada@example.com" {
			t.Fatalf("apply = %d %v; want 200, emailVerified true", code, out)
		}
		code, out = call(t, srv, "POST", updatePath, map[string]any{"oobCode": sent.OobCode})
		if code != 400 || errMessage(out) != "INVALID_OOB_CODE" {
			t.Fatalf("applying it again = %d %q; want 400 INVALID_OOB_CODE", code, errMessage(out))
		}
		in := signIn(t, srv, "ada@example.com", "correct horse")
		set := fetchJWKS(t, srv)
		tok, err := verify(set, in, time.Now())
		if err != nil || tok.EmailVerified == nil || !*tok.EmailVerified {
			t.Fatalf("the next token = %+v, %v; want email_verified true", tok, err)
		}
	})
}

func TestAVerificationCodeIsBoundToTheAddressItWentTo(t *testing.T) {
	var box outbox
	_, srv := newTestEmulator(t, func(c *Config) { c.OnOobCode = box.add })
	up := signUp(t, srv, "ada@example.com", "correct horse")
	if code, out := call(t, srv, "POST", sendOobPath, map[string]any{"requestType": "VERIFY_EMAIL", "idToken": up["idToken"]}); code != 200 {
		t.Fatalf("sendOobCode = %d %v; want 200", code, out)
	}
	stale := box.last(t)
	// The admin moves the account to an address nobody has verified.
	if code, out := call(t, srv, "POST", adminPath+"/accounts:update", map[string]any{"localId": up["localId"], "email": "unverified@example.com"}, "Authorization", "Bearer owner"); code != 200 {
		t.Fatalf("admin email change = %d %v; want 200", code, out)
	}
	code, out := call(t, srv, "POST", updatePath, map[string]any{"oobCode": stale.OobCode})
	if code != 400 || errMessage(out) != "INVALID_OOB_CODE" {
		t.Fatalf("applying a code sent to the old address = %d %v; want 400 INVALID_OOB_CODE", code, out)
	}
}

func TestTheEmulatorsActionPageAppliesAVerificationLink(t *testing.T) {
	var box outbox
	e, srv := newTestEmulator(t, func(c *Config) { c.OnOobCode = box.add })
	up := signUp(t, srv, "ada@example.com", "correct horse")
	call(t, srv, "POST", sendOobPath, map[string]any{"requestType": "VERIFY_EMAIL", "idToken": up["idToken"]})
	link := box.last(t).OobLink
	if !strings.HasPrefix(link, srv.URL+actionPath+"?") {
		t.Fatalf("link = %s; want the emulator's own %s page", link, actionPath)
	}
	resp, err := srv.Client().Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if a, _ := e.accounts.byUID(up["localId"].(string)); resp.StatusCode != 200 || !a.EmailVerified {
		t.Fatalf("following the link = %d %q, emailVerified %v; want 200 and verified", resp.StatusCode, body, a.EmailVerified)
	}
}

func TestTheSeededUserIsVerified(t *testing.T) {
	e, srv := newTestEmulator(t)
	// An account that exists unverified, with another password, is fixed too.
	signUp(t, srv, "demo@acme.test", "an old password")
	uid, err := e.EnsureUser(t.Context(), "demo@acme.test", "correct-horse-battery")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := e.accounts.byUID(uid); !a.EmailVerified {
		t.Fatalf("the seeded user = %+v; want emailVerified", a)
	}
}

func TestAdminSDKRevocationEndsRefreshAndIsReported(t *testing.T) {
	// Ten minutes behind the Admin SDK, as in TestFirebaseAdminSDK, so the
	// revocation the SDK stamps postdates the tokens.
	clock := clocktest.New(time.Now().Add(-10 * time.Minute))
	_, srv := newTestEmulator(t, func(c *Config) { c.Now = clock.Now })
	client := newAdminClient(t, srv)
	up := signUp(t, srv, "ada@example.com", "correct horse")
	uid, idToken, rt := up["localId"].(string), up["idToken"].(string), up["refreshToken"].(string)
	if code, _ := refreshForm(t, srv, rt); code != 200 {
		t.Fatalf("refresh before revocation = %d; want 200", code)
	}
	if err := client.RevokeRefreshTokens(t.Context(), uid); err != nil {
		t.Fatalf("RevokeRefreshTokens: %v", err)
	}
	if code, out := refreshForm(t, srv, rt); code != 400 {
		t.Fatalf("refresh after RevokeRefreshTokens = %d %v; want 400", code, out)
	}
	if _, err := client.VerifyIDTokenAndCheckRevoked(t.Context(), idToken); !auth.IsIDTokenRevoked(err) {
		t.Fatalf("VerifyIDTokenAndCheckRevoked = %v; want revoked", err)
	}
}

func TestAdminSDKEmailActionLinks(t *testing.T) {
	_, srv := newTestEmulator(t)
	client := newAdminClient(t, srv)
	ctx := t.Context()
	if _, err := client.CreateUser(ctx, (&auth.UserToCreate{}).Email("ada@example.com").Password("correct horse")); err != nil {
		t.Fatal(err)
	}
	settings := &auth.ActionCodeSettings{URL: "http://127.0.0.1:1/done"}
	tests := []struct {
		name string
		mode string
		link func() (string, error)
	}{
		{"EmailVerificationLink returns a verifyEmail link", "verifyEmail", func() (string, error) {
			return client.EmailVerificationLinkWithSettings(ctx, "ada@example.com", settings)
		}},
		{"PasswordResetLink returns a resetPassword link", "resetPassword", func() (string, error) {
			return client.PasswordResetLinkWithSettings(ctx, "ada@example.com", settings)
		}},
		{"EmailSignInLink returns a signIn link", "signIn", func() (string, error) {
			return client.EmailSignInLink(ctx, "ada@example.com", &auth.ActionCodeSettings{URL: "http://127.0.0.1:1/done", HandleCodeInApp: true})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			link, err := tt.link()
			if err != nil {
				t.Fatalf("link: %v", err)
			}
			u, err := url.Parse(link)
			if err != nil || u.Query().Get("mode") != tt.mode || u.Query().Get("oobCode") == "" || u.Query().Get("continueUrl") != "http://127.0.0.1:1/done" {
				t.Fatalf("link = %s; want mode=%s, an oobCode and the continueUrl", link, tt.mode)
			}
		})
	}
	t.Run("a verification link for an unknown email is a user-not-found error", func(t *testing.T) {
		if _, err := client.EmailVerificationLink(ctx, "nobody@example.com"); !auth.IsUserNotFound(err) {
			t.Fatalf("EmailVerificationLink(nobody) = %v; want IsUserNotFound", err)
		}
	})
	t.Run("a password reset link for an unknown email is an email-not-found error", func(t *testing.T) {
		if _, err := client.PasswordResetLink(ctx, "nobody@example.com"); !auth.IsEmailNotFound(err) {
			t.Fatalf("PasswordResetLink(nobody) = %v; want IsEmailNotFound", err)
		}
	})
}
