package idtoken

import (
	"context"
	"fmt"
	"time"

	"firebase.google.com/go/v4/auth"

	"github.com/acme/cloudrun-istio-gke/internal/tokencache"
)

// userLookup is the one Admin SDK call the revocation check makes; *auth.Client
// implements it (accounts:lookup).
type userLookup interface {
	GetUser(ctx context.Context, uid string) (*auth.UserRecord, error)
}

// userState is what decides whether a user's tokens still count.
type userState struct {
	validAfterMillis int64 // tokens issued before this were revoked
	disabled         bool
	gone             bool // deleted: remembered too, so that a deleted user's tokens cost no lookup each
}

// revocations refuses the tokens of users who were disabled or whose tokens
// were revoked (RevokeRefreshTokens, which sign-out calls), looking each user
// up at most once per every: a revocation is honoured no later than every
// after it happened. It makes the same decision as the Admin SDK's
// VerifyIDTokenAndCheckRevoked (firebase-admin-go auth/auth.go
// checkRevokedOrDisabled: disabled, or iat*1000 < tokensValidAfterMillis),
// without a lookup per request.
type revocations struct {
	users userLookup
	every time.Duration
	cache *tokencache.Cache[userState] // by uid, each entry living every
}

func newRevocations(users userLookup, every time.Duration, size int) *revocations {
	return &revocations{users: users, every: every, cache: tokencache.New[userState](size)}
}

// check refuses tok (wrapping ErrInvalidToken) if its user was disabled,
// deleted or had their tokens revoked, as of a lookup at most r.every old.
func (r *revocations) check(ctx context.Context, tok *auth.Token, now time.Time) error {
	st, ok := r.cache.Get(tok.UID, now)
	if !ok {
		// Concurrent requests of one user whose entry just expired may each
		// look the user up once; that is bounded by the request rate of one
		// user for one round trip, and keeps this path free of waiting.
		u, err := r.users.GetUser(ctx, tok.UID)
		switch {
		case auth.IsUserNotFound(err):
			st = userState{gone: true}
		case err != nil:
			return fmt.Errorf("checking whether user %s's tokens were revoked: %w", tok.UID, err)
		default:
			st = userState{validAfterMillis: u.TokensValidAfterMillis, disabled: u.Disabled}
		}
		r.cache.Put(tok.UID, st, now.Add(r.every))
	}
	if st.gone {
		return fmt.Errorf("%w: user %s no longer exists", ErrInvalidToken, tok.UID)
	}
	if st.disabled {
		return fmt.Errorf("%w: user %s is disabled", ErrInvalidToken, tok.UID)
	}
	if tok.IssuedAt*1000 < st.validAfterMillis {
		return fmt.Errorf("%w: the token of user %s was revoked", ErrInvalidToken, tok.UID)
	}
	return nil
}
