package frontend

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserDevelopersPage drives Debian's chromium through the developers'
// page against the real chain (local gateway enforcing istio/, a real
// apikeys.Service): create an app, copy its key with the button (read back
// from the clipboard), see the usage chart, revoke the key; and, with
// JavaScript off, create an app and find the key as text with no button.
// FRONTEND_SCREENSHOTS=dir saves screenshots at 1280 and 320 px.
func TestBrowserDevelopersPage(t *testing.T) {
	s := newDevStack(t)
	_, token := s.user("ada@example.com")

	b := startChromium(t)
	bctx, step, shot := b.ctx, b.step, b.shot
	text := func(t *testing.T, ctx context.Context, sel string) string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return got
	}

	httpOnly := true
	if _, err := chromedp.Call(bctx, network.SetCookie, network.SetCookieParams{
		Name: "session", Value: bindSession(s.sessionKey(), token), URL: s.front.URL + "/", HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteLax,
	}); err != nil {
		t.Fatal(err)
	}
	origin := s.front.URL
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(bctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: origin,
		}); err != nil {
			t.Fatalf("granting %s: %v", name, err)
		}
	}

	var key string
	t.Run("creating an app shows its key with a copy button that copies it", func(t *testing.T) {
		ctx := step(t)
		err := chromedp.Do(ctx,
			chromedp.Navigate(s.front.URL+"/developers"),
			chromedp.WaitVisible(`#no-apps`),
			shot("developers-empty-1280"),
			chromedp.SendKeys(`#app-name`, "Partner portal"),
			chromedp.Click(`input[name=product][value=secure-message]`),
			chromedp.Click(`#create-app button[type=submit]`),
			chromedp.WaitVisible(`#new-key button[data-copy]`),
			chromedp.Click(`#new-key button[data-copy]`),
			chromedp.WaitVisible(`#new-key-copied:not(:empty)`),
			shot("developers-new-key-1280"),
			chromedp.EmulateViewport(320, 640),
			shot("developers-new-key-320"),
			chromedp.EmulateViewport(1280, 900),
		)
		if err != nil {
			t.Fatal(err)
		}
		key = text(t, ctx, `#new-key-value`)
		if got := text(t, ctx, `#new-key-copied`); got != "Copied to the clipboard." {
			t.Errorf("copy status %q, want it copied", got)
		}
		copied, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("reading the clipboard: %v", err)
		}
		if copied != key || !s.call(key) {
			t.Errorf("clipboard holds %d characters, the page's key %d; want the same working key", len(copied), len(key))
		}
	})
	t.Run("reloading the page shows the apps without the key and creates no second app", func(t *testing.T) {
		ctx := step(t)
		if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(`#create-app`)); err != nil {
			t.Fatal(err)
		}
		apps, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('article.app').length`))
		if err != nil {
			t.Fatal(err)
		}
		keys, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#new-key').length`))
		if err != nil {
			t.Fatal(err)
		}
		if apps != 1 || keys != 0 {
			t.Errorf("after a reload: %d apps and %d keys shown, want 1 app and no key", apps, keys)
		}
	})
	t.Run("the chart shows the calls made with the key, at 1280 and 320 px", func(t *testing.T) {
		for range 6 {
			s.call(key)
		}
		s.call(key + "x") // an unknown key is no app's usage
		ctx := step(t)
		err := chromedp.Do(ctx,
			chromedp.Navigate(s.front.URL+"/developers"),
			chromedp.WaitVisible(`.app .chart-svg .bar-allowed`),
			shot("developers-usage-1280"),
			// Laid out afresh at 320 px, as a phone would load it.
			chromedp.EmulateViewport(320, 640),
			chromedp.Reload(),
			chromedp.WaitVisible(`.app .chart-svg .bar-allowed`),
			shot("developers-usage-320"),
			chromedp.EmulateViewport(1280, 900),
		)
		if err != nil {
			t.Fatal(err)
		}
		// The one before and these six.
		if got := text(t, ctx, `.app .chart-summary`); !strings.HasPrefix(got, "7 requests in the last hour") {
			t.Errorf("chart summary %q: want the 7 calls of this test", got)
		}
		// Today's, not this minute's: the calls may straddle a minute.
		if got := text(t, ctx, `.app .quota td:nth-of-type(2)`); got != "993 of 1,000" {
			t.Errorf("quota left today %q, want 993 of 1,000", got)
		}
	})
	t.Run("revoking the key marks the app revoked", func(t *testing.T) {
		ctx := step(t)
		err := chromedp.Do(ctx,
			chromedp.Click(`.app .revoke button`),
			chromedp.WaitVisible(`.notice-ok`),
			chromedp.WaitVisible(`.status-revoked`),
			shot("developers-revoked-1280"),
		)
		if err != nil {
			t.Fatal(err)
		}
		if s.call(key) {
			t.Errorf("the revoked key still works")
		}
	})
	t.Run("without JavaScript the form still creates an app and the key is plain text", func(t *testing.T) {
		ctx := step(t)
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			chromedp.Call(bctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false})
		})
		err := chromedp.Do(ctx,
			chromedp.Navigate(s.front.URL+"/developers"),
			chromedp.WaitVisible(`#create-app`),
			chromedp.SendKeys(`#app-name`, "Batch job"),
			chromedp.Click(`input[name=product][value=reports]`),
			chromedp.Click(`#create-app button[type=submit]`),
			chromedp.WaitVisible(`#new-key-value`),
			chromedp.WaitNotVisible(`#new-key button[data-copy]`),
			shot("developers-nojs-1280"),
		)
		if err != nil {
			t.Fatal(err)
		}
		if k := text(t, ctx, `#new-key-value`); len(k) < 40 || k == key {
			t.Errorf("key shown without JavaScript: %d characters, want a new key", len(k))
		}
	})
}
