package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestHostileInputIsRefusedByTheEmulator sends the Identity Platform emulator
// oversized, malformed and smuggled requests.
func TestHostileInputIsRefusedByTheEmulator(t *testing.T) {
	h := newHostileFixture(t)
	runAttacks(t, h.tk, emulatorAttacks(h))
}

// emulatorAttacks are the rows against the Identity Platform emulator.
func emulatorAttacks(h *hostileFixture) []attack {
	// The fixture, under the names its rows use.
	st, identityHost, big, nested, signInBody, emu := h.st, h.identityHost, h.big, h.nested, h.signInBody, h.emu
	conversation, smuggle := h.conversation, h.smuggle
	return []attack{
		// ---- Identity emulator ----
		{name: "emulator: an unknown email answers INVALID_LOGIN_CREDENTIALS (no enumeration)", doc: docEnumeration,
			send:       emu("accounts:signInWithPassword", signInBody("nobody-"+randomString(6)+"@example.com", "whatever-password")),
			wantStatus: 400, wantJSON: map[string]string{"error.message": "INVALID_LOGIN_CREDENTIALS"}},
		{name: "emulator: a wrong password answers the same INVALID_LOGIN_CREDENTIALS", doc: docEnumeration,
			send:       emu("accounts:signInWithPassword", signInBody(env.email, "wrong-"+randomString(6))),
			wantStatus: 400, wantJSON: map[string]string{"error.message": "INVALID_LOGIN_CREDENTIALS"}},
		{name: "emulator: a body over 64 KiB is refused", doc: docEmulatorBody,
			send:       emu("accounts:signInWithPassword", signInBody(env.email, strings.Repeat("p", 70<<10))),
			wantStatus: 413, wantJSON: map[string]string{"error.message": "Request payload size exceeds the limit: 65536 bytes.", "error.status": "INVALID_ARGUMENT"}},
		{name: "emulator: a JSON bomb nested 20,000 deep is refused", doc: docEmulatorBody,
			send:       emu("accounts:signInWithPassword", `{"email":`+nested(20000)+`}`),
			wantStatus: 400, wantJSON: map[string]string{"error.status": "INVALID_ARGUMENT"}},
		{name: "emulator: trailing data after the JSON object is refused", doc: docEmulatorBody,
			send:       emu("accounts:signInWithPassword", signInBody(env.email, "x")+`{"email":"other@example.com"}`),
			wantStatus: 400, wantJSON: map[string]string{"error.message": "Invalid JSON payload received. trailing data after the JSON object"}},
		{name: "emulator: an email with CRLF is not a valid email", doc: docEmulatorBody,
			send:       emu("accounts:signInWithPassword", signInBody("a@example.com\r\nBcc: b@example.com", "x")),
			wantStatus: 400, wantJSON: map[string]string{"error.message": "INVALID_EMAIL"}},
		{name: "emulator: a 128 KB header exceeds its header limit", doc: docGoHeaders,
			send: func(t *testing.T) (exchange, error) {
				return do(t, http.MethodGet, st.IdentityURL+"/", http.Header{"X-Big": {big}}, "")
			}, wantStatus: 431, wantBody: body431},
		{name: "emulator: a request smuggled after a CL+TE body is never answered", doc: docSmuggling,
			sendSeq: conversation(identityHost, false, fmt.Sprintf(strings.NewReplacer(
				"POST /api/healthz", "POST /identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=k",
				"GET /api/secure.json", "GET /service_accounts/v1/jwk/securetoken@system.gserviceaccount.com").Replace(clTE), identityHost, identityHost)),
			wantSeq: []int{400}},
		{name: "emulator: two different Content-Lengths are refused", doc: docSmuggling,
			send:       smuggle(identityHost, false, fmt.Sprintf(strings.Replace(clCL, "/api/healthz", "/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=k", 1), "x")),
			wantStatus: 400},
	}
}

// TestSignInErrorsDoNotRevealWhichEmailsHaveAccounts compares the emulator's
// whole answers for an unknown email and a wrong password: any difference
// (status, body, a header) would let a caller probe for accounts.
func TestSignInErrorsDoNotRevealWhichEmailsHaveAccounts(t *testing.T) {
	st := requireLocal(t, "the local emulator's answers are compared byte for byte")
	email, _ := requireUser(t)
	t.Log("follows", docEnumeration)
	signIn := func(email, password string) exchange {
		t.Helper()
		got, err := do(t, http.MethodPost, st.IdentityURL+"/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=emulator-api-key",
			http.Header{"Content-Type": {"application/json"}},
			mustJSON(t, map[string]any{"email": email, "password": password, "returnSecureToken": true}))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	unknown := signIn("nobody-"+randomString(6)+"@example.com", "some-password-1")
	wrong := signIn(email, "some-password-1")
	if unknown.status != http.StatusBadRequest || jsonAt(unknown.body, "error.message") != "INVALID_LOGIN_CREDENTIALS" {
		t.Fatalf("unknown email answered %v; want 400 INVALID_LOGIN_CREDENTIALS", unknown)
	}
	if unknown.status != wrong.status || unknown.body != wrong.body {
		t.Errorf("the answers differ:\nunknown email:  %v\nwrong password: %v", unknown, wrong)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "Www-Authenticate", "Set-Cookie"} {
		if unknown.header.Get(h) != wrong.header.Get(h) {
			t.Errorf("header %s differs: unknown email %q, wrong password %q", h, unknown.header.Get(h), wrong.header.Get(h))
		}
	}
}
