package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/acme/cloudrun-istio-gke/frontend"
)

// stepTimeout bounds each step of a browser case (a navigation, a sign-in
// round trip), so that a broken page fails the case with what it shows
// instead of hanging the run.
const stepTimeout = 20 * time.Second

// browser is one headless Chromium for the browser tests. Every case opens
// its tab in a new browser context: its own cookies, IndexedDB and storage,
// like a fresh profile.
type browser struct {
	ctx context.Context
}

// newBrowser starts Debian's Chromium, kept off the network: no background
// or component traffic, and locally a host resolver that resolves nothing,
// so the page can reach only the stack on loopback.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		const msg = "Chromium is not installed; install it with `apt-get install -y chromium` to run the browser tests"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set: the browser tests must run there, never skip)")
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		// CI runs as root, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	if env.local != nil {
		opts = append(opts,
			chromedp.Flag("no-proxy-server", true),
			chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost"),
		)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	// The first Do starts the browser and ties its life to ctx, so it gets
	// no timeout of its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return &browser{ctx: ctx}
}

// tab is one case's page, with what the page did recorded for the checks
// that every case ends with (see checkHygiene).
type tab struct {
	ctx context.Context

	mu         sync.Mutex
	requests   []string // every URL the page asked for
	exceptions []string // uncaught JavaScript exceptions
	console    []string // console.error calls of the page's scripts
	errors     []string // browser log entries at level error: "source text (URL)"
	documents  []string // "status URL" of every page load
}

func (b *browser) newTab(t *testing.T) *tab {
	t.Helper()
	tb := &tab{}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(tb.record))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	tb.ctx = ctx
	t.Cleanup(func() { tb.checkHygiene(t) }) // runs before cancel: cleanups are LIFO
	return tb
}

// record runs in the tab's event loop: it must return fast.
func (tb *tab) record(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, ev.Request.URL)
	case *network.EventResponseReceived:
		if ev.Type == network.ResourceTypeDocument {
			tb.documents = append(tb.documents, fmt.Sprintf("%d %s", ev.Response.Status, ev.Response.URL))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text = d.Exception.Description
		}
		tb.exceptions = append(tb.exceptions, fmt.Sprintf("%s (%s:%d)", text, d.URL, d.LineNumber+1))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			var args []string
			for _, a := range ev.Args {
				if a.Description != "" {
					args = append(args, a.Description)
				} else {
					args = append(args, strings.Trim(string(a.Value), `"`))
				}
			}
			tb.console = append(tb.console, strings.Join(args, " "))
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			tb.errors = append(tb.errors, fmt.Sprintf("[%s] %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	}
}

// checkHygiene holds every case to what a real user's session must never
// show: an uncaught exception, an error the page's scripts report on the
// console, a Content-Security-Policy violation or any other browser error
// but a network one, an error page, or (locally) a request that leaves the
// machine. Network errors are answers the cases expect (a refused
// password's 400, a favicon's 404): they are logged, not failed.
func (tb *tab) checkHygiene(t *testing.T) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.exceptions {
		t.Errorf("uncaught exception in the page: %s", e)
	}
	for _, e := range tb.console {
		t.Errorf("the page's script reported an error on the console: %s", e)
	}
	for _, e := range tb.errors {
		switch {
		case strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Content-Security-Policy"):
			t.Errorf("Content-Security-Policy violation: %s", e)
		case strings.HasPrefix(e, "[network]"):
			t.Logf("browser log: %s", e)
		default:
			t.Errorf("the browser reported an error: %s", e)
		}
	}
	for _, d := range tb.documents {
		if !strings.HasPrefix(d, "2") && !strings.HasPrefix(d, "3") {
			t.Errorf("a page load answered %s; want no error page", d)
		}
	}
	if env.local == nil {
		return
	}
	if len(tb.requests) == 0 {
		t.Error("recorded no request at all: the network listener is not working, so staying on loopback is unproven")
	}
	for _, r := range tb.requests {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Scheme != "blob" && !isLoopback(u.Hostname())) {
			t.Errorf("the page asked for %s; the local flow must stay on loopback", r)
		}
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// do runs steps with a timeout; on failure it reports what the page shows
// and keeps a screenshot of it.
func (tb *tab) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	start := time.Now()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, tb.describe(t))
	}
	t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// describe says where the page is and what it shows, for failure messages,
// and saves a screenshot next to the others.
func (tb *tab) describe(t *testing.T) string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](pageStateJS))
	if err != nil {
		return "(could not read the page: " + err.Error() + ")"
	}
	name := "failed-" + unsafeFileChars.ReplaceAllString(t.Name(), "_") + ".png"
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil && writeOutput(name, png) == nil {
		name = "e2e/testoutput/" + name
	} else {
		name = "(no screenshot)"
	}
	return fmt.Sprintf("the page at %s shows (screenshot %s):\n%s", st.URL, name, st.Text)
}

// pageState is what a user sees that the cases check.
type pageState struct {
	URL        string `json:"url"`
	Heading    string `json:"heading"`    // the card's h1
	SignedInAs string `json:"signedInAs"` // the account card's email, "" when signed out
	Secret     string `json:"secret"`     // the secret message box
	Alerts     string `json:"alerts"`     // every visible role=alert, joined
	FormReady  bool   `json:"formReady"`  // the sign-in form is shown and enabled
	Text       string `json:"text"`       // all of main's text, for failure messages
}

const pageStateJS = `(() => {
	const shown = (el) => !!el && !el.hidden && !el.closest('[hidden]');
	const text = (sel) => { const el = document.querySelector(sel); return shown(el) ? el.innerText.trim() : ''; };
	const form = document.querySelector('#auth-form');
	const fieldset = form && form.querySelector('fieldset');
	return {
		url: location.href,
		heading: text('main h1'),
		signedInAs: text('.account-email'),
		secret: text('.secret'),
		alerts: [...document.querySelectorAll('[role=alert]')].filter(shown).map((e) => e.innerText.trim()).filter(Boolean).join(' | '),
		formReady: shown(form) && !!fieldset && !fieldset.disabled,
		text: (document.querySelector('main') || document.body).innerText.trim(),
	};
})()`

func (tb *tab) state(t *testing.T) pageState {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](pageStateJS))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	return st
}

func (tb *tab) open(t *testing.T, path string) {
	t.Helper()
	tb.do(t, "opening "+path, chromedp.Navigate(env.frontendURL+path))
}

func (tb *tab) reload(t *testing.T) {
	t.Helper()
	tb.do(t, "reloading the page", chromedp.Reload())
}

// waitSignedOut waits until the sign-in module has enabled the form, which it
// does only once it knows there is no signed-in user to restore.
func (tb *tab) waitSignedOut(t *testing.T) pageState {
	t.Helper()
	tb.do(t, "waiting for the sign-in form to be ready", chromedp.WaitVisible(chromedp.CSS("#auth-form fieldset:enabled")))
	st := tb.state(t)
	if st.SignedInAs != "" {
		t.Fatalf("the page shows the sign-in form and also signed in as %q", st.SignedInAs)
	}
	return st
}

// waitSignedIn waits for the account card, which the server renders only
// for a verified session.
func (tb *tab) waitSignedIn(t *testing.T) pageState {
	t.Helper()
	tb.do(t, "waiting for the signed-in page", chromedp.WaitVisible(chromedp.ID("account-title")))
	return tb.state(t)
}

// pageLoads counts the documents the tab has loaded.
func (tb *tab) pageLoads() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.documents)
}

// waitSessionPosted waits until the signed-in page's module has posted the
// SDK's token to POST /session and handled the answer, which it marks on the
// body (data-session-posted). A signed-in page does that once, to keep the
// cookie as fresh as the token; a case that changes the cookie must wait for
// the mark, or that late answer would overwrite the change (it did, about
// one run in four, before the mark existed).
func (tb *tab) waitSessionPosted(t *testing.T) {
	t.Helper()
	tb.do(t, "waiting for the page to post its fresh token", chromedp.WaitReady(chromedp.CSS("body[data-session-posted]")))
}

// text is the visible text of the element sel finds.
func (tb *tab) text(t *testing.T, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v\n%s", sel, err, tb.describe(t))
	}
	return got
}

// submitCredentials fills in the form as a user does: type into the
// labelled fields, press the button by its visible name.
func (tb *tab) submitCredentials(t *testing.T, email, password, button string) {
	t.Helper()
	tb.do(t, "filling in and submitting the form",
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.Search(fmt.Sprintf(`//form[@id="auth-form"]//button[normalize-space()=%q]`, button))),
	)
}

func (tb *tab) signIn(t *testing.T, email, password string) pageState {
	t.Helper()
	tb.open(t, "/")
	tb.waitSignedOut(t)
	tb.submitCredentials(t, email, password, "Sign in")
	return tb.waitSignedIn(t)
}

func (tb *tab) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := writeOutput(name, png); err != nil {
		t.Fatalf("writing %s: %v", name, err)
	}
}

// sessionCookie is the cookie that holds the user's ID token (the only
// cookie whose value is a JWT), or nil.
func (tb *tab) sessionCookie(t *testing.T) *network.Cookie {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{env.frontendURL + "/"}})
	if err != nil {
		t.Fatalf("reading cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if jwtClaims(c.Value) != nil {
			noteSecret(c.Value)
			return c
		}
	}
	return nil
}

// jwtClaims decodes the payload of a JWT-shaped value, or returns nil. A
// session cookie's value is the token, "~" and the frontend's MAC over it.
func jwtClaims(v string) map[string]any {
	v, _, _ = strings.Cut(v, "~")
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return nil
	}
	var hdr, claims map[string]any
	if decodeSegment(parts[0], &hdr) != nil || hdr["alg"] == nil || decodeSegment(parts[1], &claims) != nil {
		return nil
	}
	return claims
}

// checkSessionCookie holds the session cookie to the contract.
func checkSessionCookie(t *testing.T, c *network.Cookie, email string) map[string]any {
	t.Helper()
	if c == nil {
		t.Fatal("no session cookie after signing in")
	}
	claims := jwtClaims(c.Value)
	if claims["email"] != email {
		t.Errorf("the session cookie holds a token for %v; want %s", claims["email"], email)
	}
	if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax {
		t.Errorf("session cookie %s: HttpOnly=%v SameSite=%q; want HttpOnly, SameSite=Lax", c.Name, c.HTTPOnly, c.SameSite)
	}
	if strings.HasPrefix(env.frontendURL, "https://") && (!c.Secure || !strings.HasPrefix(c.Name, "__Host-")) {
		t.Errorf("session cookie %s on HTTPS: Secure=%v; want Secure and a __Host- name", c.Name, c.Secure)
	}
	return claims
}

const secretSentence = "The secret message is: Hello World"

func checkSignedIn(t *testing.T, st pageState, email string) {
	t.Helper()
	if st.SignedInAs != email {
		t.Errorf("the page shows signed in as %q; want %q\n%s", st.SignedInAs, email, st.Text)
	}
	if !strings.Contains(st.Secret, secretSentence) {
		t.Errorf("the page shows secret %q and alerts %q; want %q%s", st.Secret, st.Alerts, secretSentence, stackLogsFor(st.Alerts))
	}
}

var requestIDPattern = regexp.MustCompile(`Request id:\s*([0-9A-Za-z-]+)`)

// stackLogsFor returns the local stack's log lines for the request id that a
// problem notice quotes, so a failure says which component did what.
func stackLogsFor(notice string) string {
	m := requestIDPattern.FindStringSubmatch(notice)
	if m == nil || env.logs == nil {
		return ""
	}
	var lines []string
	for line := range strings.Lines(env.logs.String()) {
		if strings.Contains(line, m[1]) {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return "\nthe local stack logged for request " + m[1] + ":\n" + strings.Join(lines, "\n")
}

// TestBrowser is the one browser suite: one Chromium, each case in a tab of
// its own. It covers signing in and out, sign-up and its errors, sessions
// that expire or are planted, the request-path panel (requestpath_test.go)
// and the developers' page (developers_browser_test.go). One group alone:
// go test ./e2e/ -run 'Browser/developers'.
func TestBrowser(t *testing.T) {
	b := newBrowser(t)

	t.Run("signing in as the demo user shows the email and the secret message", func(t *testing.T) {
		email, password := requireUser(t)
		tb := b.newTab(t)
		tb.open(t, "/")
		st := tb.waitSignedOut(t)
		if st.Heading != "Sign in" {
			t.Errorf("signed-out heading = %q; want Sign in", st.Heading)
		}
		tb.screenshot(t, "signed-out.png")
		tb.submitCredentials(t, email, password, "Sign in")
		st = tb.waitSignedIn(t)
		checkSignedIn(t, st, email)
		checkSessionCookie(t, tb.sessionCookie(t), email)
		tb.screenshot(t, "signed-in.png")
	})

	t.Run("the sign-in page fits a 320 px wide screen", func(t *testing.T) {
		tb := b.newTab(t)
		tb.do(t, "emulating a 320 px wide phone", chromedp.EmulateViewport(320, 640, chromedp.EmulateMobile))
		tb.open(t, "/")
		tb.waitSignedOut(t)
		ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
		defer cancel()
		widths, err := chromedp.Run(ctx, chromedp.Evaluate[[2]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
		if err != nil {
			t.Fatalf("measuring the page: %v", err)
		}
		if widths[0] > widths[1] {
			t.Errorf("the page is %d px wide in a %d px viewport; want no horizontal scrolling", widths[0], widths[1])
		}
		tb.screenshot(t, "signed-out-320px.png")
	})

	t.Run("a wrong password shows an inline error that does not tell whether the account exists, and stays signed out", func(t *testing.T) {
		email, password := requireUser(t)
		tb := b.newTab(t)
		tb.open(t, "/")
		tb.waitSignedOut(t)
		tb.submitCredentials(t, email, "not-"+password, "Sign in")
		tb.do(t, "waiting for the inline error", chromedp.WaitVisible(chromedp.ID("auth-error")))
		tb.do(t, "waiting for the form to be usable again", chromedp.WaitVisible(chromedp.CSS("#auth-form fieldset:enabled")))
		st := tb.state(t)
		if !strings.Contains(st.Alerts, "email and password do not match") {
			t.Errorf("inline error = %q; want the page's wrong-credentials message", st.Alerts)
		}
		if st.SignedInAs != "" || !st.FormReady {
			t.Errorf("after a wrong password: signed in as %q, form ready %v; want still signed out with the form", st.SignedInAs, st.FormReady)
		}
		if c := tb.sessionCookie(t); c != nil {
			t.Errorf("a wrong password left a session cookie %s", c.Name)
		}
		tb.reload(t)
		tb.waitSignedOut(t)
		// An address with no account gets the very same words, so the form
		// does not tell anyone which emails have an account.
		tb.submitCredentials(t, fmt.Sprintf("e2e-nobody-%d@example.com", time.Now().UnixNano()), "not-"+password, "Sign in")
		tb.do(t, "waiting for the inline error", chromedp.WaitVisible(chromedp.CSS("#auth-error:not([hidden])")))
		if other := tb.state(t).Alerts; other != st.Alerts {
			t.Errorf("an unknown email shows %q, a known one with a wrong password %q; want the same message", other, st.Alerts)
		}
	})

	t.Run("creating an account explains a taken email and a weak password", func(t *testing.T) {
		email, _ := requireUser(t)
		tb := b.newTab(t)
		for _, tc := range []struct{ what, email, password, want string }{
			{"a taken email", email, randomString(12), "could not create an account with that email"},
			{"a weak password", fmt.Sprintf("e2e-weak-%d@example.com", time.Now().UnixNano()), "12345", "at least 6 characters"},
		} {
			tb.open(t, "/?mode=create")
			tb.waitSignedOut(t)
			tb.submitCredentials(t, tc.email, tc.password, "Create account")
			tb.do(t, "waiting for the inline error about "+tc.what, chromedp.WaitVisible(chromedp.CSS("#auth-error:not([hidden])")))
			if st := tb.state(t); !strings.Contains(st.Alerts, tc.want) || st.SignedInAs != "" {
				t.Errorf("creating an account with %s: alerts %q, signed in as %q; want an error containing %q, still signed out", tc.what, st.Alerts, st.SignedInAs, tc.want)
			}
		}
		if c := tb.sessionCookie(t); c != nil {
			t.Errorf("a refused sign-up left a session cookie %s", c.Name)
		}
	})

	t.Run("creating a new account asks to verify the email, then shows the secret once it is", func(t *testing.T) {
		email := fmt.Sprintf("e2e-%d@example.com", time.Now().UnixNano())
		password := randomString(12)
		noteSecret(password)
		t.Cleanup(func() { deleteUser(t, email, password) })
		tb := b.newTab(t)
		gatewayBefore := gatewayRequests(t)
		tb.open(t, "/?mode=create")
		st := tb.waitSignedOut(t)
		if st.Heading != "Create your account" {
			t.Errorf("heading = %q; want Create your account", st.Heading)
		}
		// This time with the keyboard only: type, then Enter submits.
		tb.do(t, "checking the form's button", chromedp.WaitVisible(chromedp.Search(`//form[@id="auth-form"]//button[normalize-space()="Create account"]`)))
		tb.do(t, "filling in the form and pressing Enter",
			chromedp.SendKeys(chromedp.ID("email"), email),
			chromedp.SendKeys(chromedp.ID("password"), password+"\r"),
		)
		// Sign-up is open, so the new account must prove its address first.
		tb.do(t, "waiting for the check-your-inbox page", chromedp.WaitVisible(chromedp.ID("verify-title")),
			chromedp.WaitEnabled(chromedp.ID("verify-check")))
		st = tb.state(t)
		if st.Heading != "Check your inbox" || st.SignedInAs != email || st.Secret != "" {
			t.Errorf("after sign-up the page shows heading %q for %q with secret %q; want Check your inbox for %s and no secret\n%s",
				st.Heading, st.SignedInAs, st.Secret, email, st.Text)
		}
		checkSessionCookie(t, tb.sessionCookie(t), email)
		tb.screenshot(t, "verify-email.png")
		tb.do(t, "asking whether the address is verified before it is", chromedp.Click(chromedp.ID("verify-check")),
			chromedp.WaitVisible(chromedp.CSS("#verify-status:not([hidden])")))
		if st := tb.state(t); !strings.Contains(st.Text, "not verified yet") || st.Secret != "" {
			t.Errorf("before verifying, the page shows %q; want it to say the address is not verified yet, and no secret", st.Text)
		}
		tb.do(t, "emulating a 320 px wide phone", chromedp.EmulateViewport(320, 640, chromedp.EmulateMobile))
		tb.screenshot(t, "verify-email-320px.png")
		tb.do(t, "back to a desktop window", chromedp.EmulateViewport(1280, 900))
		// The frontend serves the secret to verified emails only: it must not
		// even ask the gateway for an unverified account.
		if n := gatewayRequests(t) - gatewayBefore; env.logs != nil && n != 0 {
			t.Errorf("%d request(s) reached the gateway while the account was unverified; want none", n)
		}

		st0 := requireLocal(t, "following the verification link needs the emulator's outbox; a deployed project mails it")
		followVerificationLink(t, st0.IdentityURL, st0.Emulator.ProjectID(), email)
		// The same page, without signing in again: the module reloads the
		// user, posts a token that says the email is verified, and the
		// server renders the secret.
		tb.do(t, "pressing I have verified my email", chromedp.Click(chromedp.ID("verify-check")))
		st = tb.waitSignedIn(t)
		checkSignedIn(t, st, email)
		checkSessionCookie(t, tb.sessionCookie(t), email)
		// And the account is a normal one: out, and back in with its password.
		tb.do(t, "pressing Sign out", chromedp.Click(chromedp.Search(`//form[@id="sign-out-form"]//button[normalize-space()="Sign out"]`)))
		tb.waitSignedOut(t)
		tb.submitCredentials(t, email, password, "Sign in")
		st = tb.waitSignedIn(t)
		checkSignedIn(t, st, email)
		checkSessionCookie(t, tb.sessionCookie(t), email)
	})

	t.Run("signing out returns to the sign-in form, stays signed out, and ends the user's other sessions", func(t *testing.T) {
		email, password := requireUser(t)
		// The same user signed in elsewhere (another browser's SDK).
		elsewhere := refreshToken(t, email, password)
		if !refreshWorks(t, elsewhere) {
			t.Fatal("a fresh refresh token does not work; the check below would prove nothing")
		}
		tb := b.newTab(t)
		checkSignedIn(t, tb.signIn(t, email, password), email)
		tb.do(t, "pressing Sign out", chromedp.Click(chromedp.Search(`//form[@id="sign-out-form"]//button[normalize-space()="Sign out"]`)))
		tb.waitSignedOut(t)
		// Sign-out revoked the user's refresh tokens: no SDK of theirs can
		// mint a new ID token.
		if refreshWorks(t, elsewhere) {
			t.Errorf("after sign-out, the user's refresh token from another sign-in still works; want it revoked")
		}
		if c := tb.sessionCookie(t); c != nil {
			t.Errorf("signing out left the session cookie %s", c.Name)
		}
		// The SDK must have forgotten the user too, or the page would sign
		// them straight back in.
		tb.reload(t)
		if st := tb.waitSignedOut(t); st.SignedInAs != "" {
			t.Errorf("after a reload the page is signed in as %q again", st.SignedInAs)
		}
		if c := tb.sessionCookie(t); c != nil {
			t.Errorf("after sign-out and a reload there is a session cookie %s again", c.Name)
		}
	})

	t.Run("a page on another localhost port cannot plant a session (login CSRF)", func(t *testing.T) {
		requireLocal(t, "cookies are shared across ports only on plain-HTTP localhost; a deployed frontend's are __Host- and Secure")
		// The attacker's page, on another port of the same host, sets a
		// session cookie holding a real ID token of an account the attacker
		// controls (here the demo user's).
		email, password := requireUser(t)
		res, err := newIdentityClient(t).signIn(t.Context(), email, password)
		if err != nil {
			t.Fatalf("signing the attacker's account in: %v", err)
		}
		planted := res.IDToken
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				// Only the page plants it: a late answer to the browser's
				// favicon request would plant it again after the frontend
				// deleted it.
				http.NotFound(w, r)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: "session", Value: planted, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
			fmt.Fprint(w, "<!doctype html><title>a page on another port</title>")
		}))
		t.Cleanup(evil.Close)
		tb := b.newTab(t)
		tb.do(t, "visiting the page on another port", chromedp.Navigate(evil.URL))
		if c := tb.sessionCookie(t); c == nil || c.Value != planted {
			t.Fatalf("Chromium does not send the other port's cookie to the frontend (%v); the case would prove nothing", c)
		}
		tb.open(t, "/")
		if st := tb.waitSignedOut(t); st.SignedInAs != "" {
			t.Errorf("the frontend took the planted cookie: signed in as %q", st.SignedInAs)
		}
		if c := tb.sessionCookie(t); c != nil {
			t.Errorf("the planted session cookie is still there after the frontend refused it")
		}
	})

	t.Run("reloading keeps a signed-in session", func(t *testing.T) {
		email, password := requireUser(t)
		tb := b.newTab(t)
		tb.signIn(t, email, password)
		tb.reload(t)
		checkSignedIn(t, tb.waitSignedIn(t), email)
	})

	t.Run("an expired ID token in the session cookie is refreshed silently, without an error page", func(t *testing.T) {
		st := requireLocal(t, "an expired ID token needs the local emulator's private key")
		email, password := requireUser(t)
		tb := b.newTab(t)
		tb.signIn(t, email, password)
		tb.waitSessionPosted(t)
		c := tb.sessionCookie(t)
		uid, _ := checkSessionCookie(t, c, email)["sub"].(string)

		// Replace only the cookie's value with the same user's token from two
		// hours ago, bound to this frontend as it binds every session, as if
		// the tab had slept past the token's hour.
		expired, err := st.Emulator.IDTokenFor(tb.ctx, uid, time.Now().Add(-2*time.Hour))
		if err != nil {
			t.Fatalf("IDTokenFor: %v", err)
		}
		noteSecret(expired)
		planted := boundToFrontend(t, expired)
		tb.do(t, "putting the expired token in the session cookie", chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
			_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
				Name: c.Name, Value: planted, URL: env.frontendURL + "/", Path: c.Path,
				Secure: &c.Secure, HTTPOnly: &c.HTTPOnly, SameSite: c.SameSite,
			})
			return err
		}))
		if got := tb.sessionCookie(t); got == nil || got.Value != planted {
			t.Fatal("the expired token did not replace the session cookie")
		}

		logsBefore := len(env.logs.String())
		loadsBefore := tb.pageLoads()
		tb.reload(t)
		checkSignedIn(t, tb.waitSignedIn(t), email)
		// The server refused the cookie because the token had expired (not
		// because it could not tell the cookie was its own: then this case
		// would prove nothing about expiry) ...
		refusal := ""
		for line := range strings.Lines(env.logs.String()[logsBefore:]) {
			if strings.Contains(line, "session cookie refused") {
				refusal = line
			}
		}
		if !strings.Contains(refusal, "expired") {
			t.Errorf("the frontend logged the refusal %q; want the session cookie refused for its expired token", strings.TrimSpace(refusal))
		}
		// ... and sent the page that restores the session; the module
		// refreshed the token and reloaded. One load more than the reload
		// itself proves that path ran.
		if loads := tb.pageLoads() - loadsBefore; loads < 2 {
			t.Errorf("the reload loaded %d page(s); want 2: the refusing page, then the restored one", loads)
		}
		fresh := tb.sessionCookie(t)
		if fresh == nil || fresh.Value == planted {
			t.Fatal("the session cookie still holds the expired token; want a refreshed one")
		}
		exp, _ := jwtClaims(fresh.Value)["exp"].(float64)
		if left := time.Until(time.Unix(int64(exp), 0)); left < 50*time.Minute {
			t.Errorf("the refreshed token expires in %v; want about an hour", left.Round(time.Second))
		}
		if alerts := tb.state(t).Alerts; alerts != "" {
			t.Errorf("the refreshed page shows %q; want no message", alerts)
		}
	})

	// One browser for the whole suite: each case above and each group below
	// has its own tab in a browser context of its own (cookies, storage).
	t.Run("the signed-in page shows how the request reached the backend", func(t *testing.T) {
		testRequestPath(t, b)
	})
	t.Run("the developers' page creates an app, copies its key, charts its use and revokes it", func(t *testing.T) {
		testDevelopersPage(t, b)
	})
}

// followVerificationLink opens the newest verification link the emulator
// would have emailed to email, as the user would from their inbox. The
// emulator lists its out-of-band codes as the Firebase emulator does.
func followVerificationLink(t *testing.T, identityURL, project, email string) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(identityURL + "/emulator/v1/projects/" + project + "/oobCodes")
	if err != nil {
		t.Fatalf("listing the emulator's out-of-band codes: %v", err)
	}
	var out struct {
		OobCodes []struct{ Email, RequestType, OobLink string }
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("the emulator's out-of-band codes (%d): %v", resp.StatusCode, err)
	}
	link := ""
	for _, c := range out.OobCodes {
		if strings.EqualFold(c.Email, email) && c.RequestType == "VERIFY_EMAIL" {
			link = c.OobLink
		}
	}
	if link == "" {
		t.Fatalf("sign-up sent no verification link to %s", email)
	}
	resp, err = hc.Get(link)
	if err != nil {
		t.Fatalf("following the verification link: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("following the verification link answered %d; want 200", resp.StatusCode)
	}
}

// deleteUser removes an account a case created, through the same REST API
// (a user may delete themselves), so deployed projects do not fill up.
func deleteUser(t *testing.T, email, password string) {
	ic := newIdentityClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := ic.signIn(ctx, email, password)
	if err != nil {
		t.Logf("cleanup: could not sign %s in to delete the account: %v", email, err)
		return
	}
	if err := ic.deleteAccount(ctx, res.IDToken); err != nil {
		t.Errorf("cleanup: deleting %s: %v", email, err)
	}
}

// boundToFrontend is the session cookie value the local frontend would make
// of idToken (devstack sets no session key file: the key comes from the
// frontend's client key).
func boundToFrontend(t *testing.T, idToken string) string {
	t.Helper()
	requireLocal(t, "the session key is derived from the local frontend's client key")
	v, err := frontend.SessionCookieValue(frontend.Config{ClientTLSDir: env.clientCertDir}, idToken)
	if err != nil {
		t.Fatalf("binding the token to the local frontend: %v", err)
	}
	return v
}

// gatewayRequests counts the local gateway's access lines so far; 0 when
// deployed (no logs to read).
func gatewayRequests(t *testing.T) int {
	t.Helper()
	if env.logs == nil {
		return 0
	}
	lines, err := env.logs.JSONLines()
	if err != nil {
		t.Fatalf("reading the stack's logs: %v", err)
	}
	n := 0
	for _, l := range lines {
		if l["message"] == "request" && l["component"] == "gateway" {
			n++
		}
	}
	return n
}
