package components

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/a-h/templ"
	"golang.org/x/net/html"

	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
)

func render(t *testing.T, c templ.Component) *html.Node {
	t.Helper()
	var b bytes.Buffer
	if err := c.Render(context.Background(), &b); err != nil {
		t.Fatalf("render: %v", err)
	}
	doc, err := html.Parse(&b)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return doc
}

func TestSignInCard(t *testing.T) {
	tests := []struct {
		name        string
		in          SignIn
		formHidden  bool
		statusShown bool
		google      bool
	}{
		{"a fresh visit shows the form", SignIn{Mode: ModeSignIn}, false, false, false},
		{"a stale session shows 'restoring' instead of the form", SignIn{Mode: ModeSignIn, Restoring: true}, true, true, false},
		{"Google sign-in appears only when enabled", SignIn{Mode: ModeSignIn, GoogleSignIn: true}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := render(t, SignInCard(tt.in))
			form := htmltest.ByID(doc, "auth-form")
			if form == nil || htmltest.Has(form, "hidden") != tt.formHidden {
				t.Errorf("form hidden: got %v, want %v", form != nil && htmltest.Has(form, "hidden"), tt.formHidden)
			}
			if status := htmltest.ByID(doc, "auth-status"); htmltest.Has(status, "hidden") == tt.statusShown {
				t.Errorf("restoring status shown: got %v, want %v", !htmltest.Has(status, "hidden"), tt.statusShown)
			}
			if got := htmltest.ByID(doc, "google-sign-in") != nil; got != tt.google {
				t.Errorf("Google button: got %v, want %v", got, tt.google)
			}
			errBox := htmltest.ByID(doc, "auth-error")
			if htmltest.Attr(errBox, "role") != "alert" {
				t.Errorf("the error box must be an alert so screen readers announce it")
			}
		})
	}
}

func TestAccountCardEscapesWhatUsersControl(t *testing.T) {
	evil := `<img src=x onerror=alert(1)>@example.com`
	doc := render(t, AccountCard(Account{Email: evil}, Secret{Message: "<b>Hello</b>"}, "tok"))
	if htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "img" || n.Data == "b" }) != nil {
		t.Fatalf("user-controlled text became markup")
	}
	if !strings.Contains(htmltest.Text(doc), evil) {
		t.Errorf("page text %q: want the email shown as text", htmltest.Text(doc))
	}
	if got := htmltest.Text(htmltest.ByID(doc, "secret-message")); got != "<b>Hello</b>" {
		t.Errorf("secret: got %q, want the message as text", got)
	}
}

func TestSecretMessageShowsAProblemWithItsRequestID(t *testing.T) {
	doc := render(t, SecretMessage(Secret{Problem: &Problem{Title: "The backend is unavailable right now.", RequestID: "abc123"}}))
	alert := htmltest.Find(doc, func(n *html.Node) bool { return htmltest.Attr(n, "role") == "alert" })
	if got := htmltest.Text(alert); !strings.Contains(got, "The backend is unavailable right now.") || !strings.Contains(got, "Request id: abc123") {
		t.Errorf("alert %q: want the title and the request id", got)
	}
	if htmltest.ByID(doc, "secret-message") != nil {
		t.Errorf("a problem must not also show a secret")
	}
}

func TestLayoutLoadsTheModuleWithoutBlockingPaint(t *testing.T) {
	doc := render(t, HomePage(Home{Shell: Shell{Title: "Acme Vault", ScriptURL: "/static/s.js", StylesheetURL: "/static/a.css",
		Session: SessionNone, Client: ClientConfig{APIKey: "k", ProjectID: "p", AuthDomain: "d", CSRFToken: "c"}}}))
	script := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "script" && htmltest.Attr(n, "src") != "" })
	if htmltest.Attr(script, "type") != "module" {
		t.Errorf("the bundle's script: got type %q, want module (deferred, never render-blocking)", htmltest.Attr(script, "type"))
	}
	if vp := htmltest.Find(doc, func(n *html.Node) bool { return htmltest.Attr(n, "name") == "viewport" }); !strings.Contains(htmltest.Attr(vp, "content"), "width=device-width") {
		t.Errorf("no responsive viewport meta")
	}
	if html := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "html" }); htmltest.Attr(html, "lang") != "en" {
		t.Errorf("html lang: got %q, want en", htmltest.Attr(html, "lang"))
	}
	if skip := htmltest.Find(doc, func(n *html.Node) bool { return htmltest.Attr(n, "class") == "skip" }); htmltest.Attr(skip, "href") != "#content" {
		t.Errorf("want a skip link to #content for keyboard users")
	}
}
