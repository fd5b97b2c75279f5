package frontend

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// sessionKey is the MAC key the stack's frontend derived, to make cookies a
// test needs that sign-in would not (an expired token's, say).
func (s *stack) sessionKey() []byte {
	s.t.Helper()
	k, err := loadSessionKey(s.cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return k
}

// pageSession reads what GET / makes of a session cookie: the body's
// data-session and the email the page shows signed in, if any.
func (s *stack) pageSession(t *testing.T, c *http.Cookie) (session, signedInAs string) {
	t.Helper()
	resp, body := s.get("/", c)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: got %d, want 200", resp.StatusCode)
	}
	doc := htmltest.Parse(t, body)
	b := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "body" })
	return htmltest.Attr(b, "data-session"), accountEmail(doc)
}

// accountEmail is who the page shows signed in, or "".
func accountEmail(doc *html.Node) string {
	return htmltest.Text(htmltest.Find(doc, func(n *html.Node) bool { return htmltest.Attr(n, "class") == "account-email" }))
}

// Cookies on plain-HTTP localhost are shared by every port (RFC 6265 section
// 8.5), so a page on another port can plant the session cookie: login CSRF,
// the developer signed into the attacker's account. Only a cookie this
// frontend made, with its key, is a session.
func TestSessionCookieIsBoundToThisFrontend(t *testing.T) {
	s := newStack(t)
	key := s.sessionKey()
	adaCookie, ada := s.signIn("ada@example.com")
	_, mallory := s.user("mallory@example.com")
	adaUID, _ := s.user("ada@example.com")
	expired, err := s.emulator.IDTokenFor(context.Background(), adaUID, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	otherKeyFile := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(otherKeyFile, []byte(strings.Repeat("another state directory ", 4)), 0o600); err != nil {
		t.Fatal(err)
	}
	otherKey, err := loadSessionKey(Config{SessionKeyFile: otherKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	_, adaMAC, _ := strings.Cut(adaCookie.Value, macSeparator)
	cookie := func(v string) *http.Cookie { return &http.Cookie{Name: adaCookie.Name, Value: v} }

	tests := []struct {
		name        string
		cookie      *http.Cookie
		wantSession string // the page's data-session
		wantEmail   string // who the page shows signed in
		wantAPI     int    // GET /api/secure.json with the cookie
	}{
		{"the cookie this frontend made is a session", adaCookie, "active", "ada@example.com", 200},
		{"a bare ID token planted as the cookie is not a session", cookie(mallory), "stale", "", 401},
		{"a cookie made with another frontend's key is not a session", cookie(bindSession(otherKey, mallory)), "stale", "", 401},
		{"a MAC moved onto another user's token is not a session", cookie(mallory + macSeparator + adaMAC), "stale", "", 401},
		{"a token with an empty MAC is not a session", cookie(mallory + macSeparator), "stale", "", 401},
		{"an expired token is refused though its MAC is good", cookie(bindSession(key, expired)), "stale", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			session, email := s.pageSession(t, tt.cookie)
			if session != tt.wantSession || email != tt.wantEmail {
				t.Errorf("GET /: data-session %q signed in as %q; want %q and %q", session, email, tt.wantSession, tt.wantEmail)
			}
			before := s.gateway.count()
			req, _ := http.NewRequest(http.MethodGet, s.front.URL+"/api/secure.json", nil)
			req.AddCookie(tt.cookie)
			resp, body := s.do(req)
			if resp.StatusCode != tt.wantAPI {
				t.Errorf("GET /api/secure.json: got %d %q, want %d", resp.StatusCode, body, tt.wantAPI)
			}
			if tt.wantAPI != 200 && s.gateway.count() != before {
				t.Errorf("a refused cookie's token reached the gateway")
			}
		})
	}
	if strings.Contains(s.logs.String(), ada) || strings.Contains(s.logs.String(), adaMAC) {
		t.Errorf("the logs contain a session cookie")
	}

	t.Run("a page on another localhost port cannot plant a session", func(t *testing.T) {
		// The attacker's page hands the browser a session cookie for
		// localhost: their own account's token, even one bound by another
		// frontend they run. Go's cookie jar, like browsers, sends it to
		// every port of the host.
		planted := bindSession(otherKey, mallory)
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: planted, Path: "/", HttpOnly: true})
		}))
		t.Cleanup(evil.Close)
		if evil.URL == s.front.URL {
			t.Fatal("the attacker's server has the frontend's port")
		}
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Jar: jar}
		resp, err := hc.Get(evil.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := jar.Cookies(mustURL(t, s.front.URL)); len(got) != 1 || got[0].Value != planted {
			t.Fatalf("the jar holds %v for the frontend; want the planted cookie (cookies are shared across ports)", got)
		}
		resp, err = hc.Get(s.front.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		doc, err := html.Parse(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if email := accountEmail(doc); email != "" {
			t.Errorf("the frontend shows signed in as %q from a cookie another port planted", email)
		}
		if htmltest.ByID(doc, "auth-form") == nil {
			t.Errorf("want the sign-in form")
		}
	})
}

func TestSessionKeyComesFromTheSecretItNames(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	for _, d := range []string{dirA, dirB} {
		if _, err := pki.Ensure(pki.Config{Dir: d, GatewayHosts: []string{gatewayHost}}); err != nil {
			t.Fatal(err)
		}
	}
	short := filepath.Join(t.TempDir(), "short.key")
	if err := os.WriteFile(short, []byte("too short"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyOf := func(t *testing.T, c Config) []byte {
		t.Helper()
		k, err := loadSessionKey(c)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	t.Run("the same state directory gives the same key, so a restart keeps sessions", func(t *testing.T) {
		a1 := keyOf(t, Config{ClientTLSDir: filepath.Join(dirA, "frontend")})
		a2 := keyOf(t, Config{ClientTLSDir: filepath.Join(dirA, "frontend")})
		if string(a1) != string(a2) {
			t.Errorf("two loads of one state directory gave two keys")
		}
	})
	t.Run("another state directory gives another key", func(t *testing.T) {
		a := keyOf(t, Config{ClientTLSDir: filepath.Join(dirA, "frontend")})
		b := keyOf(t, Config{ClientTLSDir: filepath.Join(dirB, "frontend")})
		if string(a) == string(b) {
			t.Errorf("two state directories gave the same session key")
		}
	})
	t.Run("the key is not the client private key itself", func(t *testing.T) {
		pem, err := os.ReadFile(filepath.Join(dirA, "frontend", "tls.key"))
		if err != nil {
			t.Fatal(err)
		}
		if k := keyOf(t, Config{ClientTLSDir: filepath.Join(dirA, "frontend")}); strings.Contains(string(pem), string(k)) {
			t.Errorf("the session key appears in the private key file")
		}
	})
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"a missing session key file is named", Config{SessionKeyFile: filepath.Join(dirA, "nope")}, "SessionKeyFile"},
		{"a session key file under 32 bytes is refused", Config{SessionKeyFile: short}, "at least 32"},
		{"a missing client key is named", Config{ClientTLSDir: t.TempDir()}, "ClientTLSDir/tls.key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadSessionKey(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("loadSessionKey: got %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

// BenchmarkUnbindSession is what the cookie's MAC costs every request that
// carries a session: one HMAC-SHA256 over a ~1 KB token.
//
//	go test -run '^$' -bench UnbindSession ./frontend
func BenchmarkUnbindSession(b *testing.B) {
	key := make([]byte, sessionKeyLen)
	token := strings.Repeat("x", 1000)
	value := bindSession(key, token)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := unbindSession(key, value); err != nil {
			b.Fatal(err)
		}
	}
}
