package backend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	gidtoken "cloud.google.com/go/auth/credentials/idtoken"

	"github.com/acme/cloudrun-istio-gke/internal/tokencache"
)

// GoogleIssuer is the iss of the Google-signed ID tokens workloads call the
// API with, the issuer of istio/'s second jwtRule. Google still issues the
// legacy "accounts.google.com" in places
// (https://developers.google.com/identity/openid-connect/reference, issuer);
// the gateway's rule names only the modern value, so the backend takes only it.
const GoogleIssuer = "https://accounts.google.com"

// machineCacheSize bounds the verified machine tokens kept: a workload reuses
// one token for most of an hour, so a few per caller suffice.
const machineCacheSize = 1024

// Refusals of a valid Google ID token (403): authenticated, not authorized.
var (
	errNotAllowed             = errors.New("the service account is not on the allowlist")
	errMachineEmailUnverified = errors.New("the service account token's email_verified claim is not true")
)

// machineVerifier verifies a workload's Google-signed ID token with the
// unmodified cloud.google.com/go/auth/credentials/idtoken validator, then
// what that validator leaves out: the issuer (it checks signature, aud and
// exp only), and email and email_verified, since a service account's sub is
// a numeric id nobody reviews. The allowlist is checked on every request,
// the signature once per token (the cache).
type machineVerifier struct {
	validator *gidtoken.Validator
	audience  string
	allowed   []string
	cache     *tokencache.Cache[machineCaller]
	now       func() time.Time
}

// machineCaller is what a verified machine token says about its caller.
type machineCaller struct {
	email string
	sub   string // the account's numeric unique id
}

func newMachineVerifier(cfg Config) (*machineVerifier, error) {
	if len(cfg.MachineCallers) == 0 {
		return nil, nil // no workload may call: every Google token is refused
	}
	v, err := gidtoken.NewValidator(&gidtoken.ValidatorOptions{
		Client:        &http.Client{Timeout: 5 * time.Second},
		RS256CertsURL: cfg.GoogleCertsURL, // "" means Google's
	})
	if err != nil {
		return nil, fmt.Errorf("backend: Google ID token validator: %w", err)
	}
	return &machineVerifier{
		validator: v,
		audience:  cfg.MachineAudience,
		allowed:   slices.Clone(cfg.MachineCallers),
		cache:     tokencache.New[machineCaller](machineCacheSize),
		now:       time.Now,
	}, nil
}

// verify returns the caller of raw. Errors: invalidToken (401),
// errNotAllowed or errMachineEmailUnverified (403), or another error when the
// keys could not be fetched (503).
func (m *machineVerifier) verify(ctx context.Context, raw string) (machineCaller, error) {
	now := m.now()
	caller, ok := m.cache.Get(raw, now)
	if !ok {
		var err error
		if caller, err = m.verifySignature(ctx, raw); err != nil {
			return caller, err // the email, when known, for the access log
		}
	}
	// On every request, cached token or not: the cache holds what a token
	// proves, the allowlist decides what that may do.
	if !slices.Contains(m.allowed, caller.email) {
		return caller, errNotAllowed
	}
	return caller, nil
}

func (m *machineVerifier) verifySignature(ctx context.Context, raw string) (machineCaller, error) {
	// Google signs service accounts' ID tokens with RS256. The validator
	// also takes ES256, against IAP's keys, which it would fetch from
	// Google for any token that names that algorithm: refuse it first.
	if alg := algorithm(raw); alg != "RS256" {
		return machineCaller{}, invalidToken{fmt.Errorf("algorithm %q is not RS256", alg)}
	}
	p, err := m.validator.Validate(ctx, raw, m.audience)
	if err != nil {
		var ne net.Error
		var ue *url.Error
		if errors.As(err, &ne) || errors.As(err, &ue) {
			return machineCaller{}, fmt.Errorf("fetching Google's ID token keys: %w", err)
		}
		return machineCaller{}, invalidToken{err}
	}
	if p.Issuer != GoogleIssuer {
		return machineCaller{}, invalidToken{fmt.Errorf("issuer %q is not %s", p.Issuer, GoogleIssuer)}
	}
	email, _ := p.Claims["email"].(string)
	if email == "" {
		// IAM's generateIdToken leaves the email out unless asked
		// (includeEmail); without it there is nothing to match.
		return machineCaller{}, invalidToken{errors.New("the token carries no email claim")}
	}
	if verified, _ := p.Claims["email_verified"].(bool); !verified {
		return machineCaller{email: email, sub: p.Subject}, errMachineEmailUnverified
	}
	c := machineCaller{email: email, sub: p.Subject}
	m.cache.Put(raw, c, time.Unix(p.Expires, 0))
	return c, nil
}

// algorithm is the alg of raw's JOSE header, unverified; "" if unreadable.
func algorithm(raw string) string {
	head, _, ok := strings.Cut(raw, ".")
	if !ok {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.Alg
}

// invalidToken is a token that does not verify: 401 invalid_token.
type invalidToken struct{ err error }

func (e invalidToken) Error() string { return "invalid Google ID token: " + e.err.Error() }
func (e invalidToken) Unwrap() error { return e.err }
