package frontend

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"
	"golang.org/x/net/html"

	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

// Sign-up is open, so an unverified email says nothing about who signed up:
// until the address is verified the page asks for it and the secret is not
// fetched, and the API refuses before the gateway.
func TestAnUnverifiedEmailIsAskedToVerifyBeforeTheSecret(t *testing.T) {
	s := newStack(t)
	_, unverified := s.unverifiedUser("ceo@acme.test")
	resp := s.postSession(unverified, nil)
	session := cookieNamed(resp, "session")
	if resp.StatusCode != http.StatusNoContent || session == nil {
		t.Fatalf("POST /session for an unverified account: got %d, want 204 and a cookie (the page then asks to verify)", resp.StatusCode)
	}

	t.Run("the page says to check the inbox and shows no secret", func(t *testing.T) {
		before := s.gateway.count()
		resp, body := s.get("/", session)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /: got %d, want 200", resp.StatusCode)
		}
		doc := htmltest.Parse(t, body)
		if got := htmltest.Text(htmltest.ByID(doc, "verify-title")); got != "Check your inbox" {
			t.Errorf("heading %q; want Check your inbox", got)
		}
		if got := accountEmail(doc); got != "ceo@acme.test" {
			t.Errorf("the page names %q; want the address waiting for verification", got)
		}
		for _, id := range []string{"verify-check", "verify-resend", "sign-out-form"} {
			if htmltest.ByID(doc, id) == nil {
				t.Errorf("no #%s", id)
			}
		}
		if htmltest.ByID(doc, "secret-message") != nil || strings.Contains(body, "Hello World") {
			t.Errorf("the page shows the secret to an unverified account")
		}
		if n := s.gateway.count() - before; n != 0 {
			t.Errorf("%d requests reached the gateway for an unverified account; want none", n)
		}
		b := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "body" })
		if got := htmltest.Attr(b, "data-session"); got != "active" {
			t.Errorf("data-session %q; want active, so the module keeps the session fresh", got)
		}
	})
	t.Run("the API refuses an unverified token before the gateway", func(t *testing.T) {
		before := s.gateway.count()
		req, _ := http.NewRequest(http.MethodGet, s.front.URL+"/api/secure.json", nil)
		req.Header.Set("Authorization", "Bearer "+unverified)
		resp, body := s.do(req)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Verify your email address first") {
			t.Errorf("GET /api/secure.json: got %d %q, want 403 asking to verify", resp.StatusCode, body)
		}
		if n := s.gateway.count() - before; n != 0 {
			t.Errorf("%d requests reached the gateway; want none", n)
		}
	})
}

// emulatorSignIn signs in through the emulator's REST API, as the JS SDK
// does, and returns the ID and refresh tokens.
func (s *stack) emulatorSignIn(t *testing.T, email string) (idToken, refreshToken string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"email": email, "password": "correct horse battery", "returnSecureToken": true})
	resp, err := http.Post("http://"+s.cfg.AuthEmulatorHost+"/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=k",
		"application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ IDToken, RefreshToken string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.RefreshToken == "" {
		t.Fatalf("signInWithPassword answered %d without tokens (%v)", resp.StatusCode, err)
	}
	return out.IDToken, out.RefreshToken
}

// refreshWorks tells whether the emulator still mints ID tokens for a
// refresh token, as the SDK asks every hour.
func (s *stack) refreshWorks(t *testing.T, refreshToken string) bool {
	t.Helper()
	resp, err := http.PostForm("http://"+s.cfg.AuthEmulatorHost+"/securetoken.googleapis.com/v1/token?key=k",
		url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// signOut posts the page's sign-out form with the session cookie.
func (s *stack) signOut(t *testing.T, session *http.Cookie) *http.Response {
	t.Helper()
	ck, tok := s.csrf()
	req, _ := http.NewRequest(http.MethodPost, s.front.URL+"/signout", strings.NewReader("csrf="+tok))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.front.URL)
	req.AddCookie(ck)
	if session != nil {
		req.AddCookie(session)
	}
	resp, _ := s.do(req)
	return resp
}

// Clearing the cookie alone leaves the SDK's refresh token minting ID tokens
// (in this browser or any other). Sign-out revokes them with the Admin SDK.
func TestSignOutRevokesTheUsersRefreshTokens(t *testing.T) {
	s := newStack(t)
	uid, _ := s.user("leaver@example.com")
	idToken, refresh := s.emulatorSignIn(t, "leaver@example.com")
	resp := s.postSession(idToken, nil)
	session := cookieNamed(resp, "session")
	if session == nil {
		t.Fatalf("POST /session: %d without a cookie", resp.StatusCode)
	}
	if !s.refreshWorks(t, refresh) {
		t.Fatal("the refresh token does not work before sign-out; the test would prove nothing")
	}

	resp = s.signOut(t, session)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /signout: got %d, want 303", resp.StatusCode)
	}
	if c := cookieNamed(resp, "session"); c == nil || c.MaxAge >= 0 {
		t.Errorf("POST /signout: want the session cookie deleted, got %+v", c)
	}
	if s.refreshWorks(t, refresh) {
		t.Errorf("the refresh token still mints ID tokens after sign-out; want it revoked")
	}
	// Revocation is to the second (validSince), and a token of the same
	// second stays valid: ask about one a browser got a minute ago.
	earlier, err := s.emulator.IDTokenFor(context.Background(), uid, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.VerifyIDTokenAndCheckRevoked(context.Background(), earlier); !auth.IsIDTokenRevoked(err) {
		t.Errorf("VerifyIDTokenAndCheckRevoked after sign-out: %v; want an earlier token reported revoked", err)
	}
	if u, err := s.admin.GetUser(context.Background(), uid); err != nil || u.TokensValidAfterMillis == 0 {
		t.Errorf("the user's tokensValidAfter is not set (%v)", err)
	}

	t.Run("without a session, sign-out only clears the cookie", func(t *testing.T) {
		if resp := s.signOut(t, nil); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("POST /signout without a session: got %d, want 303", resp.StatusCode)
		}
	})
}

func TestSignOutSignsThisBrowserOutEvenWhenRevocationFails(t *testing.T) {
	// The Admin SDK pointed at another emulator, which has never heard of
	// the user: revocation fails, as it would with Identity Platform
	// refusing (say, the service account lacks firebaseauth.users.update).
	other, err := identity.New(identity.Config{ProjectID: testProject, StateDir: t.TempDir(), PasswordHashCost: 10})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := httptest.NewServer(other.Handler())
	t.Cleanup(elsewhere.Close)
	s := newStackDeps(t, func(d *Deps) {
		t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", strings.TrimPrefix(elsewhere.URL, "http://"))
		d.Revoker = adminClient(t)
	})
	session, _ := s.signIn("stuck@example.com")
	resp := s.signOut(t, session)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST /signout with revocation failing: got %d, want 503 saying other devices may stay signed in", resp.StatusCode)
	}
	if c := cookieNamed(resp, "session"); c == nil || c.MaxAge >= 0 {
		t.Errorf("the session cookie %+v was kept; want it deleted: this browser is signed out regardless", c)
	}
	if !strings.Contains(s.logs.String(), "revoking the refresh tokens") {
		t.Errorf("the log does not say why revocation failed")
	}
}
