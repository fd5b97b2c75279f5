package google

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// idClaims are the claims of a Google-signed ID token for a service account,
// as the metadata server and the token endpoint issue them: sub and azp are
// the account's numeric unique id, email is the account's.
type idClaims struct {
	Aud           string       `json:"aud"`
	Azp           string       `json:"azp"`
	Email         string       `json:"email,omitempty"`
	EmailVerified bool         `json:"email_verified,omitempty"`
	Exp           int64        `json:"exp"`
	Google        *googleClaim `json:"google,omitempty"`
	Iat           int64        `json:"iat"`
	Iss           string       `json:"iss"`
	Sub           string       `json:"sub"`
}

// googleClaim is what format=full adds on Compute Engine
// (https://cloud.google.com/compute/docs/instances/verifying-instance-identity#payload).
// Only the project is filled in: the stand-in runs on no instance, and made-up
// instance details would only mislead.
type googleClaim struct {
	ComputeEngine struct {
		ProjectID string `json:"project_id"`
	} `json:"compute_engine"`
}

// SignIDToken signs an ID token for the service account email with audience,
// issued now: what the metadata server and the token endpoint answer. It is
// exported for tests that need a token without a client library in between.
func (g *Google) SignIDToken(email, audience string) (string, error) {
	a, ok := g.accounts[email]
	if !ok {
		return "", fmt.Errorf("google: no service account %q", email)
	}
	return g.sign(a, audience, tokenShape{email: true}, g.now())
}

// SignIDTokenWith is SignIDToken with the claims changed by edit before
// they are signed: a token Google's keys verify but that Google would never
// issue (another issuer, no email, email_verified false), for tests of the
// checks that come after the signature.
func (g *Google) SignIDTokenWith(email, audience string, edit func(claims map[string]any)) (string, error) {
	a, ok := g.accounts[email]
	if !ok {
		return "", fmt.Errorf("google: no service account %q", email)
	}
	payload, err := json.Marshal(g.claims(a, audience, tokenShape{email: true}, g.now()))
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	edit(claims)
	if payload, err = json.Marshal(claims); err != nil {
		return "", err
	}
	return g.signPayload(payload)
}

// tokenShape is what a token carries beyond the standard claims: the
// metadata server's format=full adds the google claim; IAM's generateIdToken
// leaves out the email unless includeEmail is set.
type tokenShape struct {
	email, full bool
}

func (g *Google) sign(a *account, audience string, shape tokenShape, now time.Time) (string, error) {
	payload, err := json.Marshal(g.claims(a, audience, shape, now))
	if err != nil {
		return "", err
	}
	return g.signPayload(payload)
}

// claims are the ID token's claims for a, issued at now.
func (g *Google) claims(a *account, audience string, shape tokenShape, now time.Time) idClaims {
	c := idClaims{
		Aud: audience, Azp: a.uniqueID, Sub: a.uniqueID,
		Iss: Issuer, Iat: now.Unix(), Exp: now.Add(g.lifetime).Unix(),
	}
	if shape.email {
		c.Email, c.EmailVerified = a.email, true
	}
	if shape.full {
		c.Google = &googleClaim{}
		c.Google.ComputeEngine.ProjectID = g.project
	}
	return c
}

// signPayload signs payload with the current key, its kid in the header.
func (g *Google) signPayload(payload []byte) (string, error) {
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, g.state.signer.kid); err != nil {
		return "", err
	}
	if err := h.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), g.state.signer.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", fmt.Errorf("google: signing an ID token: %w", err)
	}
	return string(tok), nil
}
