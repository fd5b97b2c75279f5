package idtoken

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const (
	// keysMaxAge is how long a fetched JWKS is trusted before it is fetched
	// again, so that a key the emulator retired stops verifying tokens.
	keysMaxAge = 5 * time.Minute
	// keysMinRefetch rate-limits fetches caused by an unknown kid (a rotated
	// key, or a forger's made-up one): tokens with random kids must not turn
	// into a request each to the JWKS endpoint.
	keysMinRefetch = time.Second
)

// errUnknownKey is the refusal for a kid the JWKS does not have.
var errUnknownKey = errors.New("no key with the token's kid in the JWKS")

// keySet is a cached JWKS: fetched on first use, refetched when older than
// maxAge or when a token names a kid it lacks, at most once per minRefetch.
type keySet struct {
	url        string
	client     *http.Client
	now        func() time.Time
	maxAge     time.Duration
	minRefetch time.Duration

	mu        sync.RWMutex // guards set and fetchedAt
	set       jwk.Set
	fetchedAt time.Time

	// fetchMu serialises fetches, so that requests that find the cache
	// lacking wait for one fetch instead of each making their own.
	fetchMu     sync.Mutex
	lastAttempt time.Time // guarded by fetchMu
	lastErr     error     // guarded by fetchMu
}

func newKeySet(url string, client *http.Client) *keySet {
	return &keySet{url: url, client: client, now: time.Now, maxAge: keysMaxAge, minRefetch: keysMinRefetch}
}

// verifySignature checks that token is a compact JWS signed with RS256 by a
// key in the set. Refusals wrap ErrInvalidToken; a JWKS that cannot be
// fetched is an error of its own.
func (k *keySet) verifySignature(ctx context.Context, token string) error {
	msg, err := jws.Parse([]byte(token), jws.WithCompact())
	if err != nil {
		return fmt.Errorf("%w: not a compact JWS: %w", ErrInvalidToken, err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return fmt.Errorf("%w: %d signatures, want 1", ErrInvalidToken, len(sigs))
	}
	h := sigs[0].ProtectedHeaders()
	// Identity Platform signs with RS256 only; pinning it refuses "none",
	// HMAC keyed with the public key, and every other substitution.
	if alg, _ := h.Algorithm(); alg != jwa.RS256() {
		return fmt.Errorf("%w: alg %q, want RS256", ErrInvalidToken, alg)
	}
	kid, _ := h.KeyID()
	if kid == "" {
		return fmt.Errorf("%w: no kid", ErrInvalidToken)
	}
	key, err := k.lookup(ctx, kid)
	if err != nil {
		return err
	}
	// The header is checked above, so the fast path (no second full parse;
	// it still cross-checks alg and refuses crit and b64) is enough.
	if _, err := jws.VerifyCompactFast(key, []byte(token), jwa.RS256()); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidToken, err)
	}
	return nil
}

// lookup returns the key named kid, fetching the set if it is missing, stale
// or lacks kid, unless the last fetch was less than minRefetch ago.
func (k *keySet) lookup(ctx context.Context, kid string) (jwk.Key, error) {
	if key, ok, _ := k.cached(kid); ok {
		return key, nil
	}
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	// Another request may have fetched while we waited for the lock.
	key, ok, fresh := k.cached(kid)
	if ok {
		return key, nil
	}
	if k.now().Sub(k.lastAttempt) < k.minRefetch {
		if fresh {
			return nil, fmt.Errorf("%w: kid %q (%s)", ErrInvalidToken, kid, errUnknownKey)
		}
		return nil, fmt.Errorf("emulator JWKS %s unavailable (retrying after %s): %w", k.url, k.minRefetch, k.lastErr)
	}
	k.lastAttempt = k.now()
	set, err := jwk.Fetch(ctx, k.url, jwk.WithHTTPClient(k.client))
	k.lastErr = err
	if err != nil {
		return nil, fmt.Errorf("fetching emulator JWKS %s: %w", k.url, err)
	}
	k.mu.Lock()
	k.set, k.fetchedAt = set, k.lastAttempt
	k.mu.Unlock()
	if key, ok := set.LookupKeyID(kid); ok {
		return key, nil
	}
	return nil, fmt.Errorf("%w: kid %q (%s)", ErrInvalidToken, kid, errUnknownKey)
}

// cached returns the key named kid from a set younger than maxAge, and
// whether there is such a set at all.
func (k *keySet) cached(kid string) (key jwk.Key, ok, fresh bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.set == nil || k.now().Sub(k.fetchedAt) >= k.maxAge {
		return nil, false, false
	}
	key, ok = k.set.LookupKeyID(kid)
	return key, ok, true
}
