package google

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// JWTBearerGrant is the grant type of a service-account assertion (RFC 7523 §2.1).
const JWTBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

const (
	// maxTokenBody bounds a token request: an assertion is about 1 KB.
	maxTokenBody = 64 << 10
	// maxAssertionLife is Google's limit: "Token must be a short-lived token (60 minutes)".
	maxAssertionLife = time.Hour
	// clockSkew is how far iat may be ahead of our clock, and exp behind it.
	// Google does not publish its allowance; a minute absorbs loopback races.
	clockSkew = time.Minute
)

// oauthError is an RFC 6749 §5.2 error answer, in the words Google's token
// endpoint uses. Every refusal of an assertion is 400 invalid_grant, as
// Google answers it, with error_description saying which check failed.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

// Google's error_description strings, as its token endpoint answers them
// (quoted in googleapis/google-api-nodejs-client#2808,
// googleapis/google-api-php-client#1501, requests/requests-oauthlib#247,
// googleapis/google-cloud-php#3622, natelindev/tsdav#130 and
// oneduo/laravel-recaptcha-enterprise#10).
var (
	errBadSignature = &oauthError{"invalid_grant", "Invalid JWT Signature."}
	errTimeframe    = &oauthError{"invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. " +
		"Check your iat and exp values and use a clock with skew to account for clock differences between systems."}
	errNoAccount = &oauthError{"invalid_grant", "Invalid grant: account not found"}
	errNoTarget  = &oauthError{"invalid_scope", "Invalid OAuth scope or ID token audience provided."}
)

func errAudience(want string) *oauthError {
	return &oauthError{"invalid_grant", "Invalid JWT: Failed audience check. The right audience is " + want}
}

// RefreshTokenGrant is the grant type of a user's refresh token (RFC 6749 §6).
const RefreshTokenGrant = "refresh_token"

// tokenRequest is a decoded token request.
type tokenRequest struct {
	grantType    string
	assertion    string // for JWTBearerGrant
	refreshToken string // for RefreshTokenGrant
}

// decodeTokenRequest decodes a token request body: a form (RFC 6749 §4.1.3,
// RFC 7523 §2.1) in which no parameter appears twice (RFC 6749 §3.2), with
// grant_type jwt-bearer and an assertion, or refresh_token and a refresh token.
func decodeTokenRequest(contentType string, body []byte) (tokenRequest, *oauthError) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return tokenRequest{}, &oauthError{"invalid_request", "Content-Type must be application/x-www-form-urlencoded"}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return tokenRequest{}, &oauthError{"invalid_request", "Malformed form body"}
	}
	for name, vs := range form {
		if len(vs) > 1 {
			return tokenRequest{}, &oauthError{"invalid_request", "Duplicate parameter: " + name}
		}
	}
	req := tokenRequest{grantType: form.Get("grant_type"), assertion: form.Get("assertion"), refreshToken: form.Get("refresh_token")}
	switch {
	case req.grantType == JWTBearerGrant && req.assertion == "":
		return tokenRequest{}, &oauthError{"invalid_request", "Missing required parameter: assertion"}
	case req.grantType == RefreshTokenGrant && req.refreshToken == "":
		return tokenRequest{}, &oauthError{"invalid_request", "Missing required parameter: refresh_token"}
	case req.grantType != JWTBearerGrant && req.grantType != RefreshTokenGrant:
		// The stand-in speaks the two grants the Google auth libraries use
		// to get tokens for workloads: a service account's assertion, and
		// a user's refresh token to impersonate one.
		return tokenRequest{}, &oauthError{"unsupported_grant_type", "Invalid grant_type: " + req.grantType}
	}
	return req, nil
}

// assertionClaims are the claims the token endpoint reads from an assertion.
type assertionClaims struct {
	Iss            string          `json:"iss"`
	Aud            json.RawMessage `json:"aud"` // a string, or an array of one
	Iat            int64           `json:"iat"`
	Exp            int64           `json:"exp"`
	TargetAudience string          `json:"target_audience"`
}

func (c assertionClaims) audience() (string, bool) {
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		return one, true
	}
	var many []string
	if json.Unmarshal(c.Aud, &many) == nil && len(many) == 1 {
		return many[0], true
	}
	return "", false
}

// exchange checks an assertion as Google does — its account, its signature
// by that account's key, its audience and timeframe — and signs an ID token
// for its target_audience.
func (g *Google) exchange(assertion string, now time.Time) (string, *oauthError) {
	msg, err := jws.Parse([]byte(assertion), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return "", errBadSignature
	}
	var c assertionClaims
	if err := json.Unmarshal(msg.Payload(), &c); err != nil {
		return "", &oauthError{"invalid_grant", "Invalid JWT: the claim set is not a JSON object"}
	}
	a, ok := g.accounts[c.Iss]
	if !ok {
		return "", errNoAccount
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	alg, _ := hdr.Algorithm()
	if alg != jwa.RS256() {
		return "", errBadSignature
	}
	if kid, ok := hdr.KeyID(); ok && kid != a.keyID {
		return "", errBadSignature // not a key of this account
	}
	if _, err := jws.Verify([]byte(assertion), jws.WithKey(jwa.RS256(), &a.priv.PublicKey)); err != nil {
		return "", errBadSignature
	}
	if aud, ok := c.audience(); !ok || aud != g.TokenURL() {
		return "", errAudience(g.TokenURL())
	}
	iat, exp := time.Unix(c.Iat, 0), time.Unix(c.Exp, 0)
	if c.Iat == 0 || c.Exp == 0 || !exp.After(iat) || exp.Sub(iat) > maxAssertionLife ||
		iat.After(now.Add(clockSkew)) || exp.Before(now.Add(-clockSkew)) {
		return "", errTimeframe
	}
	if c.TargetAudience == "" {
		// A scope request would get an access token from Google; the
		// stand-in issues ID tokens only.
		return "", errNoTarget
	}
	tok, err := g.sign(a, c.TargetAudience, tokenShape{email: true}, now)
	if err != nil {
		return "", &oauthError{"internal_failure", "signing the ID token failed"}
	}
	return tok, nil
}

// OAuthHandler serves the token endpoint, the JWKS, the OpenID discovery
// document and IAM Credentials' generateIdToken, each at "/<Google host>/<path>"
// (TokenPath, CertsPath, DiscoveryPath and under iamPrefix).
func (g *Google) OAuthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TokenPath, g.token)
	mux.HandleFunc("GET "+CertsPath, g.certs)
	mux.HandleFunc("GET "+DiscoveryPath, g.discovery)
	mux.HandleFunc("POST "+iamPrefix+"{project}/serviceAccounts/{call}", g.generateIDToken)
	return mux
}

func (g *Google) token(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, &oauthError{"invalid_request", "Request body too large"})
			return
		}
		writeJSON(w, http.StatusBadRequest, &oauthError{"invalid_request", "Unreadable request body"})
		return
	}
	req, oerr := decodeTokenRequest(r.Header.Get("Content-Type"), body)
	if oerr == nil && req.grantType == RefreshTokenGrant {
		g.refresh(w, r, req.refreshToken)
		return
	}
	var tok string
	if oerr == nil {
		tok, oerr = g.exchange(req.assertion, g.now())
	}
	// The reason is logged (it names a check, never the assertion itself).
	if oerr != nil {
		g.log.InfoContext(r.Context(), "token request refused", "error", oerr.Code, "reason", oerr.Description)
		status := http.StatusBadRequest
		if oerr.Code == "internal_failure" {
			status = http.StatusInternalServerError
		}
		writeJSON(w, status, oerr)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		IDToken string `json:"id_token"`
	}{tok})
}

// certs publishes the signing key as Google's /oauth2/v3/certs does: a JWKS
// with kid, alg, use, n and e, cacheable for an hour (idtoken.Validator and
// Envoy honour max-age).
func (g *Google) certs(w http.ResponseWriter, r *http.Request) {
	set := jwk.NewSet()
	if err := set.AddKey(g.state.signer.pub); err != nil {
		writeJSON(w, http.StatusInternalServerError, &oauthError{"internal_failure", err.Error()})
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600, must-revalidate, no-transform")
	writeJSON(w, http.StatusOK, set)
}

// discovery is the part of https://accounts.google.com/.well-known/openid-configuration
// a verifier reads: the issuer and where its keys are.
func (g *Google) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                Issuer,
		"jwks_uri":                              g.CertsURL(),
		"token_endpoint":                        g.TokenURL(),
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"subject_types_supported":               []string{"public"},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, fmt.Sprintf("encoding the answer: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
