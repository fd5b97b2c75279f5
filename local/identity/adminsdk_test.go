package identity

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
	"google.golang.org/api/iterator"

	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
)

// newAdminClient points the unmodified Firebase Admin Go SDK at srv the way
// applications do: FIREBASE_AUTH_EMULATOR_HOST, read when the client is made.
func newAdminClient(t *testing.T, srv *httptest.Server) *auth.Client {
	t.Helper()
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", strings.TrimPrefix(srv.URL, "http://"))
	ctx := t.Context()
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: testProject})
	if err != nil {
		t.Fatalf("firebase.NewApp: %v", err)
	}
	client, err := app.Auth(ctx)
	if err != nil {
		t.Fatalf("app.Auth: %v", err)
	}
	return client
}

func TestFirebaseAdminSDK(t *testing.T) {
	// The emulator runs ten minutes behind the Admin SDK, so that a
	// revocation (which the SDK stamps with its own clock) postdates tokens
	// issued just before it without the test sleeping.
	clock := clocktest.New(time.Now().Add(-10 * time.Minute))
	e, srv := newTestEmulator(t, func(c *Config) { c.Now = clock.Now })
	client := newAdminClient(t, srv)
	ctx := t.Context()

	created, err := client.CreateUser(ctx, (&auth.UserToCreate{}).
		Email("grace@example.com").Password("hopper1906").DisplayName("Grace Hopper").EmailVerified(true))
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	uid := created.UID
	if created.Email != "grace@example.com" || created.DisplayName != "Grace Hopper" || !created.EmailVerified || created.Disabled {
		t.Fatalf("CreateUser = %+v; want grace@example.com, Grace Hopper, verified, enabled", created.UserInfo)
	}

	t.Run("CreateUser with a taken email fails with IsEmailAlreadyExists", func(t *testing.T) {
		_, err := client.CreateUser(ctx, (&auth.UserToCreate{}).Email("grace@example.com").Password("another1"))
		if !auth.IsEmailAlreadyExists(err) {
			t.Fatalf("CreateUser duplicate = %v; want an email-already-exists error", err)
		}
	})
	t.Run("CreateUser with a chosen uid keeps it", func(t *testing.T) {
		u, err := client.CreateUser(ctx, (&auth.UserToCreate{}).UID("chosen-uid").Email("chosen@example.com"))
		if err != nil || u.UID != "chosen-uid" {
			t.Fatalf("CreateUser(UID) = %v, %v; want uid chosen-uid", u, err)
		}
		if _, err := client.CreateUser(ctx, (&auth.UserToCreate{}).UID("chosen-uid")); !auth.IsUIDAlreadyExists(err) {
			t.Fatalf("CreateUser with a taken uid = %v; want IsUIDAlreadyExists", err)
		}
	})
	t.Run("GetUserByEmail finds the user", func(t *testing.T) {
		u, err := client.GetUserByEmail(ctx, "grace@example.com")
		if err != nil || u.UID != uid || u.ProviderID != "firebase" || len(u.ProviderUserInfo) != 1 || u.ProviderUserInfo[0].ProviderID != "password" {
			t.Fatalf("GetUserByEmail = %+v, %v; want uid %s with the password provider", u, err, uid)
		}
		if u.UserMetadata.CreationTimestamp != clock.Now().UnixMilli() {
			t.Errorf("CreationTimestamp = %d; want %d", u.UserMetadata.CreationTimestamp, clock.Now().UnixMilli())
		}
	})
	t.Run("GetUserByEmail of nobody fails with IsUserNotFound", func(t *testing.T) {
		if _, err := client.GetUserByEmail(ctx, "nobody@example.com"); !auth.IsUserNotFound(err) {
			t.Fatalf("GetUserByEmail(nobody) = %v; want a user-not-found error", err)
		}
	})

	idToken := signIn(t, srv, "grace@example.com", "hopper1906")
	t.Run("VerifyIDToken accepts a token the emulator issued", func(t *testing.T) {
		tok, err := client.VerifyIDToken(ctx, idToken)
		if err != nil {
			t.Fatalf("VerifyIDToken: %v", err)
		}
		if tok.UID != uid || tok.Issuer != "https://securetoken.google.com/"+testProject || tok.Audience != testProject ||
			tok.Firebase.SignInProvider != "password" || tok.Claims["email"] != "grace@example.com" {
			t.Fatalf("VerifyIDToken = %+v; want uid %s, our issuer and audience, password provider, the email", tok, uid)
		}
	})
	t.Run("SetCustomUserClaims reaches the next token", func(t *testing.T) {
		if err := client.SetCustomUserClaims(ctx, uid, map[string]any{"role": "admiral"}); err != nil {
			t.Fatalf("SetCustomUserClaims: %v", err)
		}
		tok, err := client.VerifyIDToken(ctx, signIn(t, srv, "grace@example.com", "hopper1906"))
		if err != nil || tok.Claims["role"] != "admiral" {
			t.Fatalf("VerifyIDToken = %v, %v; want claim role=admiral", tok, err)
		}
	})
	t.Run("RevokeRefreshTokens makes VerifyIDTokenAndCheckRevoked fail", func(t *testing.T) {
		if err := client.RevokeRefreshTokens(ctx, uid); err != nil {
			t.Fatalf("RevokeRefreshTokens: %v", err)
		}
		if _, err := client.VerifyIDTokenAndCheckRevoked(ctx, idToken); !auth.IsIDTokenRevoked(err) {
			t.Fatalf("VerifyIDTokenAndCheckRevoked after revocation = %v; want a revoked error", err)
		}
		clock.Advance(11 * time.Minute) // now past the revocation
		fresh := signIn(t, srv, "grace@example.com", "hopper1906")
		if _, err := client.VerifyIDTokenAndCheckRevoked(ctx, fresh); err != nil {
			t.Fatalf("a token issued after the revocation: %v; want it accepted", err)
		}
		idToken = fresh
	})
	t.Run("UpdateUser(Disabled) disables the user and VerifyIDToken then refuses", func(t *testing.T) {
		u, err := client.UpdateUser(ctx, uid, (&auth.UserToUpdate{}).Disabled(true))
		if err != nil || !u.Disabled {
			t.Fatalf("UpdateUser(Disabled) = %+v, %v; want disabled", u, err)
		}
		if _, err := client.VerifyIDToken(ctx, idToken); !auth.IsUserDisabled(err) {
			t.Fatalf("VerifyIDToken of a disabled user = %v; want a user-disabled error", err)
		}
		code, out := call(t, srv, "POST", signInPath, map[string]any{"email": "grace@example.com", "password": "hopper1906"})
		if code != 400 || errMessage(out) != "USER_DISABLED" {
			t.Fatalf("sign-in of a disabled user = %d %q; want 400 USER_DISABLED", code, errMessage(out))
		}
	})
	t.Run("Users lists every account across pages", func(t *testing.T) {
		for i := range 3 {
			if _, err := client.CreateUser(ctx, (&auth.UserToCreate{}).UID(fmt.Sprintf("list-%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		want := e.accounts.len()
		pager := iterator.NewPager(client.Users(ctx, ""), 2, "")
		seen := map[string]bool{}
		pages := 0
		for {
			var users []*auth.ExportedUserRecord
			next, err := pager.NextPage(&users)
			if err != nil {
				t.Fatalf("NextPage: %v", err)
			}
			pages++
			for _, u := range users {
				seen[u.UID] = true
			}
			if next == "" {
				break
			}
		}
		if len(seen) != want || pages != (want+1)/2 {
			t.Fatalf("listed %d distinct users in %d pages of 2; want %d users in %d pages", len(seen), pages, want, (want+1)/2)
		}
	})
	t.Run("UpdateUser of nobody fails with IsUserNotFound", func(t *testing.T) {
		if _, err := client.UpdateUser(ctx, "no-such-uid", (&auth.UserToUpdate{}).DisplayName("x")); !auth.IsUserNotFound(err) {
			t.Fatalf("UpdateUser(nobody) = %v; want a user-not-found error", err)
		}
	})
	t.Run("DeleteUser deletes the user", func(t *testing.T) {
		if err := client.DeleteUser(ctx, uid); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		if _, err := client.GetUser(ctx, uid); !auth.IsUserNotFound(err) {
			t.Fatalf("GetUser after delete = %v; want a user-not-found error", err)
		}
		if err := client.DeleteUser(ctx, uid); !auth.IsUserNotFound(err) {
			t.Fatalf("DeleteUser twice = %v; want a user-not-found error", err)
		}
		if _, ok := e.accounts.byUID(uid); ok {
			t.Fatal("the account is still in the store")
		}
	})
}

// signIn signs in through the REST API, as the JS SDK would, and returns the ID token.
func signIn(t *testing.T, srv *httptest.Server, email, pw string) string {
	t.Helper()
	code, out := call(t, srv, "POST", signInPath, map[string]any{"email": email, "password": pw, "returnSecureToken": true})
	if code != 200 {
		t.Fatalf("sign-in %s = %d %v; want 200", email, code, out)
	}
	return out["idToken"].(string)
}
