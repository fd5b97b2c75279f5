package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/logtest"
)

const testProject = "demo-acme"

// newTestEmulator starts an emulator on loopback with the cheapest allowed
// password hash (tests measure behaviour, the benchmarks measure cost).
func newTestEmulator(t testing.TB, mod ...func(*Config)) (*Emulator, *httptest.Server) {
	t.Helper()
	// Unstarted first, so that BaseURL can name the listener's address.
	srv := httptest.NewUnstartedServer(nil)
	cfg := Config{ProjectID: testProject, StateDir: t.TempDir(), PasswordHashCost: minPasswordHashCost,
		BaseURL: "http://" + srv.Listener.Addr().String()}
	for _, m := range mod {
		m(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		srv.Close()
		t.Fatalf("New: %v", err)
	}
	srv.Config.Handler = e.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return e, srv
}

// clientOf is srv's client, or the default one for a server in another
// process (TestIdleRSS) that httptest did not start.
func clientOf(srv *httptest.Server) *http.Client {
	if c := srv.Client(); c != nil {
		return c
	}
	return http.DefaultClient
}

// call POSTs body (JSON-encoded unless it is a string) to path and decodes the reply.
func call(t testing.TB, srv *httptest.Server, method, path string, body any, hdr ...string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := clientOf(srv).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: reply is not JSON: %q", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

const (
	signUpPath = "/identitytoolkit.googleapis.com/v1/accounts:signUp?key=k"
	signInPath = "/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=k"
	lookupPath = "/identitytoolkit.googleapis.com/v1/accounts:lookup?key=k"
	updatePath = "/identitytoolkit.googleapis.com/v1/accounts:update?key=k"
	deletePath = "/identitytoolkit.googleapis.com/v1/accounts:delete?key=k"
	tokenPath  = "/securetoken.googleapis.com/v1/token?key=k"
	adminPath  = "/identitytoolkit.googleapis.com/v1/projects/" + testProject
)

func signUp(t testing.TB, srv *httptest.Server, email, pw string) map[string]any {
	t.Helper()
	code, out := call(t, srv, "POST", signUpPath, map[string]any{"email": email, "password": pw, "returnSecureToken": true})
	if code != 200 {
		t.Fatalf("signUp %s: status %d, body %v; want 200", email, code, out)
	}
	return out
}

func errMessage(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func refreshForm(t testing.TB, srv *httptest.Server, tok string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}
	resp, err := clientOf(srv).PostForm(srv.URL+tokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("refresh reply is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

func TestConfigIsValidatedNamingTheField(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"a missing project id is refused", Config{StateDir: dir}, "Config.ProjectID is required"},
		{"a project id with a slash is refused", Config{ProjectID: "a/b", StateDir: dir}, "Config.ProjectID"},
		{"a missing state dir is refused", Config{ProjectID: testProject}, "Config.StateDir is required"},
		{"a negative key grace is refused", Config{ProjectID: testProject, StateDir: dir, KeyGrace: -time.Second}, "Config.KeyGrace"},
		{"a cheap password hash is refused", Config{ProjectID: testProject, StateDir: dir, PasswordHashCost: 4}, "Config.PasswordHashCost 4"},
		{"an absurd password hash cost is refused", Config{ProjectID: testProject, StateDir: dir, PasswordHashCost: 30}, "Config.PasswordHashCost 30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) = %v; want an error containing %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestSignUpAndSignInAnswerLikeIdentityToolkit(t *testing.T) {
	_, srv := newTestEmulator(t)
	signUp(t, srv, "ada@example.com", "correct horse")

	tests := []struct {
		name   string
		path   string
		body   any
		status int
		msg    string
	}{
		{"signing up twice with one email is EMAIL_EXISTS", signUpPath,
			map[string]any{"email": "ada@example.com", "password": "another1"}, 400, "EMAIL_EXISTS"},
		{"signing up with the email in other case is EMAIL_EXISTS", signUpPath,
			map[string]any{"email": "ADA@example.com", "password": "another1"}, 400, "EMAIL_EXISTS"},
		{"a short password is WEAK_PASSWORD", signUpPath,
			map[string]any{"email": "bob@example.com", "password": "12345"}, 400, "WEAK_PASSWORD : Password should be at least 6 characters"},
		{"a sign-up without password is MISSING_PASSWORD", signUpPath,
			map[string]any{"email": "bob@example.com"}, 400, "MISSING_PASSWORD"},
		{"a sign-up with a malformed email is INVALID_EMAIL", signUpPath,
			map[string]any{"email": "not an email", "password": "123456"}, 400, "INVALID_EMAIL"},
		{"a sign-up without email is MISSING_EMAIL", signUpPath,
			map[string]any{"password": "123456"}, 400, "MISSING_EMAIL"},
		{"an anonymous sign-up is refused", signUpPath, map[string]any{}, 400, "ADMIN_ONLY_OPERATION"},
		{"a wrong password is INVALID_LOGIN_CREDENTIALS", signInPath,
			map[string]any{"email": "ada@example.com", "password": "wrong password"}, 400, "INVALID_LOGIN_CREDENTIALS"},
		{"an unknown email is INVALID_LOGIN_CREDENTIALS too", signInPath,
			map[string]any{"email": "nobody@example.com", "password": "whatever"}, 400, "INVALID_LOGIN_CREDENTIALS"},
		{"a sign-in without password is MISSING_PASSWORD", signInPath,
			map[string]any{"email": "ada@example.com"}, 400, "MISSING_PASSWORD"},
		{"a sign-in with a malformed email is INVALID_EMAIL", signInPath,
			map[string]any{"email": "ada", "password": "123456"}, 400, "INVALID_EMAIL"},
		{"lookup without an ID token is MISSING_ID_TOKEN", lookupPath, map[string]any{}, 400, "MISSING_ID_TOKEN"},
		{"lookup with garbage is INVALID_ID_TOKEN", lookupPath, map[string]any{"idToken": "a.b.c"}, 400, "INVALID_ID_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := call(t, srv, "POST", tt.path, tt.body)
			if code != tt.status || errMessage(out) != tt.msg {
				t.Fatalf("POST %s %v = %d %q; want %d %q", tt.path, tt.body, code, errMessage(out), tt.status, tt.msg)
			}
		})
	}

	t.Run("an email signs in as sign-up stored it: case folded, spaces around it trimmed", func(t *testing.T) {
		for _, email := range []string{"ADA@Example.com", "  ada@example.com ", "\tAda@example.com\n"} {
			code, out := call(t, srv, "POST", signInPath, map[string]any{"email": email, "password": "correct horse", "returnSecureToken": true})
			if code != 200 || out["email"] != "ada@example.com" {
				t.Errorf("sign-in as %q = %d %v; want 200 for ada@example.com", email, code, out)
			}
		}
	})

	t.Run("the right password signs in with tokens", func(t *testing.T) {
		code, out := call(t, srv, "POST", signInPath, map[string]any{"email": "ada@example.com", "password": "correct horse", "returnSecureToken": true})
		if code != 200 || out["idToken"] == nil || out["refreshToken"] == nil || out["expiresIn"] != "3600" || out["registered"] != true {
			t.Fatalf("sign-in = %d %v; want 200 with idToken, refreshToken, expiresIn 3600, registered", code, out)
		}
	})
}

func TestRevealUnknownEmailsAnswersTheLegacyCodes(t *testing.T) {
	_, srv := newTestEmulator(t, func(c *Config) { c.RevealUnknownEmails = true })
	signUp(t, srv, "ada@example.com", "correct horse")
	tests := []struct{ name, email, pw, want string }{
		{"an unknown email is EMAIL_NOT_FOUND", "nobody@example.com", "whatever", "EMAIL_NOT_FOUND"},
		{"a wrong password is INVALID_PASSWORD", "ada@example.com", "wrong one", "INVALID_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := call(t, srv, "POST", signInPath, map[string]any{"email": tt.email, "password": tt.pw})
			if code != 400 || errMessage(out) != tt.want {
				t.Fatalf("sign-in = %d %q; want 400 %q", code, errMessage(out), tt.want)
			}
		})
	}
}

func TestBadRequestsGetGoogleErrorsAndChangeNothing(t *testing.T) {
	e, srv := newTestEmulator(t)
	signUp(t, srv, "ada@example.com", "correct horse")
	before, err := os.ReadFile(filepath.Join(e.accounts.path))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
	}{
		{"malformed JSON is 400", "POST", signUpPath, `{"email": "x@example.com", "password":`, 400},
		{"JSON of the wrong shape is 400", "POST", signUpPath, `{"email": 42}`, 400},
		{"trailing garbage after the JSON is 400", "POST", signUpPath, `{"email":"t@example.com","password":"123456"} x`, 400},
		{"a closing bracket after the JSON is 400", "POST", signUpPath, `{"email":"t@example.com","password":"123456"}]`, 400},
		{"a good object padded with whitespace past the limit is 413", "POST", signUpPath,
			`{"email":"t@example.com","password":"123456"}` + strings.Repeat(" ", 2*maxBody), 413},
		{"an oversized body is 413", "POST", signUpPath, `{"email":"` + strings.Repeat("a", 2*maxBody) + `@example.com","password":"123456"}`, 413},
		{"an oversized refresh form is 413", "POST", tokenPath, "grant_type=refresh_token&refresh_token=" + strings.Repeat("a", 2*maxBody), 413},
		{"GET on a POST method is 405", "GET", signUpPath, nil, 405},
		{"PUT on the reset is 405", "PUT", "/emulator/v1/projects/" + testProject + "/accounts", nil, 405},
		{"an unknown route is 404", "POST", "/identitytoolkit.googleapis.com/v1/accounts:signInWithGameCenter?key=k", `{}`, 404},
		{"a client call without an API key is 403", "POST", strings.TrimSuffix(signUpPath, "?key=k"),
			map[string]any{"email": "x@example.com", "password": "123456"}, 403},
		{"a refresh without an API key is 403", "POST", strings.TrimSuffix(tokenPath, "?key=k"),
			map[string]any{"grant_type": "refresh_token", "refresh_token": "x"}, 403},
		{"an admin call without the owner credential is 401", "POST", adminPath + "/accounts", map[string]any{"email": "x@example.com"}, 401},
		{"an admin call for another project is 404", "POST", "/identitytoolkit.googleapis.com/v1/projects/other/accounts", map[string]any{"email": "x@example.com"}, 404},
		{"a reset of another project is 404", "DELETE", "/emulator/v1/projects/other/accounts", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{}
			if tt.path == tokenPath {
				hdr = []string{"Content-Type", "application/x-www-form-urlencoded"}
			}
			code, out := call(t, srv, tt.method, tt.path, tt.body, hdr...)
			if code != tt.status {
				t.Fatalf("%s %s = %d %v; want %d", tt.method, tt.path, code, out, tt.status)
			}
			errObj, _ := out["error"].(map[string]any)
			if errObj == nil || errObj["code"] != float64(tt.status) || errMessage(out) == "" {
				t.Fatalf("body %v; want Google's {\"error\": {\"code\": %d, \"message\": ...}}", out, tt.status)
			}
		})
	}
	after, err := os.ReadFile(e.accounts.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("accounts file changed after bad requests:\nbefore %s\nafter %s", before, after)
	}
	if n := e.accounts.len(); n != 1 {
		t.Fatalf("%d accounts after bad requests; want the 1 signed up", n)
	}
}

func TestCORSLetsTheSDKCallFromAnotherOrigin(t *testing.T) {
	const origin = "http://127.0.0.1:8081"
	_, srv := newTestEmulator(t, func(c *Config) { c.AllowedOrigins = []string{origin} })

	t.Run("a preflight with the SDK's headers is allowed", func(t *testing.T) {
		req, _ := http.NewRequest("OPTIONS", srv.URL+signInPath, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-client-version,x-firebase-gmpid,x-firebase-client")
		resp, err := clientOf(srv).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("preflight status %d; want 2xx", resp.StatusCode)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("Access-Control-Allow-Origin = %q; want %q", got, origin)
		}
		if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
			t.Errorf("Access-Control-Allow-Methods = %q; want POST in it", got)
		}
		allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		for _, h := range []string{"content-type", "x-client-version", "x-firebase-gmpid", "x-firebase-client", "x-firebase-appcheck"} {
			if !strings.Contains(allowed, h) {
				t.Errorf("Access-Control-Allow-Headers = %q; want %s in it", allowed, h)
			}
		}
	})

	t.Run("the actual request carries the allow-origin header, errors too", func(t *testing.T) {
		_, _ = call(t, srv, "POST", signUpPath, map[string]any{"email": "c@example.com", "password": "123456"})
		req, _ := http.NewRequest("POST", srv.URL+signInPath, strings.NewReader(`{"email":"c@example.com","password":"nope!!"}`))
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := clientOf(srv).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("status %d, Access-Control-Allow-Origin %q; want 400 and %q so the SDK can read the error",
				resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), origin)
		}
	})
}

func TestRefresh(t *testing.T) {
	e, srv := newTestEmulator(t)
	out := signUp(t, srv, "ada@example.com", "correct horse")
	uid, rt := out["localId"].(string), out["refreshToken"].(string)

	t.Run("a form-encoded refresh returns a new ID token for the same user", func(t *testing.T) {
		code, r := refreshForm(t, srv, rt)
		if code != 200 || r["id_token"] == "" || r["user_id"] != uid || r["refresh_token"] != rt || r["expires_in"] != "3600" || r["project_id"] != testProject {
			t.Fatalf("refresh = %d %v; want 200 with id_token, user_id %s, the same refresh_token, expires_in 3600", code, r, uid)
		}
	})
	t.Run("a malformed parameter in the query beside the key does not fail a good form", func(t *testing.T) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()
		code, r := call(t, srv, "POST", tokenPath+"&%zz", form, "Content-Type", "application/x-www-form-urlencoded")
		if code != 200 || r["user_id"] != uid {
			t.Fatalf("refresh = %d %v; want 200 for %s: the form is the body's, the query only carries the key", code, r, uid)
		}
	})
	t.Run("a JSON refresh works as well", func(t *testing.T) {
		code, r := call(t, srv, "POST", tokenPath, map[string]any{"grant_type": "refresh_token", "refresh_token": rt})
		if code != 200 || r["user_id"] != uid {
			t.Fatalf("refresh = %d %v; want 200 for %s", code, r, uid)
		}
	})

	tests := []struct {
		name string
		body any
		want string
	}{
		{"an unknown refresh token is INVALID_REFRESH_TOKEN", map[string]any{"grant_type": "refresh_token", "refresh_token": "AMf-nope"}, "INVALID_REFRESH_TOKEN"},
		{"a missing refresh token is MISSING_REFRESH_TOKEN", map[string]any{"grant_type": "refresh_token"}, "MISSING_REFRESH_TOKEN"},
		{"another grant type is INVALID_GRANT_TYPE", map[string]any{"grant_type": "password", "refresh_token": rt}, "INVALID_GRANT_TYPE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, r := call(t, srv, "POST", tokenPath, tt.body)
			if code != 400 || errMessage(r) != tt.want {
				t.Fatalf("refresh = %d %q; want 400 %q", code, errMessage(r), tt.want)
			}
		})
	}

	kills := []struct {
		name   string
		update map[string]any // admin accounts:update, or nil to delete
		want   string
	}{
		{"disabling the user kills their refresh tokens", map[string]any{"disableUser": true}, "INVALID_REFRESH_TOKEN"},
		{"revoking the user's tokens kills them", map[string]any{"validSince": "VALID_SINCE"}, "INVALID_REFRESH_TOKEN"},
		{"deleting the user kills their refresh tokens", nil, "INVALID_REFRESH_TOKEN"},
	}
	for i, k := range kills {
		t.Run(k.name, func(t *testing.T) {
			email := "victim" + string(rune('a'+i)) + "@example.com"
			s := signUp(t, srv, email, "123456")
			victim, vrt := s["localId"].(string), s["refreshToken"].(string)
			if code, _ := refreshForm(t, srv, vrt); code != 200 {
				t.Fatalf("refresh before the change = %d; want 200", code)
			}
			var code int
			var r map[string]any
			if k.update == nil {
				code, r = call(t, srv, "POST", adminPath+"/accounts:delete", map[string]any{"localId": victim}, "Authorization", "Bearer owner")
			} else {
				body := map[string]any{"localId": victim}
				for key, v := range k.update {
					if v == "VALID_SINCE" {
						v = e.now().Add(time.Second).Unix()
					}
					body[key] = v
				}
				code, r = call(t, srv, "POST", adminPath+"/accounts:update", body, "Authorization", "Bearer owner")
			}
			if code != 200 {
				t.Fatalf("admin change = %d %v; want 200", code, r)
			}
			code, r = refreshForm(t, srv, vrt)
			if code != 400 || errMessage(r) != k.want {
				t.Fatalf("refresh after the change = %d %q; want 400 %q", code, errMessage(r), k.want)
			}
		})
	}
}

func TestClientLookupUpdateAndDeleteUseTheIDToken(t *testing.T) {
	_, srv := newTestEmulator(t)
	out := signUp(t, srv, "ada@example.com", "correct horse")
	id := out["idToken"].(string)

	code, r := call(t, srv, "POST", lookupPath, map[string]any{"idToken": id})
	users, _ := r["users"].([]any)
	if code != 200 || len(users) != 1 {
		t.Fatalf("lookup = %d %v; want 200 with one user", code, r)
	}
	u := users[0].(map[string]any)
	if u["email"] != "ada@example.com" || u["passwordHash"] == "" || u["passwordHash"] == nil || strings.Contains(u["passwordHash"].(string), "scrypt") {
		t.Fatalf("lookup user = %v; want the email and a redacted password hash", u)
	}

	code, r = call(t, srv, "POST", updatePath, map[string]any{"idToken": id, "displayName": "Ada", "returnSecureToken": true})
	if code != 200 || r["displayName"] != "Ada" {
		t.Fatalf("update = %d %v; want 200 with displayName Ada", code, r)
	}
	code, r = call(t, srv, "POST", updatePath, map[string]any{"idToken": id, "disableUser": true})
	if code != 400 || errMessage(r) != "INSUFFICIENT_PERMISSION" {
		t.Fatalf("a user disabling themselves = %d %v; want 400 INSUFFICIENT_PERMISSION", code, r)
	}
	code, r = call(t, srv, "POST", updatePath, map[string]any{"idToken": id, "password": "new password", "returnSecureToken": true})
	if code != 200 || r["idToken"] == nil || r["refreshToken"] == nil {
		t.Fatalf("password change = %d %v; want 200 with new tokens", code, r)
	}
	if code, _ := call(t, srv, "POST", signInPath, map[string]any{"email": "ada@example.com", "password": "new password"}); code != 200 {
		t.Fatalf("sign-in with the new password = %d; want 200", code)
	}
	newID := r["idToken"].(string)
	code, r = call(t, srv, "POST", deletePath, map[string]any{"idToken": newID})
	if code != 200 {
		t.Fatalf("delete = %d %v; want 200", code, r)
	}
	code, r = call(t, srv, "POST", lookupPath, map[string]any{"idToken": newID})
	if code != 400 || errMessage(r) != "USER_NOT_FOUND" {
		t.Fatalf("lookup after delete = %d %q; want 400 USER_NOT_FOUND", code, errMessage(r))
	}
}

func TestStateSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *Config) { c.StateDir = dir }
	e1, srv1 := newTestEmulator(t, cfg)
	out := signUp(t, srv1, "ada@example.com", "correct horse")
	kid := e1.keys.currentKID()
	srv1.Close()

	e2, srv2 := newTestEmulator(t, cfg)
	if got := e2.keys.currentKID(); got != kid {
		t.Errorf("signing key after restart = %s; want the persisted %s", got, kid)
	}
	code, r := call(t, srv2, "POST", signInPath, map[string]any{"email": "ada@example.com", "password": "correct horse", "returnSecureToken": true})
	if code != 200 || r["localId"] != out["localId"] {
		t.Fatalf("sign-in after restart = %d %v; want 200 as %v", code, r, out["localId"])
	}
	code, r = call(t, srv2, "POST", lookupPath, map[string]any{"idToken": out["idToken"]})
	if code != 200 {
		t.Fatalf("lookup with a token from before the restart = %d %v; want 200", code, r)
	}
	for _, f := range []string{accountsFile, keysFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v; want 0600: it holds password hashes or private keys", f, fi.Mode().Perm())
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, accountsFile))
	if bytes.Contains(raw, []byte("correct horse")) {
		t.Errorf("accounts file contains the password in clear")
	}
}

func TestConcurrentSignUpsAreAllKept(t *testing.T) {
	e, srv := newTestEmulator(t)
	const n = 16
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			// Every email twice: exactly one of each pair must win.
			codes[i], _ = call(t, srv, "POST", signUpPath, map[string]any{
				"email": "u" + string(rune('a'+i/2)) + "@example.com", "password": "123456"})
		})
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		if c == 200 {
			ok++
		}
	}
	if ok != n/2 || e.accounts.len() != n/2 {
		t.Fatalf("%d sign-ups succeeded and %d accounts exist; want %d each (one per email)", ok, e.accounts.len(), n/2)
	}
	reloaded, notice, err := loadAccounts(filepath.Dir(e.accounts.path), time.Now(), 0)
	if err != nil || notice != nil || reloaded.len() != n/2 {
		t.Fatalf("accounts on disk: %v, %q, %d; want %d and no notice", err, notice, reloaded.len(), n/2)
	}
}

func TestEnsureUserIsIdempotent(t *testing.T) {
	e, srv := newTestEmulator(t)
	uid1, err := e.EnsureUser(t.Context(), "demo@example.com", "demo-password")
	if err != nil {
		t.Fatal(err)
	}
	uid2, err := e.EnsureUser(t.Context(), "demo@example.com", "demo-password")
	if err != nil || uid2 != uid1 {
		t.Fatalf("second EnsureUser = %q, %v; want %q", uid2, err, uid1)
	}
	uid3, err := e.EnsureUser(t.Context(), "demo@example.com", "changed-password")
	if err != nil || uid3 != uid1 {
		t.Fatalf("EnsureUser with a new password = %q, %v; want the same user %q", uid3, err, uid1)
	}
	if code, _ := call(t, srv, "POST", signInPath, map[string]any{"email": "demo@example.com", "password": "changed-password"}); code != 200 {
		t.Fatalf("sign-in with the password EnsureUser set = %d; want 200", code)
	}
	if _, err := e.EnsureUser(t.Context(), "demo@example.com", "123"); err == nil {
		t.Fatal("EnsureUser with a weak password succeeded; want an error")
	}
	if e.accounts.len() != 1 {
		t.Fatalf("%d accounts; want 1", e.accounts.len())
	}
}

func TestResetDeletesEveryAccount(t *testing.T) {
	e, srv := newTestEmulator(t)
	out := signUp(t, srv, "ada@example.com", "correct horse")
	code, r := call(t, srv, "DELETE", "/emulator/v1/projects/"+testProject+"/accounts", nil, "Authorization", "Bearer owner")
	if code != 200 || e.accounts.len() != 0 {
		t.Fatalf("reset = %d %v with %d accounts left; want 200 and none", code, r, e.accounts.len())
	}
	if code, r := refreshForm(t, srv, out["refreshToken"].(string)); code != 400 {
		t.Fatalf("refresh after reset = %d %v; want 400", code, r)
	}
}

func TestLogsNeverCarrySecrets(t *testing.T) {
	var buf logtest.Buffer
	_, srv := newTestEmulator(t, func(c *Config) { c.Logger = logging.New(&buf, slog.LevelDebug, testProject) })
	const pw, newPW, apiKey = "pw-Secret-1234", "pw-Secret-5678", "api-Key-Secret"
	up := signUp(t, srv, "ada@example.com", pw)
	call(t, srv, "POST", signInPath, map[string]any{"email": "ada@example.com", "password": "wrong-Secret"})
	_, in := call(t, srv, "POST", signInPath+"&key="+apiKey, map[string]any{"email": "ada@example.com", "password": pw, "returnSecureToken": true})
	_, ref := refreshForm(t, srv, in["refreshToken"].(string))
	_, upd := call(t, srv, "POST", updatePath, map[string]any{"idToken": ref["id_token"], "password": newPW, "returnSecureToken": true})
	call(t, srv, "POST", lookupPath, map[string]any{"idToken": "garbage.Secret.token"})
	call(t, srv, "POST", signUpPath, `{"email":"x@example.com","password":"`+pw+`"`) // malformed

	logged := buf.String()
	if !strings.Contains(logged, "accounts:signInWithPassword") || !strings.Contains(logged, `"reason":"INVALID_LOGIN_CREDENTIALS"`) {
		t.Fatalf("the log has no request lines (so this test would prove nothing):\n%s", logged)
	}
	if !strings.Contains(logged, `"httpRequest":{"requestMethod":"POST"`) || !strings.Contains(logged, `"component":"identity"`) {
		t.Errorf("the request lines are not the shared access lines (httpRequest, component identity):\n%s", logged)
	}
	secrets := map[string]string{
		"a password": pw, "a new password": newPW, "a wrong password": "wrong-Secret", "the API key": apiKey,
		"a rejected token": "garbage.Secret.token", "a private key": "PRIVATE KEY",
	}
	for _, tok := range []any{up["idToken"], up["refreshToken"], in["idToken"], in["refreshToken"], ref["id_token"], upd["idToken"], upd["refreshToken"]} {
		s, _ := tok.(string)
		if s == "" {
			t.Fatalf("a step issued no token: %v", tok)
		}
		secrets["token "+s[:8]] = s
	}
	for what, s := range secrets {
		if strings.Contains(logged, s) {
			t.Errorf("the log contains %s", what)
		}
	}
}

func TestAChangeThatCannotBeSavedChangesNothing(t *testing.T) {
	e, srv := newTestEmulator(t)
	signUp(t, srv, "ada@example.com", "correct horse")
	// A non-empty directory where the file goes makes the rename fail
	// (permissions would not stop root, which CI runs as).
	if err := os.Remove(e.accounts.path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.accounts.path, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	code, out := call(t, srv, "POST", signUpPath, map[string]any{"email": "bob@example.com", "password": "123456"})
	if code != 500 || errMessage(out) != "INTERNAL_ERROR" {
		t.Fatalf("sign-up with a broken state dir = %d %v; want 500 INTERNAL_ERROR", code, out)
	}
	if n := e.accounts.len(); n != 1 {
		t.Fatalf("%d accounts in memory; want 1: an unsaved change must not be visible", n)
	}
	if code, _ := call(t, srv, "POST", signInPath, map[string]any{"email": "bob@example.com", "password": "123456"}); code != 400 {
		t.Fatalf("sign-in as the unsaved user = %d; want 400", code)
	}
}

func TestCorruptStateIsRefusedNamingTheFile(t *testing.T) {
	for _, file := range []string{accountsFile, keysFile} {
		t.Run("a corrupt "+file+" stops New", func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, file), []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{ProjectID: testProject, StateDir: dir})
			if err == nil || !strings.Contains(err.Error(), file) {
				t.Fatalf("New = %v; want an error naming %s", err, file)
			}
		})
	}
}

// TestInterruptedWritesLeaveNoCopiesBehind plants what a write killed before
// its rename leaves beside each state file (a temp copy of password hashes
// or private keys) and checks that the emulator removes it when it starts,
// and leaves the files of others alone.
func TestInterruptedWritesLeaveNoCopiesBehind(t *testing.T) {
	dir := t.TempDir()
	e, _ := newTestEmulator(t, func(c *Config) { c.StateDir = dir })
	if _, err := e.EnsureUser(t.Context(), "ada@example.com", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	var planted []string
	for _, f := range []string{accountsFile, keysFile} {
		p := filepath.Join(dir, "."+f+".1234567.tmp")
		if err := os.WriteFile(p, []byte("half a write"), 0o600); err != nil {
			t.Fatal(err)
		}
		planted = append(planted, p)
	}
	other := filepath.Join(dir, "notes.tmp")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{ProjectID: testProject, StateDir: dir, PasswordHashCost: minPasswordHashCost}); err != nil {
		t.Fatalf("New on the state dir: %v", err)
	}
	for _, p := range planted {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there after a restart (stat: %v)", filepath.Base(p), err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("%s, not ours, was removed: %v", filepath.Base(other), err)
	}
}
