package components

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/a-h/templ"
	"golang.org/x/net/html"
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

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if m := find(c, match); m != nil {
			return m
		}
	}
	return nil
}

func byID(n *html.Node, id string) *html.Node {
	return find(n, func(n *html.Node) bool { return attr(n, "id") == id })
}

func attr(n *html.Node, key string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func has(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
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
			form := byID(doc, "auth-form")
			if form == nil || has(form, "hidden") != tt.formHidden {
				t.Errorf("form hidden: got %v, want %v", form != nil && has(form, "hidden"), tt.formHidden)
			}
			if status := byID(doc, "auth-status"); has(status, "hidden") == tt.statusShown {
				t.Errorf("restoring status shown: got %v, want %v", !has(status, "hidden"), tt.statusShown)
			}
			if got := byID(doc, "google-sign-in") != nil; got != tt.google {
				t.Errorf("Google button: got %v, want %v", got, tt.google)
			}
			errBox := byID(doc, "auth-error")
			if attr(errBox, "role") != "alert" {
				t.Errorf("the error box must be an alert so screen readers announce it")
			}
		})
	}
}

func TestAccountCardEscapesWhatUsersControl(t *testing.T) {
	evil := `<img src=x onerror=alert(1)>@example.com`
	doc := render(t, AccountCard(Account{Email: evil}, Secret{Message: "<b>Hello</b>"}, "tok"))
	if find(doc, func(n *html.Node) bool { return n.Data == "img" || n.Data == "b" }) != nil {
		t.Fatalf("user-controlled text became markup")
	}
	if !strings.Contains(text(doc), evil) {
		t.Errorf("page text %q: want the email shown as text", text(doc))
	}
	if got := text(byID(doc, "secret-message")); got != "<b>Hello</b>" {
		t.Errorf("secret: got %q, want the message as text", got)
	}
}

func TestSecretMessageShowsAProblemWithItsRequestID(t *testing.T) {
	doc := render(t, SecretMessage(Secret{Problem: &Problem{Title: "The backend is unavailable right now.", RequestID: "abc123"}}))
	alert := find(doc, func(n *html.Node) bool { return attr(n, "role") == "alert" })
	if got := text(alert); !strings.Contains(got, "The backend is unavailable right now.") || !strings.Contains(got, "Request id: abc123") {
		t.Errorf("alert %q: want the title and the request id", got)
	}
	if byID(doc, "secret-message") != nil {
		t.Errorf("a problem must not also show a secret")
	}
}

func TestLayoutLoadsTheModuleWithoutBlockingPaint(t *testing.T) {
	doc := render(t, HomePage(Home{Shell: Shell{Title: "Acme Vault", ScriptURL: "/static/s.js", StylesheetURL: "/static/a.css",
		Session: SessionNone, Client: ClientConfig{APIKey: "k", ProjectID: "p", AuthDomain: "d", CSRFToken: "c"}}}))
	script := find(doc, func(n *html.Node) bool { return n.Data == "script" && attr(n, "src") != "" })
	if attr(script, "type") != "module" {
		t.Errorf("the bundle's script: got type %q, want module (deferred, never render-blocking)", attr(script, "type"))
	}
	if vp := find(doc, func(n *html.Node) bool { return attr(n, "name") == "viewport" }); !strings.Contains(attr(vp, "content"), "width=device-width") {
		t.Errorf("no responsive viewport meta")
	}
	if html := find(doc, func(n *html.Node) bool { return n.Data == "html" }); attr(html, "lang") != "en" {
		t.Errorf("html lang: got %q, want en", attr(html, "lang"))
	}
	if skip := find(doc, func(n *html.Node) bool { return attr(n, "class") == "skip" }); attr(skip, "href") != "#content" {
		t.Errorf("want a skip link to #content for keyboard users")
	}
}
