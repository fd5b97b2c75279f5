package frontend

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

func TestSessionRefusesTokensThatAreNotGood(t *testing.T) {
	s := newStack(t)
	uid, _ := s.user("ada@example.com")
	now := time.Now()

	// A second emulator has its own signing key: its tokens are well formed,
	// for the right project, and forged as far as ours is concerned.
	other, err := identity.New(identity.Config{ProjectID: testProject, StateDir: t.TempDir(), PasswordHashCost: 10})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(aud string, iat time.Time) map[string]any {
		return map[string]any{
			"iss": "https://securetoken.google.com/" + aud, "aud": aud, "sub": uid, "user_id": uid,
			"auth_time": iat.Unix(), "iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix(),
			"email": "ada@example.com", "firebase": map[string]any{"sign_in_provider": "password"},
		}
	}
	sign := func(e *identity.Emulator, c map[string]any) string {
		tok, err := e.SignClaims(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	expired, err := s.emulator.IDTokenFor(context.Background(), uid, now.Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token string
	}{
		{"a token signed by another key is refused as forged", sign(other, claims(testProject, now))},
		{"an expired token is refused", expired},
		{"a token for another project is refused", sign(s.emulator, claims("demo-other", now))},
		{"a token with a tampered payload is refused", tamper(t, sign(s.emulator, claims(testProject, now)))},
		{"something that is not a JWT is refused", "not-a-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.postSession(tt.token, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("POST /session: got %d, want 401", resp.StatusCode)
			}
			if ck := cookieNamed(resp, "session"); ck != nil {
				t.Errorf("POST /session set a session cookie %q for a refused token", ck.Name)
			}
		})
	}

	t.Run("a refused cookie on the page means a quiet refresh, not an error", func(t *testing.T) {
		resp, body := s.get("/", &http.Cookie{Name: "session", Value: expired})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET / with an expired session cookie: got %d, want 200", resp.StatusCode)
		}
		doc := htmltest.Parse(t, body)
		body0 := htmltest.Find(doc, func(n *html.Node) bool { return n.Data == "body" })
		if got := htmltest.Attr(body0, "data-session"); got != "stale" {
			t.Errorf("body data-session: got %q, want stale (the module then refreshes quietly)", got)
		}
		if status := htmltest.ByID(doc, "auth-status"); status == nil || htmltest.Has(status, "hidden") {
			t.Errorf("the 'Restoring your session' status should be visible")
		}
		if strings.Contains(body, expired) {
			t.Errorf("the page contains the session token")
		}
	})
}

// tamper changes one character of the payload, keeping the signature.
func tamper(t *testing.T, jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	p := []byte(parts[1])
	if p[5] == 'A' {
		p[5] = 'B'
	} else {
		p[5] = 'A'
	}
	return parts[0] + "." + string(p) + "." + parts[2]
}

func TestSessionCookieAttributesFollowTheScheme(t *testing.T) {
	s := newStack(t)
	_, token := s.user("grace@example.com")

	t.Run("plain HTTP on localhost gets a plain, not Secure cookie", func(t *testing.T) {
		resp := s.postSession(token, nil)
		ck := cookieNamed(resp, "session")
		if ck == nil {
			t.Fatalf("no session cookie; got %v", resp.Cookies())
		}
		if ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
			t.Errorf("cookie %+v: want not Secure, HttpOnly, SameSite=Lax, Path=/", ck)
		}
		if ck.MaxAge <= 0 || ck.MaxAge > 3600 {
			t.Errorf("Max-Age %d: want positive and at most the token's remaining hour", ck.MaxAge)
		}
	})
	t.Run("HTTPS (as Cloud Run forwards it) gets a __Host- Secure cookie", func(t *testing.T) {
		https := func(r *http.Request) {
			r.Host = "frontend-abc-uc.a.run.app"
			r.Header.Set("X-Forwarded-Proto", "https")
			r.Header.Set("Origin", "https://frontend-abc-uc.a.run.app")
		}
		// The CSRF cookie from a plain-HTTP page has the plain name; over
		// HTTPS the frontend looks for __Host-csrf, so present it as that.
		ck, tok := s.csrf()
		resp := s.postSession(token, func(r *http.Request) {
			https(r)
			r.Header.Del("Cookie")
			r.AddCookie(&http.Cookie{Name: "__Host-csrf", Value: ck.Value})
			r.Header.Set("X-CSRF-Token", tok)
		})
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST /session over HTTPS: got %d, want 204", resp.StatusCode)
		}
		sc := cookieNamed(resp, "__Host-session")
		if sc == nil {
			t.Fatalf("no __Host-session cookie; got %v", resp.Header.Values("Set-Cookie"))
		}
		if !sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.Domain != "" {
			t.Errorf("cookie %+v: want Secure, HttpOnly, SameSite=Lax, Path=/ and no Domain", sc)
		}
		if hsts := resp.Header.Get("Strict-Transport-Security"); hsts == "" {
			t.Errorf("HTTPS response without Strict-Transport-Security")
		}
	})
}

func TestCSRFAttemptsAreRefused(t *testing.T) {
	s := newStack(t)
	_, token := s.user("mallory-target@example.com")
	tests := []struct {
		name string
		mod  func(*http.Request)
		want int
	}{
		{"a same-origin post with the token is accepted", nil, http.StatusNoContent},
		{"a post from another origin is refused", func(r *http.Request) {
			r.Header.Set("Origin", "https://evil.example")
		}, http.StatusForbidden},
		{"an opaque origin (sandboxed frame) is refused", func(r *http.Request) {
			r.Header.Set("Origin", "null")
		}, http.StatusForbidden},
		{"a post with neither Origin nor Sec-Fetch-Site is refused", func(r *http.Request) {
			r.Header.Del("Origin")
		}, http.StatusForbidden},
		{"a cross-site post without Origin is refused by Sec-Fetch-Site", func(r *http.Request) {
			r.Header.Del("Origin")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}, http.StatusForbidden},
		{"a same-origin post without the token is refused", func(r *http.Request) {
			r.Header.Del("X-CSRF-Token")
		}, http.StatusForbidden},
		{"a post whose token does not match the cookie is refused", func(r *http.Request) {
			r.Header.Set("X-CSRF-Token", strings.Repeat("A", 43))
		}, http.StatusForbidden},
		{"a post with the token but no CSRF cookie is refused", func(r *http.Request) {
			r.Header.Del("Cookie")
		}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.postSession(token, tt.mod)
			if resp.StatusCode != tt.want {
				t.Errorf("POST /session: got %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want != http.StatusNoContent && cookieNamed(resp, "session") != nil {
				t.Errorf("a refused request set a session cookie")
			}
		})
	}

	t.Run("sign-out from another origin is refused and the session stays", func(t *testing.T) {
		session, _ := s.signIn("victim@example.com")
		ck, tok := s.csrf()
		req, _ := http.NewRequest(http.MethodPost, s.front.URL+"/signout", strings.NewReader("csrf="+tok))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		req.AddCookie(ck)
		req.AddCookie(session)
		resp, _ := s.do(req)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-origin POST /signout: got %d, want 403", resp.StatusCode)
		}
		if c := cookieNamed(resp, "session"); c != nil {
			t.Errorf("a refused sign-out touched the session cookie: %+v", c)
		}
	})
	t.Run("sign-out from the page's form clears the session", func(t *testing.T) {
		session, _ := s.signIn("leaver@example.com")
		ck, tok := s.csrf()
		req, _ := http.NewRequest(http.MethodPost, s.front.URL+"/signout", strings.NewReader("csrf="+tok))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.front.URL)
		req.AddCookie(ck)
		req.AddCookie(session)
		resp, _ := s.do(req)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("POST /signout: got %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
		}
		if c := cookieNamed(resp, "session"); c == nil || c.MaxAge >= 0 {
			t.Errorf("POST /signout: want the session cookie deleted (Max-Age<0), got %+v", c)
		}
	})
}
