package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// testDevelopersPage, a group of TestBrowser, drives the developers' page
// against the local stack (the gateway enforcing istio/, the decision
// service behind its management route): a new developer creates an app,
// copies its key with the button (read back from the clipboard), sees the
// usage chart at 1280 and 320 px, and revokes the key; and, with JavaScript
// off, creates an app and finds the key as text with no button. Every key
// is tried as a partner uses it: against the frontend's /api/secure.json.
func testDevelopersPage(t *testing.T, b *browser) {
	st := requireLocal(t, "a new developer needs the local emulator, and the usage figures a decision service no one else calls")
	// A developer of their own: the chart and the quota count this case's
	// calls only, and the page starts with no app.
	email := fmt.Sprintf("e2e-developer-%d@example.com", time.Now().UnixNano())
	password := randomString(12)
	noteSecret(password)
	uid, err := st.Emulator.EnsureUser(t.Context(), email, password)
	if err != nil {
		t.Fatalf("EnsureUser: %v", err)
	}
	token, err := st.Emulator.IDTokenFor(t.Context(), uid, time.Now())
	if err != nil {
		t.Fatalf("IDTokenFor: %v", err)
	}
	noteSecret(token)
	// Signed in without the form: the sign-in itself is TestBrowser's.
	session := boundSession(t, env.frontendURL, token)

	tb := b.newTab(t)
	tb.do(t, "setting the session cookie and letting the page use the clipboard", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		httpOnly := true
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
			Name: session.Name, Value: session.Value, URL: env.frontendURL + "/", HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteLax,
		}); err != nil {
			return err
		}
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
				Permission: &cdpbrowser.PermissionDescriptor{Name: name}, Setting: cdpbrowser.PermissionSettingGranted,
				Origin: env.frontendURL, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
			}); err != nil {
				return fmt.Errorf("granting %s: %w", name, err)
			}
		}
		return nil
	}))
	works := func(key string) bool {
		t.Helper()
		return callFrontend(t, "/api/secure.json", http.Header{"X-Api-Key": {key}}).status == http.StatusOK
	}

	var key string
	t.Run("creating an app shows its key with a copy button that copies it", func(t *testing.T) {
		tb.open(t, "/developers")
		tb.do(t, "creating an app on the empty page",
			chromedp.WaitVisible(chromedp.ID("no-apps")),
			chromedp.SendKeys(chromedp.ID("app-name"), "Partner portal"),
			chromedp.Click(chromedp.CSS(`input[name=product][value=secure-message]`)),
			chromedp.Click(chromedp.CSS(`#create-app button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`#new-key button[data-copy]`)),
		)
		tb.do(t, "pressing Copy", chromedp.Click(chromedp.CSS(`#new-key button[data-copy]`)),
			chromedp.WaitVisible(chromedp.CSS(`#new-key-copied:not(:empty)`)))
		tb.screenshot(t, "developers-new-key-1280px.png")
		tb.do(t, "emulating a 320 px wide phone", chromedp.EmulateViewport(320, 640, chromedp.EmulateMobile))
		tb.screenshot(t, "developers-new-key-320px.png")
		tb.do(t, "back to a desktop window", chromedp.EmulateViewport(1280, 900))

		key = tb.text(t, `#new-key-value`)
		noteSecret(key)
		if got := tb.text(t, `#new-key-copied`); got != "Copied to the clipboard." {
			t.Errorf("copy status %q, want Copied to the clipboard.", got)
		}
		ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
		defer cancel()
		copied, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("reading the clipboard: %v", err)
		}
		if copied != key || !works(key) {
			t.Errorf("the clipboard holds %d characters, the page's key %d; want the same key, and one that works", len(copied), len(key))
		}
	})
	t.Run("reloading the page shows the apps without the key and creates no second app", func(t *testing.T) {
		tb.reload(t)
		tb.do(t, "waiting for the form", chromedp.WaitVisible(chromedp.ID("create-app")))
		ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
		defer cancel()
		counts, err := chromedp.Run(ctx, chromedp.Evaluate[[2]int](`[document.querySelectorAll('article.app').length, document.querySelectorAll('#new-key').length]`))
		if err != nil {
			t.Fatalf("counting the apps: %v", err)
		}
		if counts != [2]int{1, 0} {
			t.Errorf("after a reload: %d apps and %d keys shown, want 1 app and no key", counts[0], counts[1])
		}
	})
	t.Run("the chart shows the calls made with the key, at 1280 and 320 px", func(t *testing.T) {
		for range 6 {
			works(key)
		}
		works(key + "x") // an unknown key is no app's usage
		tb.open(t, "/developers")
		tb.do(t, "waiting for the chart", chromedp.WaitVisible(chromedp.CSS(`.app .chart-svg .bar-allowed`)))
		fullScreenshot(t, tb, "developers-usage-1280px.png")
		// Laid out afresh at 320 px, as a phone would load it.
		tb.do(t, "emulating a 320 px wide phone", chromedp.EmulateViewport(320, 640, chromedp.EmulateMobile))
		tb.reload(t)
		tb.do(t, "waiting for the chart at 320 px", chromedp.WaitVisible(chromedp.CSS(`.app .chart-svg .bar-allowed`)))
		fullScreenshot(t, tb, "developers-usage-320px.png")
		tb.do(t, "back to a desktop window", chromedp.EmulateViewport(1280, 900))
		// The one before and these six.
		if got := tb.text(t, `.app .chart-summary`); !strings.HasPrefix(got, "7 requests in the last hour") {
			t.Errorf("chart summary %q: want the 7 calls of this case", got)
		}
		// Today's, not this minute's: the calls may straddle a minute.
		if got := tb.text(t, `.app .quota td:nth-of-type(2)`); got != "993 of 1,000" {
			t.Errorf("quota left today %q, want 993 of 1,000", got)
		}
	})
	t.Run("revoking the key marks the app revoked and the key stops working", func(t *testing.T) {
		tb.do(t, "pressing Revoke",
			chromedp.Click(chromedp.CSS(`.app .revoke button`)),
			chromedp.WaitVisible(chromedp.CSS(`.notice-ok`)),
			chromedp.WaitVisible(chromedp.CSS(`.status-revoked`)),
		)
		tb.screenshot(t, "developers-revoked-1280px.png")
		if works(key) {
			t.Errorf("the revoked key still works")
		}
	})
	t.Run("without JavaScript the form still creates an app and the key is plain text", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
		defer cancel()
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatalf("turning JavaScript off: %v", err)
		}
		tb.open(t, "/developers")
		tb.do(t, "creating an app without JavaScript",
			chromedp.WaitVisible(chromedp.ID("create-app")),
			chromedp.SendKeys(chromedp.ID("app-name"), "Batch job"),
			chromedp.Click(chromedp.CSS(`input[name=product][value=reports]`)),
			chromedp.Click(chromedp.CSS(`#create-app button[type=submit]`)),
			chromedp.WaitVisible(chromedp.ID("new-key-value")),
			chromedp.WaitNotVisible(chromedp.CSS(`#new-key button[data-copy]`)),
		)
		tb.screenshot(t, "developers-nojs-1280px.png")
		k := tb.text(t, `#new-key-value`)
		noteSecret(k)
		if len(k) < 40 || k == key {
			t.Errorf("key shown without JavaScript: %d characters, want a new key", len(k))
		}
	})
}
