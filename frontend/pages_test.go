package frontend

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
)

func TestSignedOutPageOffersSignIn(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name, path, heading, button, autocomplete string
	}{
		{"the start page offers to sign in", "/", "Sign in", "Sign in", "current-password"},
		{"?mode=create offers to create an account", "/?mode=create", "Create your account", "Create account", "new-password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.get(tt.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: got %d, want 200", tt.path, resp.StatusCode)
			}
			doc := htmltest.Parse(t, body)
			if got := htmltest.Text(htmltest.ByID(doc, "auth-title")); got != tt.heading {
				t.Errorf("heading: got %q, want %q", got, tt.heading)
			}
			form := htmltest.ByID(doc, "auth-form")
			if form == nil {
				t.Fatal("no #auth-form")
			}
			for _, id := range []string{"email", "password"} {
				in := htmltest.ByID(doc, id)
				label := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "label" && htmltest.Attr(n, "for") == id })
				if in == nil || label == nil || !htmltest.Has(in, "required") {
					t.Errorf("input #%s: want it present, required and labelled; got input %v label %v", id, in != nil, label != nil)
				}
			}
			if got := htmltest.Attr(htmltest.ByID(doc, "password"), "autocomplete"); got != tt.autocomplete {
				t.Errorf("password autocomplete: got %q, want %q", got, tt.autocomplete)
			}
			submit := htmltest.Find(form, func(n *html.Node) bool { return n.Data == "button" && htmltest.Attr(n, "type") == "submit" })
			if got := htmltest.Text(submit); got != tt.button {
				t.Errorf("submit button: got %q, want %q", got, tt.button)
			}
			fs := htmltest.Find(form, func(n *html.Node) bool { return n.Data == "fieldset" })
			if fs == nil || !htmltest.Has(fs, "disabled") {
				t.Errorf("the form's fieldset should be rendered disabled until the module enables it")
			}
			if htmltest.ByID(doc, "google-sign-in") != nil {
				t.Errorf(`"Continue with Google" shown though the configuration does not enable it`)
			}
			bodyEl := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "body" })
			if got := htmltest.Attr(bodyEl, "data-session"); got != "none" {
				t.Errorf("data-session: got %q, want none", got)
			}
		})
	}

	t.Run("the page hands the module its configuration, and no secrets", func(t *testing.T) {
		_, body := s.get("/")
		doc := htmltest.Parse(t, body)
		el := htmltest.ByID(doc, "app-config")
		if htmltest.Attr(el, "type") != "application/json" {
			t.Fatalf("#app-config: want a JSON script element, got %v", el)
		}
		var cfg map[string]string
		if err := json.Unmarshal([]byte(htmltest.Text(el)), &cfg); err != nil {
			t.Fatalf("#app-config: %v", err)
		}
		want := map[string]string{"apiKey": "emulator-api-key", "projectId": testProject,
			"authDomain": testProject + ".firebaseapp.com", "emulatorUrl": "http://" + s.cfg.AuthEmulatorHost}
		for k, v := range want {
			if cfg[k] != v {
				t.Errorf("config %s: got %q, want %q", k, cfg[k], v)
			}
		}
		if len(cfg["csrfToken"]) != 43 {
			t.Errorf("config csrfToken: got %q, want a 32-byte base64url token", cfg["csrfToken"])
		}
		if len(cfg) != 5 {
			t.Errorf("config has keys %v; want exactly apiKey, authDomain, projectId, emulatorUrl, csrfToken", cfg)
		}
	})
	t.Run("the module is a deferred module script and no other script runs", func(t *testing.T) {
		_, body := s.get("/")
		doc := htmltest.Parse(t, body)
		var scripts []*html.Node
		var walk func(*html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode && n.Data == "script" {
				scripts = append(scripts, n)
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(doc)
		for _, sc := range scripts {
			switch htmltest.Attr(sc, "type") {
			case "module":
				if !strings.HasPrefix(htmltest.Attr(sc, "src"), "/static/signin-") {
					t.Errorf("module script src %q: want the hashed bundle", htmltest.Attr(sc, "src"))
				}
			case "application/json":
			default:
				t.Errorf("script of type %q would block rendering or run inline", htmltest.Attr(sc, "type"))
			}
		}
	})
	t.Run("Google sign-in is offered when configured", func(t *testing.T) {
		g := newStack(t, func(c *Config) { c.GoogleSignIn = true })
		resp, body := g.get("/")
		if htmltest.ByID(htmltest.Parse(t, body), "google-sign-in") == nil {
			t.Errorf(`no "Continue with Google" button`)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-src https://"+testProject+".firebaseapp.com") {
			t.Errorf("CSP %q: want the auth domain allowed as a frame for the popup flow", csp)
		}
	})
}

func TestSignedInPageShowsTheSecretMessage(t *testing.T) {
	s := newStack(t)
	session, token := s.signIn("ada@example.com")
	resp, body := s.get("/", session)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / signed in: got %d, want 200", resp.StatusCode)
	}
	doc := htmltest.Parse(t, body)
	main := htmltest.ByID(doc, "content")
	if got := htmltest.Text(main); !strings.Contains(got, "The secret message is: Hello World") {
		t.Errorf("page text %q: want it to contain the secret message", got)
	}
	if !strings.Contains(htmltest.Text(main), "ada@example.com") {
		t.Errorf("page text %q: want the user's email", htmltest.Text(main))
	}
	if authz, reqID := s.gateway.last(); authz != "Bearer "+token || reqID == "" {
		t.Errorf("the gateway got Authorization %q and request id %q; want the session's ID token as a bearer and an id", authz, reqID)
	}
	form := htmltest.ByID(doc, "sign-out-form")
	if htmltest.Attr(form, "method") != "post" || htmltest.Attr(form, "action") != "/signout" {
		t.Errorf("sign-out form: want POST /signout, got %s %s", htmltest.Attr(form, "method"), htmltest.Attr(form, "action"))
	}
	hidden := htmltest.Find(form, func(n *html.Node) bool { return htmltest.Attr(n, "name") == "csrf" })
	if len(htmltest.Attr(hidden, "value")) != 43 {
		t.Errorf("sign-out form: want a CSRF token field so it works without JavaScript")
	}
	if strings.Contains(body, token) {
		t.Errorf("the page contains the user's ID token")
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q: a personal page must not be cached", got)
	}
	if logs := s.logs.String(); strings.Contains(logs, token) || strings.Contains(logs, session.Value) {
		t.Errorf("the logs contain the ID token")
	}
}

func TestGatewayAnswersBecomeMessages(t *testing.T) {
	s := newStack(t)
	session, _ := s.signIn("ada@example.com")
	tests := []struct {
		name    string
		status  int
		want    string
		session string
	}{
		{"a 401 asks to sign in again and triggers a quiet refresh", http.StatusUnauthorized, "Sign in again", "stale"},
		{"a 403 says the user is not allowed", http.StatusForbidden, "not allowed", "active"},
		{"a 503 says the backend is unavailable", http.StatusServiceUnavailable, "backend is unavailable", "active"},
		{"a 504 says the backend is unavailable", http.StatusGatewayTimeout, "backend is unavailable", "active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.gateway.setStatus(tt.status)
			t.Cleanup(func() { s.gateway.setStatus(0) })
			resp, body := s.get("/", session)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /: got %d, want 200 with a message", resp.StatusCode)
			}
			doc := htmltest.Parse(t, body)
			alert := htmltest.Find(doc, func(n *html.Node) bool {
				return htmltest.Attr(n, "role") == "alert" && htmltest.Attr(n, "class") == "notice notice-error"
			})
			if !strings.Contains(htmltest.Text(alert), tt.want) {
				t.Errorf("alert %q: want it to contain %q", htmltest.Text(alert), tt.want)
			}
			id := resp.Header.Get("X-Request-Id")
			if id == "" || !strings.Contains(htmltest.Text(alert), "Request id: "+id) {
				t.Errorf("alert %q: want the request id %q to quote", htmltest.Text(alert), id)
			}
			bodyEl := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "body" })
			if got := htmltest.Attr(bodyEl, "data-session"); got != tt.session {
				t.Errorf("data-session: got %q, want %q", got, tt.session)
			}
		})
	}
	t.Run("an unreachable gateway says the backend is unavailable", func(t *testing.T) {
		down := newStack(t, func(c *Config) { c.GatewayURL = "https://127.0.0.1:1" })
		session, _ := down.signIn("ada@example.com")
		_, body := down.get("/", session)
		if !strings.Contains(body, "The backend is unavailable right now.") {
			t.Errorf("page: want the backend-unavailable message, got %q", htmltest.Text(htmltest.ByID(htmltest.Parse(t, body), "content")))
		}
	})
}

func TestSecurityHeaders(t *testing.T) {
	s := newStack(t)
	resp, _ := s.get("/")
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
		"connect-src 'self' http://" + s.cfg.AuthEmulatorHost, "base-uri 'none'", "form-action 'self'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q: want %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline or eval'd code", csp)
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: got %q, want %q", h, got, want)
		}
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
		t.Errorf("plain HTTP answered with HSTS %q; browsers ignore it there and it belongs to HTTPS", got)
	}

	t.Run("in production the SDK may reach the Identity Platform endpoints", func(t *testing.T) {
		c := s.cfg
		c.AuthEmulatorHost = ""
		got := contentSecurityPolicy(c)
		if !strings.Contains(got, "connect-src 'self' https://identitytoolkit.googleapis.com https://securetoken.googleapis.com") {
			t.Errorf("CSP %q: want the identity endpoints in connect-src", got)
		}
	})
}

func TestStaticAssetsAreServedForCaching(t *testing.T) {
	s := newStack(t)
	_, body := s.get("/")
	doc := htmltest.Parse(t, body)
	script := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "script" && htmltest.Attr(n, "type") == "module" })
	style := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "link" && htmltest.Attr(n, "rel") == "stylesheet" })
	for _, tt := range []struct{ path, ctype string }{
		{htmltest.Attr(script, "src"), "text/javascript"},
		{htmltest.Attr(style, "href"), "text/css"},
	} {
		t.Run("the page's "+tt.ctype+" is served immutable", func(t *testing.T) {
			resp, body := s.get(tt.path)
			if resp.StatusCode != 200 || len(body) == 0 {
				t.Fatalf("GET %s: got %d with %d bytes", tt.path, resp.StatusCode, len(body))
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
				t.Errorf("Content-Type %q, want %s", ct, tt.ctype)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
				t.Errorf("Cache-Control %q: want immutable", cc)
			}
			if !resp.Uncompressed { // net/http asked for gzip and undid it
				t.Errorf("GET %s was not served gzip-compressed", tt.path)
			}
		})
	}
	t.Run("unknown assets and the directory itself are not found", func(t *testing.T) {
		for _, p := range []string{"/static/", "/static/nope.js", "/static/../web.go"} {
			if resp, _ := s.get(p); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s: got %d, want 404", p, resp.StatusCode)
			}
		}
	})
	t.Run("healthz answers ok", func(t *testing.T) {
		if resp, body := s.get("/healthz"); resp.StatusCode != 200 || body != "ok\n" {
			t.Errorf("GET /healthz: got %d %q", resp.StatusCode, body)
		}
	})
}

func TestRequestLogsCarryTheTraceAndRequestID(t *testing.T) {
	s := newStack(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodGet, s.front.URL+"/?mode=create", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, _ := s.do(req)
	id := resp.Header.Get("X-Request-Id")
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["message"] == "request" && m["requestId"] == id {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no access log line with request id %q in:\n%s", id, s.logs.String())
	}
	if got, want := line["logging.googleapis.com/trace"], "projects/"+testProject+"/traces/"+traceID; got != want {
		t.Errorf("trace: got %v, want %s", got, want)
	}
	hr, _ := line["httpRequest"].(map[string]any)
	if hr["requestUrl"] != s.front.URL+"/?mode=create" || hr["status"] != float64(200) || line["severity"] != "INFO" || line["component"] != "frontend" {
		t.Errorf("access log %v: want requestUrl %s/?mode=create, status 200, severity INFO, component frontend", line, s.front.URL)
	}
}
