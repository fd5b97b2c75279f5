package google

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gauth "cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/credentials/idtoken"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	project  = "demo-acme"
	reporter = "reporter@demo-acme.iam.gserviceaccount.com"
	other    = "other@demo-acme.iam.gserviceaccount.com"
	audience = "https://api.internal.example"
)

// standIn serves a stand-in on a loopback port for the test; now may be nil.
func standIn(t testing.TB, stateDir string, now func() time.Time, accounts ...string) (*Google, *httptest.Server) {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	if len(accounts) == 0 {
		accounts = []string{reporter, other}
	}
	srv := httptest.NewUnstartedServer(nil)
	g, err := New(Config{
		ProjectID: project, StateDir: stateDir, URL: "http://" + srv.Listener.Addr().String(),
		ServiceAccounts: accounts, Now: now,
	})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	srv.Config.Handler = g.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return g, srv
}

func validator(t *testing.T, g *Google) *idtoken.Validator {
	t.Helper()
	v, err := idtoken.NewValidator(&idtoken.ValidatorOptions{RS256CertsURL: g.CertsURL()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkGoogleShape checks the claims every token of the stand-in has, as
// Google's: issuer, numeric sub and azp, email, one hour of life, a kid.
func checkGoogleShape(t *testing.T, g *Google, p *idtoken.Payload, email, aud string) {
	t.Helper()
	uid, _ := g.UniqueID(email)
	if p.Issuer != Issuer || p.Audience != aud || p.Subject != uid {
		t.Errorf("iss, aud, sub = %q, %q, %q; want %q, %q, %q", p.Issuer, p.Audience, p.Subject, Issuer, aud, uid)
	}
	if len(uid) != 21 || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("sub %q is not a 21-digit unique id", uid)
	}
	if p.Claims["azp"] != uid || p.Claims["email"] != email || p.Claims["email_verified"] != true {
		t.Errorf("azp, email, email_verified = %v, %v, %v; want %s, %s, true",
			p.Claims["azp"], p.Claims["email"], p.Claims["email_verified"], uid, email)
	}
	if p.Expires-p.IssuedAt != 3600 {
		t.Errorf("exp-iat = %d, want 3600", p.Expires-p.IssuedAt)
	}
}

func TestTheUnmodifiedLibraryGetsValidTokensFromTheMetadataServer(t *testing.T) {
	g, srv := standIn(t, "", nil)
	// The library reads only the environment for this; see package metadata.
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(srv.URL, "http://"))
	v := validator(t, g)
	for _, tc := range []struct {
		name   string
		format idtoken.ComputeTokenFormat
		full   bool
	}{
		{"by default the token is in the full format and names the project", idtoken.ComputeTokenFormatDefault, true},
		{"a standard token has no google claim", idtoken.ComputeTokenFormatStandard, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := idtoken.NewCredentials(&idtoken.Options{Audience: audience, ComputeTokenFormat: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := creds.Token(t.Context())
			if err != nil {
				t.Fatalf("getting a token from the metadata server: %v", err)
			}
			p, err := v.Validate(t.Context(), tok.Value, audience)
			if err != nil {
				t.Fatalf("the validator refused the metadata server's token: %v", err)
			}
			checkGoogleShape(t, g, p, reporter, audience)
			_, hasGoogle := p.Claims["google"]
			if hasGoogle != tc.full {
				t.Errorf("google claim present = %v, want %v (claims %v)", hasGoogle, tc.full, p.Claims)
			}
			if pid, err := creds.ProjectID(t.Context()); err != nil || pid != project {
				t.Errorf("project id = %q, %v; want %q", pid, err, project)
			}
		})
	}
}

func TestTheUnmodifiedLibraryExchangesAKeyFileForValidTokens(t *testing.T) {
	g, _ := standIn(t, "", nil)
	v := validator(t, g)
	for _, email := range []string{reporter, other} {
		path, err := g.WriteKeyFile(t.TempDir(), email)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file %s: mode %v, %v; want 0600", path, fi.Mode().Perm(), err)
		}
		for _, tc := range []struct {
			name string
			new  func() (*gauth.Credentials, error)
		}{
			{"as Application Default Credentials", func() (*gauth.Credentials, error) {
				//lint:ignore SA1019 the ADC path is what GOOGLE_APPLICATION_CREDENTIALS takes; the file is ours.
				return idtoken.NewCredentials(&idtoken.Options{Audience: audience, CredentialsFile: path})
			}},
			{"loaded as a service-account file", func() (*gauth.Credentials, error) {
				return idtoken.NewCredentialsFromFile(credentials.ServiceAccount, path, &idtoken.Options{Audience: audience})
			}},
		} {
			t.Run(email+" "+tc.name, func(t *testing.T) {
				creds, err := tc.new()
				if err != nil {
					t.Fatal(err)
				}
				tok, err := creds.Token(t.Context())
				if err != nil {
					t.Fatalf("exchanging the key file for a token: %v", err)
				}
				p, err := v.Validate(t.Context(), tok.Value, audience)
				if err != nil {
					t.Fatalf("the validator refused the token endpoint's token: %v", err)
				}
				checkGoogleShape(t, g, p, email, audience)
			})
		}
	}
}

func TestTheValidatorFindsTheCertsAtGooglesAddressThroughTheTransport(t *testing.T) {
	// Without RS256CertsURL the validator fetches
	// https://www.googleapis.com/oauth2/v3/certs; its HTTP client's
	// transport can route that to the stand-in instead.
	g, _ := standIn(t, "", nil)
	v, err := idtoken.NewValidator(&idtoken.ValidatorOptions{Client: &http.Client{Transport: g.Transport(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := g.SignIDToken(reporter, audience)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(t.Context(), tok, audience); err != nil {
		t.Errorf("the validator with the stand-in's transport refused its token: %v", err)
	}
}

func TestTheValidatorRefusesTokensItShouldNot(t *testing.T) {
	now := time.Now()
	g, _ := standIn(t, "", func() time.Time { return now })
	stale, _ := standIn(t, "", func() time.Time { return now.Add(-2 * time.Hour) })
	foreign, _ := standIn(t, "", nil)
	v := validator(t, g)
	sign := func(g *Google, aud string) string {
		tok, err := g.SignIDToken(reporter, aud)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name, token, want string
	}{
		{"a token for another audience is refused", sign(g, "https://elsewhere.example"), "audience provided does not match"},
		{"an expired token is refused", sign(stale, audience), "token expired"},
		{"a token signed by another key set is refused", sign(foreign, audience), "could not find matching cert keyId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Validate(t.Context(), tc.token, audience)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// assertion signs claims as the library's 2LO flow does, with key and kid.
func assertion(t *testing.T, key *rsa.PrivateKey, kid string, alg jwa.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if kid != "" {
		h.Set(jws.KeyIDKey, kid)
	}
	var k any = key
	if alg == jwa.HS256() {
		k = []byte("a shared secret nobody should accept")
	}
	tok, err := jws.Sign(payload, jws.WithKey(alg, k, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func postForm(t *testing.T, url, contentType, body string) (int, string) {
	t.Helper()
	res, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestTheTokenEndpointRefusesBadRequestsAsGoogleDoes(t *testing.T) {
	now := time.Now()
	g, _ := standIn(t, "", func() time.Time { return now })
	acct := g.accounts[reporter]
	foreignKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": reporter, "aud": g.TokenURL(), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"target_audience": audience,
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	form := func(a string) string {
		return url.Values{"grant_type": {JWTBearerGrant}, "assertion": {a}}.Encode()
	}
	const formType = "application/x-www-form-urlencoded"
	bad := func(code, desc string) string {
		b, _ := json.MarshalIndent(oauthError{code, desc}, "", "  ")
		return string(b) + "\n"
	}
	signature := bad("invalid_grant", "Invalid JWT Signature.")
	timeframe := bad("invalid_grant", errTimeframe.Description)

	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		want                    string
	}{
		{"an assertion signed by a foreign key is refused", formType,
			form(assertion(t, foreignKey, acct.keyID, jwa.RS256(), claims(nil))), 400, signature},
		{"an assertion naming another key of the account is refused", formType,
			form(assertion(t, acct.priv, "0123456789abcdef0123456789abcdef01234567", jwa.RS256(), claims(nil))), 400, signature},
		{"an HMAC assertion is refused", formType,
			form(assertion(t, nil, acct.keyID, jwa.HS256(), claims(nil))), 400, signature},
		{"an assertion that is not a JWS is refused", formType, form("not.a.jwt"), 400, signature},
		{"an assertion for an account that does not exist is refused", formType,
			form(assertion(t, acct.priv, acct.keyID, jwa.RS256(), claims(func(c map[string]any) { c["iss"] = "gone@demo-acme.iam.gserviceaccount.com" }))),
			400, bad("invalid_grant", "Invalid grant: account not found")},
		{"an assertion for Google's own token URL is refused", formType,
			form(assertion(t, acct.priv, acct.keyID, jwa.RS256(), claims(func(c map[string]any) { c["aud"] = GoogleTokenURL }))),
			400, bad("invalid_grant", "Invalid JWT: Failed audience check. The right audience is "+g.TokenURL())},
		{"an expired assertion is refused", formType,
			form(assertion(t, acct.priv, acct.keyID, jwa.RS256(), claims(func(c map[string]any) {
				c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
			}))), 400, timeframe},
		{"an assertion issued in the future is refused", formType,
			form(assertion(t, acct.priv, acct.keyID, jwa.RS256(), claims(func(c map[string]any) {
				c["iat"], c["exp"] = now.Add(time.Hour).Unix(), now.Add(2*time.Hour).Unix()
			}))), 400, timeframe},
		{"an assertion living over an hour is refused", formType,
			form(assertion(t, acct.priv, acct.keyID, jwa.RS256(), claims(func(c map[string]any) { c["exp"] = now.Add(2 * time.Hour).Unix() }))),
			400, timeframe},
		{"an assertion without target_audience is refused", formType,
			form(assertion(t, acct.priv, acct.keyID, jwa.RS256(), claims(func(c map[string]any) { delete(c, "target_audience") }))),
			400, bad("invalid_scope", "Invalid OAuth scope or ID token audience provided.")},
		{"another grant type is refused", formType, "grant_type=client_credentials",
			400, bad("unsupported_grant_type", "Invalid grant_type: client_credentials")},
		{"a request without grant type is refused", formType, "",
			400, bad("unsupported_grant_type", "Invalid grant_type: ")},
		{"a request without assertion is refused", formType, "grant_type=" + url.QueryEscape(JWTBearerGrant),
			400, bad("invalid_request", "Missing required parameter: assertion")},
		{"a repeated parameter is refused", formType, form("a") + "&assertion=b",
			400, bad("invalid_request", "Duplicate parameter: assertion")},
		{"a JSON body is refused", "application/json", `{"grant_type":"x"}`,
			400, bad("invalid_request", "Content-Type must be application/x-www-form-urlencoded")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postForm(t, g.TokenURL(), tc.contentType, tc.body)
			if status != tc.status || body != tc.want {
				t.Errorf("got %d %s\nwant %d %s", status, body, tc.status, tc.want)
			}
		})
	}

	t.Run("a well-formed assertion gets an ID token", func(t *testing.T) {
		status, body := postForm(t, g.TokenURL(), formType, form(assertion(t, acct.priv, acct.keyID, jwa.RS256(), claims(nil))))
		var got struct {
			IDToken string `json:"id_token"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &got) != nil || got.IDToken == "" {
			t.Fatalf("got %d %s, want 200 and an id_token", status, body)
		}
		if _, err := validator(t, g).Validate(t.Context(), got.IDToken, audience); err != nil {
			t.Errorf("the validator refused the token: %v", err)
		}
	})
}

func TestTheLibraryReportsGoogleErrorsFromTheTokenEndpoint(t *testing.T) {
	g, _ := standIn(t, "", nil)
	path, err := g.WriteKeyFile(t.TempDir(), reporter)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(foreign)
	forged := rewriteKeyFile(t, path, func(f *keyFile) {
		f.PrivateKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	wrongAud := rewriteKeyFile(t, path, func(f *keyFile) { f.TokenURI += "?elsewhere" })
	for _, tc := range []struct {
		name, file, want string
	}{
		{"a key file holding a foreign key gets Invalid JWT Signature", forged, `"error_description": "Invalid JWT Signature."`},
		{"a key file whose token_uri is not the endpoint's gets the audience check", wrongAud, "Failed audience check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := idtoken.NewCredentialsFromFile(credentials.ServiceAccount, tc.file, &idtoken.Options{Audience: audience})
			if err != nil {
				t.Fatal(err)
			}
			_, err = creds.Token(t.Context())
			var ae *gauth.Error
			if !errors.As(err, &ae) || ae.Response.StatusCode != 400 || !strings.Contains(string(ae.Body), tc.want) {
				t.Fatalf("got %v, want a 400 *auth.Error whose body has %s", err, tc.want)
			}
		})
	}
}

func rewriteKeyFile(t *testing.T, path string, edit func(*keyFile)) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	edit(&f)
	out, _ := json.Marshal(f)
	p := filepath.Join(t.TempDir(), "edited.json")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTheMetadataServerAnswersAsGCEDoes(t *testing.T) {
	g, srv := standIn(t, "", nil)
	get := func(path string, header bool) (*http.Response, string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+path, nil)
		if header {
			req.Header.Set("Metadata-Flavor", "Google")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	const identity = "/computeMetadata/v1/instance/service-accounts/default/identity?audience=" + audience
	for _, tc := range []struct {
		name, path string
		header     bool
		status     int
		body       string // exact for values, contained for error pages
	}{
		{"a request without Metadata-Flavor is refused", identity, false, 403,
			"Your client does not have permission to get URL <code>/computeMetadata/v1/instance/service-accounts/default/identity</code> from this server. Missing Metadata-Flavor:Google header."},
		{"the project id needs the header too", "/computeMetadata/v1/project/project-id", false, 403, "Missing Metadata-Flavor:Google header."},
		{"the project id is the project's", "/computeMetadata/v1/project/project-id", true, 200, project},
		{"the default account's email is the first account", "/computeMetadata/v1/instance/service-accounts/default/email", true, 200, reporter},
		{"the default account answers by its email too", "/computeMetadata/v1/instance/service-accounts/" + reporter + "/email", true, 200, reporter},
		{"an account not attached to the instance is not found", "/computeMetadata/v1/instance/service-accounts/" + other + "/email", true, 404, "not found"},
		{"an identity request without audience is refused", "/computeMetadata/v1/instance/service-accounts/default/identity", true, 400, "non-empty audience parameter required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := get(tc.path, tc.header)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", res.StatusCode, tc.status, body)
			}
			if res.Header.Get("Metadata-Flavor") != "Google" {
				t.Errorf("Metadata-Flavor = %q, want Google on every answer", res.Header.Get("Metadata-Flavor"))
			}
			if tc.status == 200 && body != tc.body || tc.status != 200 && !strings.Contains(body, tc.body) {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if tc.status != 200 && res.Header.Get("Content-Type") != "text/html; charset=UTF-8" {
				t.Errorf("error page Content-Type %q, want text/html; charset=UTF-8", res.Header.Get("Content-Type"))
			}
		})
	}
	t.Run("the identity is a token for the audience", func(t *testing.T) {
		res, body := get(identity+"&format=full", true)
		if res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
		p, err := validator(t, g).Validate(t.Context(), body, audience)
		if err != nil {
			t.Fatal(err)
		}
		checkGoogleShape(t, g, p, reporter, audience)
	})
}

func TestStatePersistsAndDroppedAccountsLoseTheirKeys(t *testing.T) {
	dir := t.TempDir()
	g1, _ := standIn(t, dir, nil)
	path, err := g1.WriteKeyFile(t.TempDir(), other)
	if err != nil {
		t.Fatal(err)
	}
	tok1, _ := g1.SignIDToken(reporter, audience)

	t.Run("a restart keeps unique ids and the signing key", func(t *testing.T) {
		g2, _ := standIn(t, dir, nil)
		for _, email := range []string{reporter, other} {
			a, _ := g1.UniqueID(email)
			b, _ := g2.UniqueID(email)
			if a != b {
				t.Errorf("unique id of %s changed across a restart: %s, then %s", email, a, b)
			}
		}
		if _, err := validator(t, g2).Validate(t.Context(), tok1, audience); err != nil {
			t.Errorf("a token signed before the restart no longer verifies: %v", err)
		}
	})
	t.Run("an account no longer configured is not found", func(t *testing.T) {
		g3, _ := standIn(t, dir, nil, reporter)
		b, _ := os.ReadFile(path)
		var f keyFile
		json.Unmarshal(b, &f)
		f.TokenURI = g3.TokenURL()
		creds, err := idtoken.NewCredentialsFromFile(credentials.ServiceAccount, rewriteKeyFile(t, path, func(k *keyFile) { *k = f }),
			&idtoken.Options{Audience: audience})
		if err != nil {
			t.Fatal(err)
		}
		_, err = creds.Token(t.Context())
		if err == nil || !strings.Contains(err.Error(), "Invalid grant: account not found") {
			t.Errorf("got %v, want Invalid grant: account not found", err)
		}
	})
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := New(Config{URL: "127.0.0.1:1", ServiceAccounts: []string{"nobody", "x@y", "x@y"}})
	for _, want := range []string{"Config.ProjectID", "Config.StateDir", "Config.URL", `"nobody" is not an email`, `"x@y" is listed twice`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v; want it to mention %s", err, want)
		}
	}
}
