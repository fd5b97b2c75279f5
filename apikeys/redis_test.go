package apikeys

import (
	"context"
	"testing"
	"time"
)

// TestRedisKeysExpire: quota counters and usage minutes carry a TTL, so
// Redis holds only the live windows and one day of usage, never a growing
// pile of past minutes.
func TestRedisKeysExpire(t *testing.T) {
	r := startRedis(t).(*RedisStore)
	ctx := context.Background()
	now := time.Now()
	if _, err := r.Take(ctx, "app_1", "p", Quota{PerMinute: 5, PerDay: 10}, now); err != nil {
		t.Fatal(err)
	}
	if err := r.RecordUsage(ctx, "app_1", now, 200, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	mk, dk, _, _ := r.counterKeys("app_1", "p", now)
	minStart, _, _, _ := windows(now)
	tests := []struct {
		name     string
		key      string
		min, max time.Duration
	}{
		{"the minute counter outlives its minute by the grace only", mk, counterGrace, time.Minute + counterGrace},
		{"the day counter outlives its day by the grace only", dk, counterGrace, 24*time.Hour + counterGrace},
		{"a usage minute is kept 24 hours", r.usageKey("app_1", minStart), usageRetention, usageRetention + time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ttl, err := r.c.PTTL(ctx, tt.key).Result()
			if err != nil {
				t.Fatal(err)
			}
			// A second of slack for the time between the write and PTTL.
			if ttl < tt.min-time.Second || ttl > tt.max {
				t.Fatalf("TTL of %s: got %v, want between %v and %v", tt.key, ttl, tt.min, tt.max)
			}
		})
	}
}

// TestARecordIsTrustedOnlyIfItsHashMatches: the check compares the hash
// stored in the record it found with the one it computed, so a record filed
// under the wrong index entry does not admit the key.
func TestARecordIsTrustedOnlyIfItsHashMatches(t *testing.T) {
	r := startRedis(t).(*RedisStore)
	s := newService(t, r, testCatalog(t, 100, 1000), time.Now)
	_, key := mustApp(t, s, "alice", "secure-message")
	req := Request{Method: "GET", Path: "/api/secure.json", Keys: []string{key}}
	if d := s.Decide(context.Background(), req, time.Now()); d.Outcome != OutcomeAllowed {
		t.Fatalf("before: got %s, want allowed", d.Outcome)
	}
	_, other := newKey()
	if err := r.c.HSet(context.Background(), r.k("key", hashKey(key).String()), "keyHash", other.String()).Err(); err != nil {
		t.Fatal(err)
	}
	if d := s.Decide(context.Background(), req, time.Now()); d.Outcome != OutcomeInvalidKey {
		t.Fatalf("with another hash in the record: got %s, want invalid_key", d.Outcome)
	}
}
