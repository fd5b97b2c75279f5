package google

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
)

// Impersonation, as `gcloud auth application-default login
// --impersonate-service-account=SA` sets it up: the ADC file holds a
// person's refresh token; the library trades it for an access token at the
// token endpoint, then asks the IAM Credentials API's generateIdToken for an
// ID token of the service account, which IAM grants to holders of
// roles/iam.serviceAccountTokenCreator
// (https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateIdToken).

// iamPrefix is where the IAM Credentials API's service accounts are.
const iamPrefix = "/iamcredentials.googleapis.com/v1/projects/"

// accessTokenLifetime is an access token's life, as Google's expires_in says.
const accessTokenLifetime = 3599 * time.Second

type accessGrant struct {
	user    string
	expires time.Time
}

// refresh answers the refresh_token grant with an access token for the user.
func (g *Google) refresh(w http.ResponseWriter, r *http.Request, refreshToken string) {
	user, ok := g.state.users[refreshToken]
	if !ok {
		// Google's words for a refresh token it does not (or no longer) know.
		writeJSON(w, http.StatusBadRequest, &oauthError{"invalid_grant", "Token has been expired or revoked."})
		return
	}
	tok := "ya29." + randomToken()
	now := g.now()
	g.mu.Lock()
	for t, a := range g.access { // drop the expired, so the map stays small
		if now.After(a.expires) {
			delete(g.access, t)
		}
	}
	g.access[tok] = accessGrant{user: user, expires: now.Add(accessTokenLifetime)}
	g.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "expires_in": int(accessTokenLifetime.Seconds()),
		"scope": "https://www.googleapis.com/auth/cloud-platform", "token_type": "Bearer",
	})
}

// apiError is a Google JSON API error: {"error": {"code", "message", "status"}}.
type apiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	} `json:"error"`
}

func writeAPIError(w http.ResponseWriter, code int, status, message string) {
	var e apiError
	e.Error.Code, e.Error.Status, e.Error.Message = code, status, message
	writeJSON(w, code, &e)
}

const (
	missingCredentials = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	invalidCredentials = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)

// generateIDToken is IAM Credentials' projects.serviceAccounts.generateIdToken.
func (g *Google) generateIDToken(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("call"), ":generateIdToken")
	if !ok || r.PathValue("project") != "-" {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server.")
		return
	}
	bearer, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !hasBearer || bearer == "" {
		writeAPIError(w, http.StatusUnauthorized, "UNAUTHENTICATED", missingCredentials)
		return
	}
	g.mu.Lock()
	grant, known := g.access[bearer]
	g.mu.Unlock()
	if !known || g.now().After(grant.expires) {
		writeAPIError(w, http.StatusUnauthorized, "UNAUTHENTICATED", invalidCredentials)
		return
	}
	var req struct {
		Audience     string   `json:"audience"`
		IncludeEmail bool     `json:"includeEmail"`
		Delegates    []string `json:"delegates"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxTokenBody)).Decode(&req); err != nil {
		writeAPIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received.")
		return
	}
	a, exists := g.accounts[name]
	if !exists || len(req.Delegates) > 0 {
		// Every token creator may impersonate every account directly; a
		// delegation chain is not modelled, and Google answers an unknown
		// account with the same denial as a forbidden one.
		writeAPIError(w, http.StatusForbidden, "PERMISSION_DENIED",
			"Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource (or it may not exist).")
		return
	}
	if req.Audience == "" {
		writeAPIError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Audience cannot be empty.")
		return
	}
	tok, err := g.sign(a, req.Audience, tokenShape{email: req.IncludeEmail}, g.now())
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "INTERNAL", "signing the ID token failed")
		return
	}
	g.log.InfoContext(r.Context(), "impersonation", "user", grant.user, "serviceAccount", a.email)
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// WriteImpersonationFile writes into dir, as adc.json (0600), the ADC file
// `gcloud auth application-default login --impersonate-service-account`
// writes for user, a TokenCreator, to act as serviceAccount. The addresses in
// it are Google's: route them here with Transport.
func (g *Google) WriteImpersonationFile(dir, user, serviceAccount string) (string, error) {
	var refresh string
	for tok, u := range g.state.users {
		if u == user {
			refresh = tok
		}
	}
	if refresh == "" {
		return "", fmt.Errorf("google: %s is not a token creator", user)
	}
	if _, ok := g.accounts[serviceAccount]; !ok {
		return "", fmt.Errorf("google: no service account %q", serviceAccount)
	}
	f := map[string]any{
		"type":                              "impersonated_service_account",
		"service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/" + serviceAccount + ":generateAccessToken",
		"delegates":                         []string{},
		"source_credentials": map[string]string{
			"type": "authorized_user", "account": user,
			// gcloud writes its own OAuth client here; the stand-in checks none.
			"client_id": "stand-in.apps.googleusercontent.com", "client_secret": "not-a-secret",
			"refresh_token": refresh, "universe_domain": "googleapis.com",
		},
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("google: writing an ADC file: %w", err)
	}
	path := filepath.Join(dir, "adc.json")
	if err := certgen.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("google: writing an ADC file: %w", err)
	}
	return path, nil
}

// googleHosts are the Google API hosts the stand-in serves under
// "/<host>/<path>".
var googleHosts = map[string]bool{
	"oauth2.googleapis.com": true, "iamcredentials.googleapis.com": true,
	"www.googleapis.com": true, "accounts.google.com": true,
}

// Transport returns a RoundTripper that sends requests for Google's token,
// IAM Credentials and certs hosts to the stand-in, and every other request
// through base (nil: http.DefaultTransport). It is for clients whose Google
// endpoints are fixed in the library, as the IAM Credentials one is.
func (g *Google) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	u, _ := url.Parse(g.base) // validated in New
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Scheme != "https" || !googleHosts[r.URL.Host] {
			return base.RoundTrip(r)
		}
		r = r.Clone(r.Context())
		r.URL.Path = "/" + r.URL.Host + r.URL.Path
		r.URL.RawPath = ""
		r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, u.Host
		return base.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
