package google

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzTokenRequest sends arbitrary bodies and content types to the token
// endpoint. Whatever comes, the answer is an RFC 6749 §5.2 error in JSON with
// one of the codes Google uses, never a token (nothing here can forge an
// account's RSA signature or guess a refresh token) and never a crash. The committed corpus, in
// testdata/fuzz/FuzzTokenRequest, holds the shapes worth keeping: forms with
// repeated, missing and percent-broken parameters, JWS-looking assertions
// with unusual headers, and bodies of other types.
func FuzzTokenRequest(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", []byte("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c"))
	f.Add("application/x-www-form-urlencoded; charset=utf-8", []byte("grant_type=client_credentials"))
	f.Add("application/x-www-form-urlencoded", []byte("grant_type=refresh_token&refresh_token=1%2F%2Fguess&client_id=x"))
	f.Add("application/json", []byte(`{"grant_type":"urn:ietf:params:oauth:grant-type:jwt-bearer"}`))

	now := time.Unix(1_800_000_000, 0)
	g, err := New(Config{
		ProjectID: project, StateDir: f.TempDir(), URL: "http://127.0.0.1:1",
		ServiceAccounts: []string{reporter}, Now: func() time.Time { return now },
	})
	if err != nil {
		f.Fatal(err)
	}
	h := g.OAuthHandler()
	codes := map[string]bool{"invalid_request": true, "unsupported_grant_type": true, "invalid_grant": true, "invalid_scope": true}

	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, TokenPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for %q %q, want 400 or 413; body %s", rec.Code, contentType, body, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Fatalf("Content-Type %q, want JSON", ct)
		}
		var e oauthError
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !codes[e.Code] || e.Description == "" {
			t.Fatalf("body %s is not a Google OAuth error (%v)", rec.Body, err)
		}

		// The decoder alone: what it accepts is a jwt-bearer request with
		// an assertion or a refresh_token one with a refresh token; what it
		// refuses, it refuses with a known code.
		tr, oerr := decodeTokenRequest(contentType, body)
		jwtOK := tr.grantType == JWTBearerGrant && tr.assertion != ""
		refreshOK := tr.grantType == RefreshTokenGrant && tr.refreshToken != ""
		if oerr == nil && !jwtOK && !refreshOK {
			t.Fatalf("decoded %+v from %q without refusing it", tr, body)
		}
		if oerr != nil && !codes[oerr.Code] {
			t.Fatalf("decoder refused with unknown code %q", oerr.Code)
		}
	})
}
