package apikeys

import (
	"context"
	"errors"
	"time"
)

// App is a consumer of the API: it belongs to an owner (the user who created
// it) and holds one API key for one or more products.
type App struct {
	ID       string
	Owner    string // the owner's user id (the ID token's uid)
	Name     string
	Products []string
	// KeyHash is the SHA-256 of the app's key; the key itself is shown once,
	// when the app is created, and never stored.
	KeyHash KeyHash
	Created time.Time
	// Revoked is when the key was revoked; zero while it is valid.
	Revoked time.Time
}

// Active reports whether the app's key is still accepted.
func (a App) Active() bool { return a.Revoked.IsZero() }

// ErrNotFound is returned for an app or key a store does not hold.
var ErrNotFound = errors.New("not found")

// Counts is a quota decision: whether the request was counted, and the
// counts of the minute and day windows after it (or as they stood, when it
// was refused).
type Counts struct {
	Allowed     bool
	Minute, Day int64
}

// UsageMinute is what one app did in one minute.
type UsageMinute struct {
	Minute time.Time // the start of the minute, UTC
	// ByStatus counts requests by the status the check answered: 200 for
	// allowed, 401, 403, 429, 503.
	ByStatus map[int]int64
	// Latency of the decisions: how many, their sum and the slowest.
	Count      int64
	LatencySum time.Duration
	LatencyMax time.Duration
}

// usageRetention is how long per-minute usage is kept.
const usageRetention = 24 * time.Hour

// Store holds apps, quota counters and usage. MemoryStore serves one replica;
// RedisStore shares everything between replicas. Both pass the same test
// suite (TestStores, store_test.go).
type Store interface {
	// CreateApp stores a new app.
	CreateApp(ctx context.Context, a App) error
	// AppByKey returns the app whose key hashes to h, revoked or not: the
	// caller tells a revoked key from an unknown one. ErrNotFound otherwise.
	AppByKey(ctx context.Context, h KeyHash) (App, error)
	// App returns the app with id, or ErrNotFound.
	App(ctx context.Context, id string) (App, error)
	// AppsByOwner returns the owner's apps, oldest first.
	AppsByOwner(ctx context.Context, owner string) ([]App, error)
	// Revoke marks the app's key revoked at at (once: a second call keeps the
	// first time) and returns the app. ErrNotFound when there is none.
	Revoke(ctx context.Context, id string, at time.Time) (App, error)

	// Take counts one request of appID under product against q, in the
	// minute and day windows containing now, atomically: it is counted in
	// both windows only if both are under their limits, so that N
	// concurrent takes against a limit Q let exactly Q through, and a
	// request refused for the minute does not use up the day.
	Take(ctx context.Context, appID, product string, q Quota, now time.Time) (Counts, error)
	// Used returns the counts of the windows containing now, without
	// counting anything.
	Used(ctx context.Context, appID, product string, now time.Time) (minute, day int64, err error)

	// RecordUsage adds one decision to the app's minute containing at.
	RecordUsage(ctx context.Context, appID string, at time.Time, status int, latency time.Duration) error
	// Usage returns the app's minutes in [from, to), oldest first, leaving
	// out minutes without requests. Minutes older than 24 hours are gone.
	Usage(ctx context.Context, appID string, from, to time.Time) ([]UsageMinute, error)

	Close() error
}

// windows returns the starts and ends of the minute and UTC day containing
// now: fixed windows, so that every replica and every store agrees on them
// without coordination.
func windows(now time.Time) (minStart, minEnd, dayStart, dayEnd time.Time) {
	now = now.UTC()
	minStart = now.Truncate(time.Minute)
	dayStart = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return minStart, minStart.Add(time.Minute), dayStart, dayStart.AddDate(0, 0, 1)
}
