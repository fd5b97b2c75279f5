package identity

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzEndpoints are the routes whose request decoding FuzzRequestDecoding
// drives; its endpoint input picks one, modulo their number. The last one is
// a method the emulator does not have, so the router's 404 is fuzzed too.
var fuzzEndpoints = []struct{ method, path string }{
	{http.MethodPost, toolkitPrefix + "/accounts:signUp"},
	{http.MethodPost, toolkitPrefix + "/accounts:signInWithPassword"},
	{http.MethodPost, toolkitPrefix + "/accounts:lookup"},
	{http.MethodPost, toolkitPrefix + "/accounts:update"},
	{http.MethodPost, toolkitPrefix + "/accounts:delete"},
	{http.MethodPost, "/securetoken.googleapis.com/v1/token"},
	{http.MethodPost, adminPath + "/accounts"},
	{http.MethodPost, adminPath + "/accounts:lookup"},
	{http.MethodPost, adminPath + "/accounts:update"},
	{http.MethodPost, adminPath + "/accounts:delete"},
	{http.MethodGet, adminPath + "/accounts:batchGet"},
	{http.MethodPost, toolkitPrefix + "/accounts:signInWithCustomToken"},
	{http.MethodPost, toolkitPrefix + "/accounts:sendOobCode"},
	{http.MethodPost, toolkitPrefix + "/accounts:resetPassword"},
	{http.MethodPost, toolkitPrefix + "/accounts:signInWithEmailLink"},
	{http.MethodPost, adminPath + "/accounts:batchCreate"},
	{http.MethodPost, adminPath + "/accounts:batchDelete"},
	{http.MethodPost, adminPath + ":createSessionCookie"},
	{http.MethodPatch, "/identitytoolkit.googleapis.com/v2/projects/" + testProject + "/config"},
}

const toolkitPrefix = "/identitytoolkit.googleapis.com/v1"

// Placeholders a fuzz input may carry in its query or body, replaced by live
// credentials of the seeded user, so that the fuzzer reaches the code behind
// the token checks too.
const (
	placeholderIDToken = "$ID"
	placeholderRefresh = "$REFRESH"
	placeholderUID     = "$UID"
)

// fuzzState is a state dir with one user (ada@example.com, "correct horse")
// made once per fuzzing process. Every input runs on an emulator loaded
// from a copy of it: inputs never see each other's changes, and no input
// pays for generating RSA keys.
type fuzzState struct {
	files map[string][]byte
	uid   string
}

func newFuzzState(f *testing.F) fuzzState {
	f.Helper()
	dir := f.TempDir()
	e, err := New(Config{ProjectID: testProject, StateDir: dir, PasswordHashCost: minPasswordHashCost})
	if err != nil {
		f.Fatal(err)
	}
	uid, err := e.EnsureUser(f.Context(), "ada@example.com", "correct horse")
	if err != nil {
		f.Fatal(err)
	}
	st := fuzzState{files: map[string][]byte{}, uid: uid}
	for _, name := range []string{accountsFile, keysFile} {
		if st.files[name], err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			f.Fatal(err)
		}
	}
	return st
}

func (st fuzzState) emulator(t *testing.T) *Emulator {
	t.Helper()
	dir := t.TempDir()
	for name, b := range st.files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(Config{ProjectID: testProject, StateDir: dir, PasswordHashCost: minPasswordHashCost})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// emulatorState is everything a request can change: the accounts and keys
// on disk, the accounts in memory (sign-in bookkeeping never reaches disk
// by itself) and the sessions.
type emulatorState struct {
	files    map[string]string
	accounts map[string]account
	sessions map[[32]byte]session
}

func stateOf(t *testing.T, e *Emulator) emulatorState {
	t.Helper()
	s := emulatorState{files: map[string]string{}, accounts: map[string]account{}}
	for _, name := range []string{accountsFile, keysFile} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(e.accounts.path), name))
		if err != nil {
			t.Fatal(err)
		}
		s.files[name] = string(b)
	}
	e.accounts.mu.RLock()
	for id, a := range e.accounts.set.byID {
		s.accounts[id] = *a
	}
	e.accounts.mu.RUnlock()
	e.sessions.mu.RLock()
	s.sessions = maps.Clone(e.sessions.byKey)
	e.sessions.mu.RUnlock()
	return s
}

func (s emulatorState) equal(o emulatorState) bool {
	return maps.Equal(s.files, o.files) && maps.EqualFunc(s.accounts, o.accounts, func(a, b account) bool { return reflect.DeepEqual(a, b) }) &&
		maps.EqualFunc(s.sessions, o.sessions, func(a, b session) bool {
			return a.uid == b.uid && a.authTime.Equal(b.authTime) && a.issued.Equal(b.issued)
		})
}

// FuzzRequestDecoding sends arbitrary query strings, content types and
// bodies to every route that decodes a request, and checks what Google's
// APIs promise a client that sends garbage: the server never panics, never
// answers 5xx, refuses with Google's error JSON and a 4xx code, never
// accepts a body over maxBody, and a refused request changes nothing.
//
// endpoint picks one of fuzzEndpoints; admin adds the Admin SDK's
// "Bearer owner" credential; oversize pads the body with JSON whitespace
// past maxBody, which a small fuzz input cannot reach by itself.
func FuzzRequestDecoding(f *testing.F) {
	st := newFuzzState(f)
	f.Fuzz(func(t *testing.T, endpoint uint8, admin bool, query, contentType string, body []byte, oversize bool) {
		e := st.emulator(t)
		ep := fuzzEndpoints[int(endpoint)%len(fuzzEndpoints)]
		replace := func(s string) string {
			if strings.Contains(s, placeholderIDToken) {
				tok, err := e.IDTokenFor(t.Context(), st.uid, e.now())
				if err != nil {
					t.Fatal(err)
				}
				s = strings.ReplaceAll(s, placeholderIDToken, tok)
			}
			if strings.Contains(s, placeholderRefresh) {
				now := e.now()
				s = strings.ReplaceAll(s, placeholderRefresh, e.sessions.newRefreshToken(st.uid, now, now))
			}
			return strings.ReplaceAll(s, placeholderUID, st.uid)
		}
		query = replace(query)
		body = []byte(replace(string(body)))
		if oversize {
			body = append(body, bytes.Repeat([]byte(" "), maxBody+1)...)
		}

		// Built by hand, not with httptest.NewRequest, which panics on a
		// query that does not parse: the server must cope with one.
		req := &http.Request{
			Method:        ep.method,
			URL:           &url.URL{Path: ep.path, RawQuery: query},
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			Host:          "127.0.0.1:9099",
			RemoteAddr:    "127.0.0.1:40000",
			RequestURI:    ep.path + "?" + query,
		}
		req = req.WithContext(t.Context())
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if admin {
			req.Header.Set("Authorization", "Bearer owner")
		}

		before := stateOf(t, e)
		rec := httptest.NewRecorder()
		e.Handler().ServeHTTP(rec, req)
		status, got := rec.Code, rec.Body.Bytes()

		if status >= 500 {
			t.Fatalf("%s %s answered %d %s; want no 5xx for a client's input", ep.method, ep.path, status, got)
		}
		if status >= 200 && status < 300 {
			var v map[string]any
			if err := json.Unmarshal(got, &v); err != nil {
				t.Fatalf("%s %s answered %d with a body that is not a JSON object: %q", ep.method, ep.path, status, got)
			}
			if ep.method == http.MethodPost && len(body) > maxBody {
				t.Fatalf("%s %s accepted a %d-byte body; want 413 past %d bytes", ep.method, ep.path, len(body), maxBody)
			}
			return
		}
		if status < 400 {
			t.Fatalf("%s %s answered %d; want 2xx or 4xx", ep.method, ep.path, status)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("a %d came as %q; want application/json", status, ct)
		}
		var ge googleError
		if err := json.Unmarshal(got, &ge); err != nil {
			t.Fatalf("a %d is not Google's error JSON: %v: %q", status, err, got)
		}
		if ge.Error.Code != status || ge.Error.Message == "" || len(ge.Error.Errors) != 1 || ge.Error.Errors[0].Reason == "" {
			t.Fatalf("a %d came as %s; want {\"error\": {\"code\": %d, \"message\": ..., \"errors\": [one cause]}}", status, got, status)
		}
		if after := stateOf(t, e); !before.equal(after) {
			t.Fatalf("%s %s was refused with %d %q but changed the emulator's state", ep.method, ep.path, status, ge.Error.Message)
		}
	})
}
