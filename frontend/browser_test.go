package frontend

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserSignsInWithTheBundle drives Debian's chromium through the real
// bundle: the Firebase JS SDK signs in against the emulator, posts the token
// to /session, and the server-rendered page shows the secret. It also checks
// the inline error for a wrong password and that nothing breaks the CSP.
// FRONTEND_SCREENSHOTS=dir saves screenshots at 1280 and 320 px.
func TestBrowserSignsInWithTheBundle(t *testing.T) {
	s := newStack(t)
	uid, err := s.emulator.EnsureUser(context.Background(), "ada@example.com", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}

	b := startChromium(t)
	step, shot := b.step, b.shot
	ready := `#auth-form:not([hidden]) fieldset:not([disabled])`

	t.Run("a wrong password shows an inline error that does not tell whether the account exists", func(t *testing.T) {
		ctx := step(t)
		err := chromedp.Do(ctx,
			chromedp.Navigate(s.front.URL),
			chromedp.WaitVisible(ready),
			shot("signin-1280"),
			chromedp.SendKeys("#email", "ada@example.com"),
			chromedp.SendKeys("#password", "wrong password"),
			chromedp.Click(`#auth-form button[type=submit]`),
			chromedp.WaitVisible(`#auth-error:not([hidden])`),
			shot("signin-error-1280"),
		)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := chromedp.Run(ctx, chromedp.Text(`#auth-error`))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(msg, "do not match") {
			t.Errorf("error message %q: want the generic no-match message", msg)
		}
	})
	t.Run("creating an account explains a taken email and a weak password", func(t *testing.T) {
		for _, tc := range []struct{ email, password, want string }{
			{"ada@example.com", "another good password", "could not create an account with that email"},
			{"new@example.com", "12345", "at least 6 characters"},
		} {
			ctx := step(t)
			err := chromedp.Do(ctx,
				chromedp.Navigate(s.front.URL+"/?mode=create"),
				chromedp.WaitVisible(ready),
				chromedp.SendKeys("#email", tc.email),
				chromedp.SendKeys("#password", tc.password),
				chromedp.Click(`#auth-form button[type=submit]`),
				chromedp.WaitVisible(`#auth-error:not([hidden])`),
			)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := chromedp.Run(ctx, chromedp.Text(`#auth-error`))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("creating %s with %q: message %q, want it to contain %q", tc.email, tc.password, msg, tc.want)
			}
		}
	})
	t.Run("signing in shows the secret message fetched by the server", func(t *testing.T) {
		ctx := step(t)
		err := chromedp.Do(ctx,
			chromedp.Navigate(s.front.URL),
			chromedp.WaitVisible(ready),
			chromedp.SendKeys("#email", "ada@example.com"),
			chromedp.SendKeys("#password", "correct horse battery"),
			chromedp.Click(`#auth-form button[type=submit]`),
			chromedp.WaitVisible(`#secret-message`),
			shot("signed-in-1280"),
			chromedp.EmulateViewport(320, 640),
			shot("signed-in-320"),
		)
		if err != nil {
			t.Fatal(err)
		}
		secret, err := chromedp.Run(ctx, chromedp.Text(`#secret-message`))
		if err != nil {
			t.Fatal(err)
		}
		if secret != "Hello World" {
			t.Errorf("secret: got %q, want Hello World", secret)
		}
	})
	t.Run("an expired session cookie is refreshed quietly, without an error page", func(t *testing.T) {
		ctx := step(t)
		expired, err := s.emulator.IDTokenFor(context.Background(), uid, time.Now().Add(-2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// Leave the signed-in page first, once its module has posted its
		// fresh token (it marks the body): that answer could otherwise land
		// after the cookie set below and replace it.
		if err := chromedp.Do(ctx, chromedp.WaitReady(`body[data-session-posted]`), chromedp.Navigate("about:blank")); err != nil {
			t.Fatal(err)
		}
		httpOnly := true
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
			Name: "session", Value: bindSession(s.sessionKey(), expired), URL: s.front.URL + "/", HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteLax,
		}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(s.front.URL), chromedp.WaitVisible(`#secret-message`)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s.logs.String(), "session cookie refused") {
			t.Errorf("the page never saw the expired cookie; the test did not exercise the refresh")
		}
	})
	var gatewayBefore int
	t.Run("signing out returns to the sign-in form and stays signed out", func(t *testing.T) {
		defer func() { gatewayBefore = s.gateway.count() }()
		ctx := step(t)
		err := chromedp.Do(ctx,
			chromedp.Click(`#sign-out-form button`),
			chromedp.WaitVisible(ready),
			shot("signed-out-320"),
			chromedp.Reload(),
			chromedp.WaitVisible(ready),
		)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a new account is asked to verify its email, then sees the secret once it has", func(t *testing.T) {
		ctx := step(t)
		const email = "new-reader@example.com"
		err := chromedp.Do(ctx,
			chromedp.EmulateViewport(1280, 900),
			chromedp.Navigate(s.front.URL+"/?mode=create"),
			chromedp.WaitVisible(ready),
			chromedp.SendKeys("#email", email),
			chromedp.SendKeys("#password", "correct horse battery"),
			chromedp.Click(`#auth-form button[type=submit]`),
			chromedp.WaitVisible(`#verify-email`),
			chromedp.WaitEnabled(`#verify-check`),
			shot("verify-1280"),
			chromedp.EmulateViewport(320, 640),
			shot("verify-320"),
		)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.gateway.count(); n != gatewayBefore {
			t.Errorf("%d requests reached the gateway for an unverified account; want none", n-gatewayBefore)
		}
		// Not yet verified: the page says so and stays.
		if err := chromedp.Do(ctx, chromedp.Click(`#verify-check`), chromedp.WaitVisible(`#verify-status:not([hidden])`),
			shot("verify-not-yet-320")); err != nil {
			t.Fatal(err)
		}
		msg, err := chromedp.Run(ctx, chromedp.Text(`#verify-status`))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(msg, "not verified yet") {
			t.Errorf("status %q: want it to say the address is not verified yet", msg)
		}
		// The emulator kept the link it would have emailed; following it
		// verifies the address, as clicking it in the inbox would.
		link := s.verificationLink(t, email)
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("following the verification link: %d, want 200", resp.StatusCode)
		}
		if err := chromedp.Do(ctx, chromedp.Click(`#verify-check`), chromedp.WaitVisible(`#secret-message`),
			chromedp.EmulateViewport(1280, 900)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Click(`#sign-out-form button`), chromedp.WaitVisible(ready)); err != nil {
			t.Fatal(err)
		}
	})
}
