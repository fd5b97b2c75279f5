package apikeys

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// MemoryStore keeps everything in the process: the default for devstack and
// a single replica. It loses its apps on restart, and two replicas would
// each count their own quotas: beyond one replica, use RedisStore.
type MemoryStore struct {
	mu     sync.Mutex
	apps   map[string]App
	byKey  map[KeyHash]string
	counts map[counterKey]int64
	usage  map[string]map[int64]*UsageMinute // app id → unix minute → usage
	// lastPrune is when expired counters and usage were last dropped.
	lastPrune time.Time
}

type counterKey struct {
	app, product string
	day          bool
	start        int64 // the window's start, unix seconds
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		apps:   map[string]App{},
		byKey:  map[KeyHash]string{},
		counts: map[counterKey]int64{},
		usage:  map[string]map[int64]*UsageMinute{},
	}
}

func (m *MemoryStore) CreateApp(_ context.Context, a App) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.apps[a.ID]; ok {
		return fmt.Errorf("creating app %s: the id is taken", a.ID)
	}
	if _, ok := m.byKey[a.KeyHash]; ok {
		return fmt.Errorf("creating app %s: the key is taken", a.ID)
	}
	a.Products = slices.Clone(a.Products)
	m.apps[a.ID] = a
	m.byKey[a.KeyHash] = a.ID
	return nil
}

func (m *MemoryStore) AppByKey(_ context.Context, h KeyHash) (App, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byKey[h]
	if !ok {
		return App{}, ErrNotFound
	}
	return m.apps[id], nil
}

func (m *MemoryStore) App(_ context.Context, id string) (App, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.apps[id]
	if !ok {
		return App{}, ErrNotFound
	}
	return a, nil
}

func (m *MemoryStore) AppsByOwner(_ context.Context, owner string) ([]App, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []App
	for _, a := range m.apps {
		if a.Owner == owner {
			out = append(out, a)
		}
	}
	sortApps(out)
	return out, nil
}

func (m *MemoryStore) Revoke(_ context.Context, id string, at time.Time) (App, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.apps[id]
	if !ok {
		return App{}, ErrNotFound
	}
	if a.Revoked.IsZero() {
		a.Revoked = at.UTC()
		m.apps[id] = a
	}
	return a, nil
}

func (m *MemoryStore) Take(_ context.Context, appID, product string, q Quota, now time.Time) (Counts, error) {
	minStart, _, dayStart, _ := windows(now)
	mk := counterKey{appID, product, false, minStart.Unix()}
	dk := counterKey{appID, product, true, dayStart.Unix()}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(now)
	c := Counts{Minute: m.counts[mk], Day: m.counts[dk]}
	if c.Minute >= q.PerMinute || c.Day >= q.PerDay {
		return c, nil
	}
	c.Minute++
	c.Day++
	m.counts[mk], m.counts[dk] = c.Minute, c.Day
	c.Allowed = true
	return c, nil
}

func (m *MemoryStore) Used(_ context.Context, appID, product string, now time.Time) (int64, int64, error) {
	minStart, _, dayStart, _ := windows(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[counterKey{appID, product, false, minStart.Unix()}],
		m.counts[counterKey{appID, product, true, dayStart.Unix()}], nil
}

func (m *MemoryStore) RecordUsage(_ context.Context, appID string, at time.Time, status int, latency time.Duration) error {
	minute := at.UTC().Truncate(time.Minute)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked(at)
	byMin := m.usage[appID]
	if byMin == nil {
		byMin = map[int64]*UsageMinute{}
		m.usage[appID] = byMin
	}
	u := byMin[minute.Unix()]
	if u == nil {
		u = &UsageMinute{Minute: minute, ByStatus: map[int]int64{}}
		byMin[minute.Unix()] = u
	}
	u.ByStatus[status]++
	u.Count++
	u.LatencySum += latency
	u.LatencyMax = max(u.LatencyMax, latency)
	return nil
}

func (m *MemoryStore) Usage(_ context.Context, appID string, from, to time.Time) ([]UsageMinute, error) {
	oldest := to.Add(-usageRetention)
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []UsageMinute
	for _, u := range m.usage[appID] {
		if u.Minute.Before(from) || !u.Minute.Before(to) || u.Minute.Before(oldest.Truncate(time.Minute)) {
			continue
		}
		c := *u
		c.ByStatus = make(map[int]int64, len(u.ByStatus))
		for k, v := range u.ByStatus {
			c.ByStatus[k] = v
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b UsageMinute) int { return a.Minute.Compare(b.Minute) })
	return out, nil
}

// pruneLocked drops counters of past windows and usage past retention, at
// most once a minute, so that memory stays bounded by the live windows and
// one day of minutes per app.
func (m *MemoryStore) pruneLocked(now time.Time) {
	if now.Sub(m.lastPrune) < time.Minute {
		return
	}
	m.lastPrune = now
	minStart, _, dayStart, _ := windows(now)
	for k := range m.counts {
		if (k.day && k.start < dayStart.Unix()) || (!k.day && k.start < minStart.Unix()) {
			delete(m.counts, k)
		}
	}
	oldest := now.Add(-usageRetention).Unix()
	for app, byMin := range m.usage {
		for t := range byMin {
			if t < oldest-60 {
				delete(byMin, t)
			}
		}
		if len(byMin) == 0 {
			delete(m.usage, app)
		}
	}
}

func (m *MemoryStore) Close() error { return nil }

func sortApps(apps []App) {
	slices.SortFunc(apps, func(a, b App) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
