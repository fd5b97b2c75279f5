package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"golang.org/x/sync/singleflight"
)

// publicKey is one usable key of a JWKS: RSA or EC only, so HMAC and "none"
// can never verify whatever a token claims.
type publicKey struct {
	kid, alg string
	kty      string // "RSA" or "EC"
	raw      any    // *rsa.PublicKey or *ecdsa.PublicKey
}

type keySet struct {
	keys    []*publicKey
	fetched time.Time
}

// has reports whether the set still holds key k (same kid, same public key).
func (s *keySet) has(k *publicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	for _, c := range s.keys {
		if c == k {
			return true
		}
		if c.kid == k.kid && c.kty == k.kty {
			if e, ok := c.raw.(equaler); ok && e.Equal(k.raw) {
				return true
			}
		}
	}
	return false
}

func (s *keySet) hasKid(kid string) bool {
	for _, k := range s.keys {
		if k.kid == kid {
			return true
		}
	}
	return false
}

// parseJWKS reads a JWKS document, keeping the keys Envoy would accept for
// RS*/PS*/ES* and skipping the others, as jwks.cc skips invalid keys. A
// document without a usable key is an error (JwksNoValidKeys).
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", "Jwks is an invalid JSON", err)
	}
	if doc.Keys == nil {
		return nil, errors.New("Jwks does not have [keys] field")
	}
	set := &keySet{}
	for _, raw := range doc.Keys {
		k, err := jwk.ParseKey(raw)
		if err != nil {
			continue
		}
		pk := &publicKey{}
		pk.kid, _ = k.KeyID()
		if a, ok := k.Algorithm(); ok {
			pk.alg = a.String()
		}
		var exported any
		if err := jwk.Export(k, &exported); err != nil {
			continue
		}
		switch key := exported.(type) {
		case *rsa.PublicKey:
			pk.kty, pk.raw = "RSA", key
			// jwks.cc: an RSA key's alg must start with RS or PS.
			if pk.alg != "" && !strings.HasPrefix(pk.alg, "RS") && !strings.HasPrefix(pk.alg, "PS") {
				continue
			}
		case *ecdsa.PublicKey:
			pk.kty, pk.raw = "EC", key
			if pk.alg != "" && !strings.HasPrefix(pk.alg, "ES") {
				continue
			}
		default:
			// Private keys published by mistake, oct (HMAC) and OKP keys
			// are not used.
			continue
		}
		set.keys = append(set.keys, pk)
	}
	if len(set.keys) == 0 {
		return nil, errors.New(string(statusNoValidKeys))
	}
	return set, nil
}

// verifySignature is verify.cc verifyJwtWithoutTimeChecking with the
// cryptography done by jwx: try every key whose kid and alg do not
// contradict the token's; no candidate at all is JwksKidAlgMismatch, failing
// candidates JwtVerificationFail.
func verifySignature(j *jwt, set *keySet) (*publicKey, status) {
	matched := false
	alg, algOK := jwa.LookupSignatureAlgorithm(j.alg)
	for _, k := range set.keys {
		if j.kid != "" && k.kid != "" && k.kid != j.kid {
			continue
		}
		if k.alg != "" && k.alg != j.alg {
			continue
		}
		matched = true
		if !algOK || !asymmetricFor(k.kty, j.alg) {
			continue
		}
		// VerifyCompactFast checks that alg suits the key (no RSA key
		// verifying an HMAC), refuses "crit" and "b64" headers, and never
		// looks at jku/x5u/jwk headers: keys come from the JWKS only.
		if _, err := jws.VerifyCompactFast(k.raw, []byte(j.raw), alg); err == nil {
			return k, statusOK
		}
	}
	if matched {
		return nil, statusVerificationFail
	}
	return nil, statusKidAlgMismatch
}

func asymmetricFor(kty, alg string) bool {
	switch kty {
	case "RSA":
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case "EC":
		return strings.HasPrefix(alg, "ES")
	}
	return false
}

// keySource holds one rule's keys: inline (jwks) or fetched (jwksUri).
//
// Fetched keys are cached for Envoy's 5 minutes, then refreshed on use; a
// token naming an unknown kid also triggers a refresh, at most once per
// minRefetchInterval. Concurrent requests share one fetch (singleflight). A
// failed fetch keeps the previous keys, so valid tokens keep working while
// the endpoint is down and unknown keys fail closed.
type keySource struct {
	policyURI string // as written in the policy, for logs
	fetchURL  string
	timeout   time.Duration
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger

	mu          sync.Mutex
	set         *keySet
	lastAttempt time.Time
	group       singleflight.Group
}

func staticKeySource(set *keySet) *keySource {
	return &keySource{set: set}
}

func remoteKeySource(policyURI, fetchURL string, timeout time.Duration, client *http.Client, now func() time.Time, log *slog.Logger) *keySource {
	return &keySource{policyURI: policyURI, fetchURL: fetchURL, timeout: timeout, client: client, now: now, log: log}
}

// keys returns the current key set, fetching it first when there is none yet
// or it is older than the cache duration. A nil set means none could be
// fetched.
func (s *keySource) keys(ctx context.Context) *keySet {
	s.mu.Lock()
	set := s.set
	static := s.fetchURL == ""
	s.mu.Unlock()
	if static || set != nil && s.now().Sub(set.fetched) < jwksCacheDuration {
		return set
	}
	return s.refresh(ctx, false)
}

// refreshForKid refetches because a token named a kid the set lacks.
func (s *keySource) refreshForKid(ctx context.Context) *keySet {
	if s.fetchURL == "" {
		return s.current()
	}
	return s.refresh(ctx, true)
}

func (s *keySource) current() *keySet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set
}

// refresh fetches the JWKS unless a fetch was attempted less than
// minRefetchInterval ago, in which case the current set is returned. The
// rate limit applies to every kind of refresh, so an endpoint that is down
// is not asked again on every request either.
func (s *keySource) refresh(ctx context.Context, forKid bool) *keySet {
	ch := s.group.DoChan("fetch", func() (any, error) {
		s.mu.Lock()
		if !s.lastAttempt.IsZero() && s.now().Sub(s.lastAttempt) < minRefetchInterval {
			set := s.set
			s.mu.Unlock()
			return set, nil
		}
		s.lastAttempt = s.now()
		s.mu.Unlock()

		// Not the request's context: the fetch is shared by every request
		// waiting on it and must not die with the first one's client.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		set, err := s.fetch(fctx)

		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.log.Warn("JWKS fetch failed; keeping the keys we have",
				"jwksUri", s.policyURI, "fetched", s.fetchURL, "unknownKid", forKid,
				"cachedKeys", keyCount(s.set), "error", err.Error())
			return s.set, nil
		}
		set.fetched = s.now()
		s.set = set
		s.log.Info("JWKS fetched", "jwksUri", s.policyURI, "fetched", s.fetchURL,
			"keys", len(set.keys), "unknownKid", forKid)
		return set, nil
	})
	select {
	case r := <-ch:
		set, _ := r.Val.(*keySet)
		return set
	case <-ctx.Done():
		return s.current()
	}
}

func keyCount(s *keySet) int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

func (s *keySource) fetch(ctx context.Context) (*keySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.fetchURL, nil)
	if err != nil {
		return nil, fmt.Errorf("building JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJWKSBytes))
		return nil, fmt.Errorf("fetching JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("reading JWKS: larger than %d bytes", maxJWKSBytes)
	}
	set, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("parsing JWKS: %w", err)
	}
	return set, nil
}
