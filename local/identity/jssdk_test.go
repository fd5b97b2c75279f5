package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// webPackage finds web/package.json and node, which the JS SDK test needs.
// Without them the test fails on CI (which must have installed them) and is
// skipped elsewhere with the command that installs them.
func webPackage(t *testing.T) (node, pkg string) {
	t.Helper()
	pkg, err := filepath.Abs(filepath.Join("..", "..", "web", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	missing := func(what string) {
		msg := what + ": install the Firebase JS SDK with `cd web && npm ci` (needs Node.js 20+)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(pkg), "node_modules", "firebase", "package.json")); err != nil {
		missing("web/node_modules/firebase is missing")
	}
	return node, pkg
}

// jsStep is one step's outcome as testdata/jssdk.mjs reports it.
type jsStep struct {
	OK             bool     `json:"ok"`
	Code           string   `json:"code"`
	Message        string   `json:"message"`
	UID            string   `json:"uid"`
	Email          string   `json:"email"`
	IDToken        string   `json:"idToken"`
	SignInProvider string   `json:"signInProvider"`
	IsAnonymous    bool     `json:"isAnonymous"`
	Providers      []string `json:"providers"`
	CurrentUser    *string  `json:"currentUser"`
	Mode           string   `json:"mode"`
	ContinueURL    string   `json:"continueUrl"`
	EmailVerified  bool     `json:"emailVerified"`
	Claim          any      `json:"claim"`
}

func TestFirebaseJSSDK(t *testing.T) {
	node, pkg := webPackage(t)
	e, err := New(Config{ProjectID: testProject, StateDir: t.TempDir(), PasswordHashCost: minPasswordHashCost})
	if err != nil {
		t.Fatal(err)
	}
	// Count what reaches the Secure Token API, to see that getIdToken(true)
	// really refreshed rather than returning the cached token.
	var refreshes atomic.Int32
	h := e.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/securetoken.googleapis.com/") && r.Method == http.MethodPost {
			refreshes.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "jssdk.mjs"), srv.URL, pkg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node jssdk.mjs: %v\nstderr:\n%s", err, stderr.String())
	}
	var got map[string]jsStep
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("jssdk.mjs printed %q: %v", stdout, err)
	}
	set := fetchJWKS(t, srv)

	up := got["signUp"]
	t.Run("createUserWithEmailAndPassword signs up", func(t *testing.T) {
		if !up.OK || up.UID == "" || up.Email != "jssdk@example.com" {
			t.Fatalf("signUp = %+v; want a user jssdk@example.com", up)
		}
		// Its email was changed by a later step (verifyBeforeUpdateEmail).
		if _, ok := e.accounts.byUID(up.UID); !ok {
			t.Fatalf("the emulator has no account for uid %s; want the signed-up account", up.UID)
		}
		if _, err := verify(set, up.IDToken, time.Now()); err != nil {
			t.Fatalf("the SDK's ID token fails verification: %v", err)
		}
	})
	t.Run("signing up a taken email is auth/email-already-in-use", func(t *testing.T) {
		if s := got["signUpAgain"]; s.OK || s.Code != "auth/email-already-in-use" {
			t.Fatalf("signUpAgain = %+v; want auth/email-already-in-use", s)
		}
	})
	t.Run("a short password is auth/weak-password", func(t *testing.T) {
		if s := got["signUpWeak"]; s.OK || s.Code != "auth/weak-password" {
			t.Fatalf("signUpWeak = %+v; want auth/weak-password", s)
		}
	})
	t.Run("signInWithEmailAndPassword signs the same user in", func(t *testing.T) {
		s := got["signIn"]
		if !s.OK || s.UID != up.UID || s.SignInProvider != "password" || s.IsAnonymous ||
			len(s.Providers) != 1 || s.Providers[0] != "password" {
			t.Fatalf("signIn = %+v; want uid %s, provider password, not anonymous", s, up.UID)
		}
		if _, err := verify(set, s.IDToken, time.Now()); err != nil {
			t.Fatalf("the SDK's ID token fails verification: %v", err)
		}
	})
	t.Run("sendEmailVerification leaves a link the SDK parses as verifyEmail", func(t *testing.T) {
		s := got["sendEmailVerification"]
		if !s.OK || s.Mode != "VERIFY_EMAIL" || s.ContinueURL != "http://localhost/after-verify" || s.EmailVerified {
			t.Fatalf("sendEmailVerification = %+v; want a VERIFY_EMAIL link with the continue URL, the user still unverified", s)
		}
	})
	t.Run("applyActionCode verifies the email in the profile and the next token", func(t *testing.T) {
		s := got["applyActionCode"]
		if !s.OK || !s.EmailVerified || s.Claim != true {
			t.Fatalf("applyActionCode = %+v; want emailVerified and the email_verified claim true", s)
		}
		tok, err := verify(set, s.IDToken, time.Now())
		if err != nil {
			t.Fatalf("the token after verification fails verification: %v", err)
		}
		if tok.EmailVerified == nil || !*tok.EmailVerified {
			t.Fatalf("email_verified in the signed token = %v; want true", tok.EmailVerified)
		}
	})
	t.Run("a used code is auth/invalid-action-code", func(t *testing.T) {
		if s := got["applyActionCodeAgain"]; s.OK || s.Code != "auth/invalid-action-code" {
			t.Fatalf("applyActionCodeAgain = %+v; want auth/invalid-action-code", s)
		}
	})
	t.Run("updateEmail without verification is auth/operation-not-allowed", func(t *testing.T) {
		if s := got["updateEmail"]; s.OK || s.Code != "auth/operation-not-allowed" {
			t.Fatalf("updateEmail = %+v; want auth/operation-not-allowed (email enumeration protection)", s)
		}
	})
	t.Run("verifyBeforeUpdateEmail changes the email once its link is applied", func(t *testing.T) {
		s := got["verifyBeforeUpdateEmail"]
		if !s.OK || s.Mode != "VERIFY_AND_CHANGE_EMAIL" || s.UID != up.UID || s.Email != "renamed@example.com" || !s.EmailVerified {
			t.Fatalf("verifyBeforeUpdateEmail = %+v; want uid %s signed in as renamed@example.com, verified", s, up.UID)
		}
	})
	t.Run("a password reset link resets the password", func(t *testing.T) {
		s := got["passwordReset"]
		if !s.OK || s.Mode != "PASSWORD_RESET" || s.Email != "renamed@example.com" || s.UID != up.UID {
			t.Fatalf("passwordReset = %+v; want a PASSWORD_RESET link for renamed@example.com, then a sign-in as %s", s, up.UID)
		}
		if old := got["oldPasswordAfterReset"]; old.OK {
			t.Fatalf("the old password after the reset = %+v; want refused", old)
		}
	})
	t.Run("signInWithCustomToken signs in with an unsigned custom token and keeps its claims", func(t *testing.T) {
		s := got["customToken"]
		if !s.OK || s.UID != "custom-uid" || s.SignInProvider != "custom" || s.Claim != "gold" {
			t.Fatalf("customToken = %+v; want uid custom-uid, provider custom, claim plan=gold after a refresh", s)
		}
		if _, err := verify(set, s.IDToken, time.Now()); err != nil {
			t.Fatalf("the custom sign-in's ID token fails verification: %v", err)
		}
	})
	t.Run("signInWithEmailLink signs in a new user from the link", func(t *testing.T) {
		s := got["emailLink"]
		if !s.OK || s.UID == "" || s.Email != "linked@example.com" || !s.EmailVerified {
			t.Fatalf("emailLink = %+v; want linked@example.com signed in, verified", s)
		}
	})
	t.Run("getIdToken(true) refreshes through the Secure Token API", func(t *testing.T) {
		s := got["refresh"]
		if !s.OK || s.UID != up.UID || s.SignInProvider != "password" {
			t.Fatalf("refresh = %+v; want a token for %s", s, up.UID)
		}
		if n := refreshes.Load(); n < 1 {
			t.Fatalf("%d requests reached /securetoken.googleapis.com; want at least 1", n)
		}
		if _, err := verify(set, s.IDToken, time.Now()); err != nil {
			t.Fatalf("the refreshed ID token fails verification: %v", err)
		}
	})
	t.Run("signOut leaves no current user", func(t *testing.T) {
		for _, name := range []string{"signOutAfterSignUp", "signOut"} {
			if s := got[name]; !s.OK || s.CurrentUser != nil {
				t.Errorf("%s = %+v; want ok and no current user", name, s)
			}
		}
	})
	t.Run("a wrong password is auth/invalid-credential", func(t *testing.T) {
		if s := got["wrongPassword"]; s.OK || (s.Code != "auth/invalid-credential" && s.Code != "auth/wrong-password") {
			t.Fatalf("wrongPassword = %+v; want auth/invalid-credential or auth/wrong-password", s)
		}
	})
	t.Run("an unknown user is auth/invalid-credential", func(t *testing.T) {
		if s := got["unknownUser"]; s.OK || (s.Code != "auth/invalid-credential" && s.Code != "auth/user-not-found") {
			t.Fatalf("unknownUser = %+v; want auth/invalid-credential or auth/user-not-found", s)
		}
	})
}
