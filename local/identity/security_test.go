package identity

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
)

// Hostile rows from the security review (issue 13). Each row failed before
// its fix; those that raced on map order repeat often enough that the old
// code could not pass them all by luck (2^-20 for twenty tries).

const takeoverTries = 20

func TestAUserCannotTakeAnotherUsersEmail(t *testing.T) {
	tests := []struct {
		name    string
		reveal  bool // RevealUnknownEmails: email enumeration protection off
		newMail string
		want    string
	}{
		{"with enumeration protection a user's email change must go through verification",
			false, "victim@example.com", "OPERATION_NOT_ALLOWED : Please verify the new email before changing email."},
		{"without enumeration protection another user's email is refused as taken",
			true, "victim@example.com", "EMAIL_EXISTS"},
		{"without enumeration protection another user's email in other letter case is refused as taken",
			true, "Victim@EXAMPLE.com", "EMAIL_EXISTS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newTestEmulator(t, func(c *Config) { c.RevealUnknownEmails = tt.reveal })
			victim := signUp(t, srv, "victim@example.com", "victim-password")
			attacker := signUp(t, srv, "attacker@example.com", "attacker-password")
			for range takeoverTries {
				code, out := call(t, srv, "POST", updatePath, map[string]any{
					"idToken": attacker["idToken"], "email": tt.newMail, "returnSecureToken": true})
				if code != 400 || errMessage(out) != tt.want {
					t.Fatalf("attacker's update to %s = %d %q; want 400 %s", tt.newMail, code, errMessage(out), tt.want)
				}
			}
			code, out := call(t, srv, "POST", signInPath, map[string]any{"email": "victim@example.com", "password": "attacker-password"})
			if code != 400 {
				t.Fatalf("sign-in as the victim with the attacker's password = %d %v; want 400", code, out)
			}
			code, out = call(t, srv, "POST", signInPath, map[string]any{"email": "victim@example.com", "password": "victim-password"})
			if code != 200 || out["localId"] != victim["localId"] {
				t.Fatalf("victim's sign-in = %d %v; want 200 as %v", code, out, victim["localId"])
			}
		})
	}
}

func TestTheAdminCannotGiveTwoAccountsOneEmailOrPhone(t *testing.T) {
	tests := []struct {
		name  string
		field string
		value string
		want  string
	}{
		{"an email another account holds is refused", "email", "Victim@Example.COM", "EMAIL_EXISTS"},
		{"a phone number another account holds is refused", "phoneNumber", "+15555550100", "PHONE_NUMBER_EXISTS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newTestEmulator(t)
			admin := []string{"Authorization", "Bearer owner"}
			call(t, srv, "POST", adminPath+"/accounts", map[string]any{"localId": "victim", "email": "victim@example.com", "phoneNumber": "+15555550100"}, admin...)
			call(t, srv, "POST", adminPath+"/accounts", map[string]any{"localId": "other", "email": "other@example.com"}, admin...)
			for range takeoverTries {
				code, out := call(t, srv, "POST", adminPath+"/accounts:update", map[string]any{"localId": "other", tt.field: tt.value}, admin...)
				if code != 400 || errMessage(out) != tt.want {
					t.Fatalf("admin update of %s to %s = %d %q; want 400 %s", tt.field, tt.value, code, errMessage(out), tt.want)
				}
			}
		})
	}
}

func TestConflictingSavedAccountsAreSetAsideAndTheRestStart(t *testing.T) {
	dir := t.TempDir()
	// What the takeover bug left behind: two accounts with one email.
	_, srv0 := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
	signUp(t, srv0, "victim@example.com", "victim-password")
	signUp(t, srv0, "attacker@example.com", "attacker-password")
	signUp(t, srv0, "bystander@example.com", "bystander-password")
	srv0.Close()
	path := filepath.Join(dir, accountsFile)
	var disk accountsOnDisk
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &disk); err != nil {
		t.Fatal(err)
	}
	for _, a := range disk.Accounts {
		if a.Email == "attacker@example.com" {
			a.Email = "VICTIM@example.com"
		}
	}
	b, _ = json.Marshal(disk)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	e, srv := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
	notices := strings.Join(e.Notices(), "\n")
	asides, _ := filepath.Glob(filepath.Join(dir, "accounts.conflict-*.json"))
	if len(asides) != 1 {
		t.Fatalf("set-aside files = %v; want one", asides)
	}
	for _, want := range []string{"2 accounts share the email victim@example.com", asides[0], "restart"} {
		if !strings.Contains(notices, want) {
			t.Errorf("Notices() = %q; want it to mention %q", notices, want)
		}
	}
	t.Run("neither conflicting account can sign in", func(t *testing.T) {
		for _, pw := range []string{"victim-password", "attacker-password"} {
			if code, out := call(t, srv, "POST", signInPath, map[string]any{"email": "victim@example.com", "password": pw}); code != 400 {
				t.Errorf("sign-in as victim@example.com = %d %v; want 400", code, out)
			}
		}
	})
	t.Run("every other account still signs in", func(t *testing.T) {
		if code, out := call(t, srv, "POST", signInPath, map[string]any{"email": "bystander@example.com", "password": "bystander-password"}); code != 200 {
			t.Errorf("bystander's sign-in = %d %v; want 200", code, out)
		}
	})
	t.Run("the set-aside file keeps both accounts", func(t *testing.T) {
		b, err := os.ReadFile(asides[0])
		if err != nil {
			t.Fatal(err)
		}
		var aside accountsOnDisk
		if err := json.Unmarshal(b, &aside); err != nil || len(aside.Accounts) != 2 {
			t.Fatalf("set-aside file = %v, %d accounts; want 2", err, len(aside.Accounts))
		}
	})
	t.Run("the next start is clean", func(t *testing.T) {
		srv.Close()
		again, _ := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
		if n := again.Notices(); n != nil {
			t.Fatalf("Notices() after the repair = %q; want none", n)
		}
	})
}

func TestTheAdminDoorIsClosedToWebPages(t *testing.T) {
	const frontend = "http://127.0.0.1:8080"
	admin := []string{"Authorization", "Bearer owner"}
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		hdr    []string
		want   int
		after  func(t *testing.T, e *Emulator, out map[string]any)
	}{
		{"a page on another site cannot sign up", "POST", signUpPath,
			map[string]any{"email": "planted@example.com", "password": "planted-pw"},
			[]string{"Origin", "https://evil.example"}, 403,
			func(t *testing.T, e *Emulator, _ map[string]any) {
				if _, ok := e.accounts.byEmailAddr("planted@example.com"); ok {
					t.Error("the cross-site sign-up created an account")
				}
			}},
		{"a page on another site gets no preflight permission", "OPTIONS", signInPath, nil,
			[]string{"Origin", "https://evil.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization"}, 403, nil},
		{"the admin credential is refused even from the frontend's origin", "GET", adminPath + "/accounts:batchGet", nil,
			append([]string{"Origin", frontend}, admin...), 403, nil},
		{"the admin credential is refused from another site", "POST", adminPath + "/accounts:update",
			map[string]any{"localId": "victim", "emailVerified": true},
			append([]string{"Origin", "https://evil.example"}, admin...), 403, nil},
		{"the reset needs the admin credential", "DELETE", "/emulator/v1/projects/" + testProject + "/accounts", nil, nil, 401,
			func(t *testing.T, e *Emulator, _ map[string]any) {
				if e.accounts.len() == 0 {
					t.Error("the reset without a credential deleted every account")
				}
			}},
		{"a request naming a rebound host is refused", "POST", lookupPath, map[string]any{}, []string{"Host", "rebound.evil.example"}, 403, nil},
		{"a request naming a rebound host with the admin credential is refused", "GET", adminPath + "/accounts:batchGet", nil,
			append([]string{"Host", "rebound.evil.example:9099"}, admin...), 403, nil},
		{"the discovery document names BaseURL, not the request's Host", "GET",
			"/securetoken.google.com/" + testProject + "/.well-known/openid-configuration", nil, []string{"Host", "localhost:1"}, 200,
			func(t *testing.T, e *Emulator, out map[string]any) {
				if jwks, _ := out["jwks_uri"].(string); jwks != e.baseURL+JWKSPath {
					t.Errorf("jwks_uri = %q; want %q", jwks, e.baseURL+JWKSPath)
				}
			}},
		{"the frontend's origin may call the client API", "POST", signInPath,
			map[string]any{"email": "victim@example.com", "password": "victim-password"}, []string{"Origin", frontend}, 200, nil},
		{"a configured host is admitted", "POST", signInPath,
			map[string]any{"email": "victim@example.com", "password": "victim-password"}, []string{"Host", "identity.test:9099"}, 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newTestEmulator(t, func(c *Config) {
				c.AllowedOrigins = []string{frontend}
				c.AllowedHosts = []string{"identity.test"}
			})
			signUp(t, srv, "victim@example.com", "victim-password")
			code, out := callHost(t, srv, tt.method, tt.path, tt.body, tt.hdr...)
			if code != tt.want {
				t.Fatalf("%s %s = %d %v; want %d", tt.method, tt.path, code, out, tt.want)
			}
			if tt.after != nil {
				tt.after(t, e, out)
			}
		})
	}
	t.Run("a refused origin gets no CORS header to read the answer with", func(t *testing.T) {
		_, srv := newTestEmulator(t, func(c *Config) { c.AllowedOrigins = []string{frontend} })
		req, _ := http.NewRequest("OPTIONS", srv.URL+signInPath, nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Fatalf("Access-Control-Allow-Origin = %q; want none for a foreign origin", got)
		}
	})
}

// callHost is call with a "Host" pseudo-header that sets the request's Host
// (the connection still goes to srv, on loopback).
func callHost(t *testing.T, srv *httptest.Server, method, path string, body any, hdr ...string) (int, map[string]any) {
	t.Helper()
	var rest []string
	host := ""
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			host = hdr[i+1]
			continue
		}
		rest = append(rest, hdr[i], hdr[i+1])
	}
	if host == "" {
		return call(t, srv, method, path, body, rest...)
	}
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(rest); i += 2 {
		req.Header.Set(rest[i], rest[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestSensitiveChangesNeedARecentSignIn(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		body   map[string]any
		reveal bool
	}{
		{"a password change", updatePath, map[string]any{"password": "a new password"}, false},
		{"an email change without enumeration protection", updatePath, map[string]any{"email": "new@example.com"}, true},
		{"an email change through verification", sendOobPath, map[string]any{"requestType": "VERIFY_AND_CHANGE_EMAIL", "newEmail": "new@example.com"}, false},
		{"deleting the account", deletePath, map[string]any{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name+" six minutes after signing in is CREDENTIAL_TOO_OLD_LOGIN_AGAIN", func(t *testing.T) {
			clock := clocktest.New(time.Now())
			_, srv := newTestEmulator(t, func(c *Config) { c.Now = clock.Now; c.RevealUnknownEmails = tt.reveal })
			up := signUp(t, srv, "ada@example.com", "correct horse")
			clock.Advance(6 * time.Minute)
			// A refresh keeps the sign-in time: a new token is not a new sign-in.
			_, r := refreshForm(t, srv, up["refreshToken"].(string))
			body := map[string]any{"idToken": r["id_token"]}
			for k, v := range tt.body {
				body[k] = v
			}
			code, out := call(t, srv, "POST", tt.path, body)
			if code != 400 || errMessage(out) != "CREDENTIAL_TOO_OLD_LOGIN_AGAIN" {
				t.Fatalf("%s = %d %q; want 400 CREDENTIAL_TOO_OLD_LOGIN_AGAIN", tt.name, code, errMessage(out))
			}
		})
		t.Run(tt.name+" four minutes after signing in is allowed", func(t *testing.T) {
			clock := clocktest.New(time.Now())
			_, srv := newTestEmulator(t, func(c *Config) { c.Now = clock.Now; c.RevealUnknownEmails = tt.reveal })
			up := signUp(t, srv, "ada@example.com", "correct horse")
			clock.Advance(4 * time.Minute)
			body := map[string]any{"idToken": up["idToken"]}
			for k, v := range tt.body {
				body[k] = v
			}
			if code, out := call(t, srv, "POST", tt.path, body); code != 200 {
				t.Fatalf("%s = %d %q; want 200", tt.name, code, errMessage(out))
			}
		})
	}
	t.Run("a display name change needs no recent sign-in", func(t *testing.T) {
		clock := clocktest.New(time.Now())
		_, srv := newTestEmulator(t, func(c *Config) { c.Now = clock.Now })
		up := signUp(t, srv, "ada@example.com", "correct horse")
		clock.Advance(30 * time.Minute)
		if code, out := call(t, srv, "POST", updatePath, map[string]any{"idToken": up["idToken"], "displayName": "Ada"}); code != 200 {
			t.Fatalf("display name change = %d %q; want 200", code, errMessage(out))
		}
	})
}

func TestAUserCannotSetTheirOwnPhoneNumber(t *testing.T) {
	e, srv := newTestEmulator(t)
	up := signUp(t, srv, "ada@example.com", "correct horse")
	code, out := call(t, srv, "POST", updatePath, map[string]any{"idToken": up["idToken"], "phoneNumber": "+15555550100"})
	if code != 400 || !strings.HasPrefix(errMessage(out), "INSUFFICIENT_PERMISSION") {
		t.Fatalf("a user setting their phone = %d %q; want 400 INSUFFICIENT_PERMISSION", code, errMessage(out))
	}
	if a, _ := e.accounts.byUID(up["localId"].(string)); a.PhoneNumber != "" {
		t.Fatalf("phone number = %q; want none", a.PhoneNumber)
	}
}

func TestFieldsAndAccountsAreBounded(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	admin := []string{"Authorization", "Bearer owner"}
	tests := []struct {
		name string
		path string
		body map[string]any
		hdr  []string
		want string
	}{
		{"an email over 255 characters is refused at sign-up", signUpPath,
			map[string]any{"email": long(250) + "@example.com", "password": "123456"}, nil, "INVALID_EMAIL"},
		{"a password over 4096 characters is refused at sign-up", signUpPath,
			map[string]any{"email": "long@example.com", "password": long(4097)}, nil, "PASSWORD_DOES_NOT_MEET_REQUIREMENTS"},
		{"a display name over 256 characters is refused", adminPath + "/accounts",
			map[string]any{"email": "long@example.com", "displayName": long(257)}, admin, "INVALID_DISPLAY_NAME"},
		{"a photo URL over 2048 bytes is refused", adminPath + "/accounts",
			map[string]any{"email": "long@example.com", "photoUrl": "https://example.com/" + long(2048)}, admin, "INVALID_PHOTO_URL"},
		{"a phone number that is not E.164 is refused", adminPath + "/accounts",
			map[string]any{"email": "long@example.com", "phoneNumber": long(5000)}, admin, "INVALID_PHONE_NUMBER"},
		{"an account beyond MaxAccounts is refused", signUpPath,
			map[string]any{"email": "third@example.com", "password": "123456"}, nil, "QUOTA_EXCEEDED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newTestEmulator(t, func(c *Config) { c.MaxAccounts = 2 })
			signUp(t, srv, "first@example.com", "123456")
			signUp(t, srv, "second@example.com", "123456")
			code, out := call(t, srv, "POST", tt.path, tt.body, tt.hdr...)
			if code != 400 || !strings.HasPrefix(errMessage(out), tt.want) {
				t.Fatalf("POST %s = %d %q; want 400 %s", tt.path, code, errMessage(out), tt.want)
			}
			if n := e.accounts.len(); n != 2 {
				t.Fatalf("%d accounts; want the 2 there were", n)
			}
		})
	}
}

func TestRepeatedFailedSignInsAreThrottled(t *testing.T) {
	for _, email := range []string{"ada@example.com", "nobody@example.com"} {
		t.Run("guessing the password of "+email+" is refused after ten failures, for ten minutes", func(t *testing.T) {
			clock := clocktest.New(time.Now())
			_, srv := newTestEmulator(t, func(c *Config) { c.Now = clock.Now })
			signUp(t, srv, "ada@example.com", "correct horse")
			signUp(t, srv, "bystander@example.com", "correct horse")
			for i := range maxFailures {
				if code, out := call(t, srv, "POST", signInPath, map[string]any{"email": email, "password": "guess"}); code != 400 || errMessage(out) != "INVALID_LOGIN_CREDENTIALS" {
					t.Fatalf("guess %d = %d %q; want 400 INVALID_LOGIN_CREDENTIALS", i+1, code, errMessage(out))
				}
			}
			code, out := call(t, srv, "POST", signInPath, map[string]any{"email": email, "password": "correct horse"})
			if code != 400 || !strings.HasPrefix(errMessage(out), "TOO_MANY_ATTEMPTS_TRY_LATER") {
				t.Fatalf("the next attempt = %d %q; want 400 TOO_MANY_ATTEMPTS_TRY_LATER, even with the right password", code, errMessage(out))
			}
			if code, _ := call(t, srv, "POST", signInPath, map[string]any{"email": "bystander@example.com", "password": "correct horse"}); code != 200 {
				t.Fatalf("another account's sign-in = %d; want 200", code)
			}
			clock.Advance(failureWindow)
			if email == "ada@example.com" {
				if code, out := call(t, srv, "POST", signInPath, map[string]any{"email": email, "password": "correct horse"}); code != 200 {
					t.Fatalf("sign-in once the window passed = %d %q; want 200", code, errMessage(out))
				}
			}
		})
	}
}

func TestAnEmailChangeThroughVerificationNeverTakesAnotherUsersEmail(t *testing.T) {
	t.Run("asking for a taken email answers as if sent, and no code exists", func(t *testing.T) {
		var box outbox
		_, srv := newTestEmulator(t, func(c *Config) { c.OnOobCode = box.add })
		signUp(t, srv, "victim@example.com", "victim-password")
		attacker := signUp(t, srv, "attacker@example.com", "attacker-password")
		code, out := call(t, srv, "POST", sendOobPath, map[string]any{"requestType": "VERIFY_AND_CHANGE_EMAIL", "idToken": attacker["idToken"], "newEmail": "VICTIM@example.com"})
		if code != 200 {
			t.Fatalf("sendOobCode to a taken email = %d %q; want 200, as for a free one (no enumeration)", code, errMessage(out))
		}
		if n := box.len(); n != 0 {
			t.Fatalf("%d codes issued; want none for a taken email", n)
		}
	})
	t.Run("a code for an email someone took meanwhile is refused when applied", func(t *testing.T) {
		var box outbox
		_, srv := newTestEmulator(t, func(c *Config) { c.OnOobCode = box.add })
		first := signUp(t, srv, "first@example.com", "first-password")
		call(t, srv, "POST", sendOobPath, map[string]any{"requestType": "VERIFY_AND_CHANGE_EMAIL", "idToken": first["idToken"], "newEmail": "wanted@example.com"})
		pending := box.last(t)
		signUp(t, srv, "Wanted@example.com", "second-password")
		code, out := call(t, srv, "POST", updatePath, map[string]any{"oobCode": pending.OobCode})
		if code != 400 || errMessage(out) != "EMAIL_EXISTS" {
			t.Fatalf("applying the code = %d %q; want 400 EMAIL_EXISTS", code, errMessage(out))
		}
	})
}
