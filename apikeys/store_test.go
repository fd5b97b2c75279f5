package apikeys

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStores runs one suite against every Store: what passes for memory
// must pass for Redis.
func TestStores(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Run("apps", func(t *testing.T) { testApps(t, st.open(t)) })
			t.Run("quota", func(t *testing.T) { testQuota(t, st.open(t)) })
			t.Run("quota under concurrency", func(t *testing.T) { testQuotaConcurrency(t, st.open(t)) })
			t.Run("usage", func(t *testing.T) { testUsage(t, st.open(t)) })
		})
	}
}

func testApps(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	_, h1 := newKey()
	_, h2 := newKey()
	_, h3 := newKey()
	a1 := App{ID: "app_1", Owner: "alice", Name: "one", Products: []string{"secure-message"}, KeyHash: h1, Created: t0}
	a2 := App{ID: "app_2", Owner: "alice", Name: "two", Products: []string{"reports", "secure-message"}, KeyHash: h2, Created: t0.Add(time.Second)}
	b1 := App{ID: "app_3", Owner: "bob", Name: "bob's", Products: []string{"reports"}, KeyHash: h3, Created: t0}
	for _, a := range []App{a2, a1, b1} {
		if err := s.CreateApp(ctx, a); err != nil {
			t.Fatalf("CreateApp(%s): %v", a.ID, err)
		}
	}
	same := func(t *testing.T, got, want App) {
		t.Helper()
		if got.ID != want.ID || got.Owner != want.Owner || got.Name != want.Name ||
			!slices.Equal(got.Products, want.Products) || got.KeyHash != want.KeyHash ||
			!got.Created.Equal(want.Created) || !got.Revoked.Equal(want.Revoked) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	t.Run("an app is found by its key and by its id", func(t *testing.T) {
		got, err := s.AppByKey(ctx, h2)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, a2)
		got, err = s.App(ctx, "app_2")
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, a2)
	})
	t.Run("an unknown key or id is ErrNotFound", func(t *testing.T) {
		_, h := newKey()
		if _, err := s.AppByKey(ctx, h); !errors.Is(err, ErrNotFound) {
			t.Errorf("AppByKey: got %v, want ErrNotFound", err)
		}
		if _, err := s.App(ctx, "app_nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("App: got %v, want ErrNotFound", err)
		}
		if _, err := s.Revoke(ctx, "app_nope", t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("Revoke: got %v, want ErrNotFound", err)
		}
	})
	t.Run("a taken id or key is refused", func(t *testing.T) {
		_, h := newKey()
		if err := s.CreateApp(ctx, App{ID: "app_1", Owner: "eve", KeyHash: h, Created: t0}); err == nil {
			t.Error("a second app_1 was stored")
		}
		if err := s.CreateApp(ctx, App{ID: "app_9", Owner: "eve", KeyHash: h1, Created: t0}); err == nil {
			t.Error("a second app with app_1's key was stored")
		}
	})
	t.Run("an owner lists their own apps, oldest first", func(t *testing.T) {
		got, err := s.AppsByOwner(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != "app_1" || got[1].ID != "app_2" {
			t.Fatalf("got %v, want app_1 then app_2", got)
		}
		got, err = s.AppsByOwner(ctx, "nobody")
		if err != nil || len(got) != 0 {
			t.Fatalf("got %v, %v; want none", got, err)
		}
	})
	t.Run("revocation is kept, and its first time with it", func(t *testing.T) {
		got, err := s.Revoke(ctx, "app_1", t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := a1
		want.Revoked = t0.Add(time.Hour)
		same(t, got, want)
		if _, err := s.Revoke(ctx, "app_1", t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err = s.AppByKey(ctx, h1)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, want)
		if got.Active() {
			t.Error("a revoked app is active")
		}
	})
}

func testQuota(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 12, 0, 10, 0, time.UTC)
	q := Quota{PerMinute: 2, PerDay: 3}
	take := func(now time.Time) Counts {
		t.Helper()
		c, err := s.Take(ctx, "app_1", "p", q, now)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	steps := []struct {
		name string
		at   time.Time
		want Counts
	}{
		{"the first request counts in both windows", t0, Counts{true, 1, 1}},
		{"the second reaches the minute's limit", t0.Add(time.Second), Counts{true, 2, 2}},
		{"the third is refused, and not counted", t0.Add(2 * time.Second), Counts{false, 2, 2}},
		{"another refusal leaves the day untouched", t0.Add(3 * time.Second), Counts{false, 2, 2}},
		{"the next minute starts afresh", t0.Add(time.Minute), Counts{true, 1, 3}},
		{"the day's limit then refuses", t0.Add(time.Minute + time.Second), Counts{false, 1, 3}},
		{"the next UTC day starts afresh", time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), Counts{true, 1, 1}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if got := take(st.at); got != st.want {
				t.Fatalf("got %+v, want %+v", got, st.want)
			}
		})
	}
	t.Run("another product and another app count apart", func(t *testing.T) {
		c, err := s.Take(ctx, "app_1", "other", q, t0)
		if err != nil || c != (Counts{true, 1, 1}) {
			t.Errorf("other product: got %+v, %v", c, err)
		}
		c, err = s.Take(ctx, "app_2", "p", q, t0)
		if err != nil || c != (Counts{true, 1, 1}) {
			t.Errorf("other app: got %+v, %v", c, err)
		}
	})
	t.Run("Used reads without counting", func(t *testing.T) {
		for range 2 {
			m, d, err := s.Used(ctx, "app_1", "p", time.Date(2026, 12, 4, 0, 0, 30, 0, time.UTC))
			if err != nil || m != 1 || d != 1 {
				t.Errorf("got %d, %d, %v; want 1, 1", m, d, err)
			}
		}
	})
}

// testQuotaConcurrency: N clients take at once against a quota of Q; exactly
// Q pass.
func testQuotaConcurrency(t *testing.T, s Store) {
	const n, q = 64, 25
	now := time.Now()
	var passed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			<-start
			c, err := s.Take(context.Background(), "app_burst", "p", Quota{PerMinute: q, PerDay: 1000}, now)
			if err != nil {
				errs <- err
				return
			}
			if c.Allowed {
				passed.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := passed.Load(); got != q {
		t.Fatalf("%d concurrent takes against a quota of %d: %d passed, want exactly %d", n, q, got, q)
	}
}

func testUsage(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	records := []struct {
		at      time.Time
		status  int
		latency time.Duration
	}{
		{t0.Add(5 * time.Second), 200, 100 * time.Microsecond},
		{t0.Add(10 * time.Second), 200, 300 * time.Microsecond},
		{t0.Add(50 * time.Second), 429, 200 * time.Microsecond},
		{t0.Add(2 * time.Minute), 403, 50 * time.Microsecond},
	}
	for _, r := range records {
		if err := s.RecordUsage(ctx, "app_1", r.at, r.status, r.latency); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordUsage(ctx, "app_2", t0, 200, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	t.Run("minutes come back with requests by status and a latency summary", func(t *testing.T) {
		got, err := s.Usage(ctx, "app_1", t0, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("got %d minutes, want 2: %+v", len(got), got)
		}
		m := got[0]
		if !m.Minute.Equal(t0) || m.Count != 3 || m.ByStatus[200] != 2 || m.ByStatus[429] != 1 ||
			m.LatencySum != 600*time.Microsecond || m.LatencyMax != 300*time.Microsecond {
			t.Errorf("first minute: got %+v, want 3 requests (2×200, 1×429), 600µs in all, 300µs at most", m)
		}
		if m := got[1]; !m.Minute.Equal(t0.Add(2*time.Minute)) || m.Count != 1 || m.ByStatus[403] != 1 {
			t.Errorf("second minute: got %+v, want one 403 at %v", m, t0.Add(2*time.Minute))
		}
	})
	t.Run("the range is half open", func(t *testing.T) {
		got, err := s.Usage(ctx, "app_1", t0.Add(time.Minute), t0.Add(2*time.Minute))
		if err != nil || len(got) != 0 {
			t.Errorf("got %+v, %v; want nothing", got, err)
		}
	})
	t.Run("minutes older than 24 hours are gone", func(t *testing.T) {
		got, err := s.Usage(ctx, "app_1", t0.Add(-time.Hour), t0.Add(24*time.Hour+time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !got[0].Minute.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("got %+v, want only the minute at %v", got, t0.Add(2*time.Minute))
		}
	})
}
