package apikeys

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Outcome is what the check concluded, with the reason; the gRPC layer only
// translates it (see check.go), and metrics and logs name it.
type Outcome string

const (
	// OutcomeNoKey: the request carries no key; the check lets it through
	// untouched (but for x-api-app, which it strips) and leaves it to the
	// other policies: users with JWTs.
	OutcomeNoKey Outcome = "no_key"
	// OutcomeAllowed: a valid key whose product covers the request, within
	// quota.
	OutcomeAllowed Outcome = "allowed"
	// OutcomeInvalidKey: malformed, unknown, or more than one key: 401.
	OutcomeInvalidKey Outcome = "invalid_key"
	// OutcomeRevoked: a revoked key: 401, as for an unknown one.
	OutcomeRevoked Outcome = "revoked"
	// OutcomeNotCovered: the app's products do not cover this method and
	// path: 403.
	OutcomeNotCovered Outcome = "not_covered"
	// OutcomeQuotaExceeded: 429.
	OutcomeQuotaExceeded Outcome = "quota_exceeded"
	// OutcomeUnavailable: the store failed; refused with 503 (fail closed).
	OutcomeUnavailable Outcome = "unavailable"
)

// Status is the HTTP status the client gets for the outcome; 200 means the
// request goes on (for OutcomeNoKey, to the other policies).
func (o Outcome) Status() int {
	switch o {
	case OutcomeNoKey, OutcomeAllowed:
		return http.StatusOK
	case OutcomeInvalidKey, OutcomeRevoked:
		return http.StatusUnauthorized
	case OutcomeNotCovered:
		return http.StatusForbidden
	case OutcomeQuotaExceeded:
		return http.StatusTooManyRequests
	default:
		return http.StatusServiceUnavailable
	}
}

// Request is what the check looks at.
type Request struct {
	Method string
	// Path is the request path, with or without its query (which is
	// ignored: keys are read from the x-api-key header only, never from the
	// query string, where they would end up in access logs).
	Path string
	// Keys are the values of every x-api-key header.
	Keys []string
}

// Decision is the check's conclusion.
type Decision struct {
	Outcome Outcome
	AppID   string // set once a key has been recognised
	Product string // the product that covered the request
	// Quota is the tighter of the two windows after an allowed request, or
	// the exhausted one after a refused one; nil otherwise.
	Quota *QuotaStatus
	// Err is why the decision is OutcomeUnavailable; for logs only.
	Err error
}

// QuotaStatus is one quota window as the rate-limit headers describe it.
type QuotaStatus struct {
	Limit, Remaining int64
	Reset            time.Time // when the window ends
}

// Decide evaluates one request: the policy, as a function of the request,
// the catalog and the store's state.
func (s *Service) Decide(ctx context.Context, r Request, now time.Time) Decision {
	if len(r.Keys) == 0 {
		return Decision{Outcome: OutcomeNoKey}
	}
	// Two keys are ambiguous: refuse rather than pick one, which another
	// hop might pick differently.
	if len(r.Keys) != 1 || !wellFormedKey(r.Keys[0]) {
		return Decision{Outcome: OutcomeInvalidKey}
	}
	h := hashKey(r.Keys[0])
	app, err := s.store.AppByKey(ctx, h)
	if errors.Is(err, ErrNotFound) {
		return Decision{Outcome: OutcomeInvalidKey}
	}
	if err != nil {
		return Decision{Outcome: OutcomeUnavailable, Err: fmt.Errorf("looking up key: %w", err)}
	}
	if !app.KeyHash.Equal(h) {
		return Decision{Outcome: OutcomeInvalidKey}
	}
	d := Decision{AppID: app.ID}
	if !app.Active() {
		d.Outcome = OutcomeRevoked
		return d
	}
	reqPath, _, _ := strings.Cut(r.Path, "?")
	p, ok := s.catalog.Covering(app.Products, r.Method, reqPath)
	if !ok {
		d.Outcome = OutcomeNotCovered
		return d
	}
	d.Product = p.ID
	c, err := s.store.Take(ctx, app.ID, p.ID, p.Quota, now)
	if err != nil {
		d.Outcome, d.Err = OutcomeUnavailable, fmt.Errorf("counting quota: %w", err)
		return d
	}
	d.Quota = quotaStatus(c, p.Quota, now)
	if c.Allowed {
		d.Outcome = OutcomeAllowed
	} else {
		d.Outcome = OutcomeQuotaExceeded
	}
	return d
}

// quotaStatus picks the window to report: the exhausted one after a refusal
// (the minute's if both are, as it resets first), otherwise the one with
// fewer requests left.
func quotaStatus(c Counts, q Quota, now time.Time) *QuotaStatus {
	_, minEnd, _, dayEnd := windows(now)
	minute := QuotaStatus{Limit: q.PerMinute, Remaining: max(0, q.PerMinute-c.Minute), Reset: minEnd}
	day := QuotaStatus{Limit: q.PerDay, Remaining: max(0, q.PerDay-c.Day), Reset: dayEnd}
	if !c.Allowed {
		if c.Minute >= q.PerMinute {
			return &minute
		}
		return &day
	}
	if day.Remaining < minute.Remaining {
		return &day
	}
	return &minute
}
