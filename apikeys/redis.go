package apikeys

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps apps, quota counters and usage in Redis, shared by every
// replica (Memorystore for Redis in production, an in-cluster Redis in the
// tutorial). Every multi-step update is one Lua script, which Redis runs
// atomically (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/):
// no other command runs in between, so N replicas counting one quota
// concurrently let exactly the limit through.
//
// Layout (prefix "apikeys:" by default):
//
//	key:<sha256 hex>          hash: the app, found by its key in one round trip
//	app:<id>                  string: the app's key hash, to find it by id
//	owner:<uid>               set: the owner's app ids
//	quota:<app>:<product>:m:<unix minute start>   counter, expires after its window
//	quota:<app>:<product>:d:<unix day start>      counter, expires after its window
//	usage:<app>:<unix minute start>               hash: n, s<status>, latSumUs, latMaxUs; kept 24 h
//
// A script's keys (an app's record, its id and its owner's set, say) would
// fall in different hash slots of a Redis Cluster, which refuses such
// scripts: this layout is for one primary, as Memorystore for Redis's Basic
// and Standard tiers are, not for Redis Cluster.
type RedisStore struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedisStore returns a store on c, which the caller configures (address,
// TLS, AUTH, timeouts) and which Close closes.
func NewRedisStore(c redis.UniversalClient) *RedisStore {
	return &RedisStore{c: c, prefix: "apikeys:"}
}

func (r *RedisStore) k(parts ...string) string { return r.prefix + strings.Join(parts, ":") }

// createScript stores an app unless its id or key is taken.
// KEYS: key:<hash>, app:<id>, owner:<uid>. ARGV: hash, then field/value pairs.
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('app id or key already exists')
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
`)

func (r *RedisStore) CreateApp(ctx context.Context, a App) error {
	h := a.KeyHash.String()
	products, err := json.Marshal(a.Products)
	if err != nil {
		return err
	}
	// ARGV[3] must be the id: the script adds it to the owner's set.
	args := []any{h, "id", a.ID, "owner", a.Owner, "name", a.Name, "keyHash", h, "products", string(products),
		"created", a.Created.UTC().Format(time.RFC3339Nano)}
	if !a.Revoked.IsZero() {
		args = append(args, "revoked", a.Revoked.UTC().Format(time.RFC3339Nano))
	}
	err = createScript.Run(ctx, r.c, []string{r.k("key", h), r.k("app", a.ID), r.k("owner", a.Owner)}, args...).Err()
	if err != nil {
		return fmt.Errorf("creating app %s in redis: %w", a.ID, err)
	}
	return nil
}

func (r *RedisStore) AppByKey(ctx context.Context, h KeyHash) (App, error) {
	m, err := r.c.HGetAll(ctx, r.k("key", h.String())).Result()
	if err != nil {
		return App{}, fmt.Errorf("reading app by key from redis: %w", err)
	}
	return decodeApp(m)
}

func decodeApp(m map[string]string) (App, error) {
	if len(m) == 0 {
		return App{}, ErrNotFound
	}
	a := App{ID: m["id"], Owner: m["owner"], Name: m["name"]}
	// The record's own copy of the hash, which the check compares with
	// the one it computed.
	b, err := hex.DecodeString(m["keyHash"])
	if err != nil || len(b) != len(a.KeyHash) {
		return App{}, fmt.Errorf("app %s: stored key hash %q is malformed", a.ID, m["keyHash"])
	}
	copy(a.KeyHash[:], b)
	if a.Created, err = time.Parse(time.RFC3339Nano, m["created"]); err != nil {
		return App{}, fmt.Errorf("app %s: created: %w", a.ID, err)
	}
	if v, ok := m["revoked"]; ok {
		if a.Revoked, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return App{}, fmt.Errorf("app %s: revoked: %w", a.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(m["products"]), &a.Products); err != nil {
		return App{}, fmt.Errorf("app %s: products: %w", a.ID, err)
	}
	return a, nil
}

func (r *RedisStore) keyOf(ctx context.Context, id string) (KeyHash, error) {
	var h KeyHash
	s, err := r.c.Get(ctx, r.k("app", id)).Result()
	if errors.Is(err, redis.Nil) {
		return h, ErrNotFound
	}
	if err != nil {
		return h, fmt.Errorf("reading app %s from redis: %w", id, err)
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("app %s: stored key hash %q is malformed", id, s)
	}
	copy(h[:], b)
	return h, nil
}

func (r *RedisStore) App(ctx context.Context, id string) (App, error) {
	h, err := r.keyOf(ctx, id)
	if err != nil {
		return App{}, err
	}
	return r.AppByKey(ctx, h)
}

func (r *RedisStore) AppsByOwner(ctx context.Context, owner string) ([]App, error) {
	ids, err := r.c.SMembers(ctx, r.k("owner", owner)).Result()
	if err != nil {
		return nil, fmt.Errorf("listing apps of %s in redis: %w", owner, err)
	}
	apps := make([]App, 0, len(ids))
	for _, id := range ids {
		a, err := r.App(ctx, id)
		if err != nil {
			return nil, err
		}
		apps = append(apps, a)
	}
	sortApps(apps)
	return apps, nil
}

// revokeScript sets revoked once. KEYS: key:<hash>. ARGV: the time.
var revokeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSETNX', KEYS[1], 'revoked', ARGV[1])
return 1
`)

func (r *RedisStore) Revoke(ctx context.Context, id string, at time.Time) (App, error) {
	h, err := r.keyOf(ctx, id)
	if err != nil {
		return App{}, err
	}
	n, err := revokeScript.Run(ctx, r.c, []string{r.k("key", h.String())}, at.UTC().Format(time.RFC3339Nano)).Int()
	if err != nil {
		return App{}, fmt.Errorf("revoking app %s in redis: %w", id, err)
	}
	if n == 0 {
		return App{}, ErrNotFound
	}
	return r.AppByKey(ctx, h)
}

// takeScript counts a request in both windows only if both are under their
// limits. KEYS: minute counter, day counter. ARGV: minute limit, day limit,
// minute TTL ms, day TTL ms. Returns {allowed, minute count, day count}.
var takeScript = redis.NewScript(`
local m = tonumber(redis.call('GET', KEYS[1]) or '0')
local d = tonumber(redis.call('GET', KEYS[2]) or '0')
if m >= tonumber(ARGV[1]) or d >= tonumber(ARGV[2]) then
  return {0, m, d}
end
m = redis.call('INCR', KEYS[1])
if m == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
d = redis.call('INCR', KEYS[2])
if d == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return {1, m, d}
`)

// counterGrace keeps a counter a little past its window, so that a replica
// whose clock lags slightly still finds it.
const counterGrace = time.Minute

func (r *RedisStore) counterKeys(appID, product string, now time.Time) (mk, dk string, mTTL, dTTL time.Duration) {
	minStart, minEnd, dayStart, dayEnd := windows(now)
	mk = r.k("quota", appID, product, "m", strconv.FormatInt(minStart.Unix(), 10))
	dk = r.k("quota", appID, product, "d", strconv.FormatInt(dayStart.Unix(), 10))
	return mk, dk, minEnd.Sub(now) + counterGrace, dayEnd.Sub(now) + counterGrace
}

func (r *RedisStore) Take(ctx context.Context, appID, product string, q Quota, now time.Time) (Counts, error) {
	mk, dk, mTTL, dTTL := r.counterKeys(appID, product, now)
	res, err := takeScript.Run(ctx, r.c, []string{mk, dk},
		q.PerMinute, q.PerDay, mTTL.Milliseconds(), dTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return Counts{}, fmt.Errorf("counting quota in redis: %w", err)
	}
	if len(res) != 3 {
		return Counts{}, fmt.Errorf("counting quota in redis: the script answered %v", res)
	}
	return Counts{Allowed: res[0] == 1, Minute: res[1], Day: res[2]}, nil
}

func (r *RedisStore) Used(ctx context.Context, appID, product string, now time.Time) (int64, int64, error) {
	mk, dk, _, _ := r.counterKeys(appID, product, now)
	vals, err := r.c.MGet(ctx, mk, dk).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("reading quota from redis: %w", err)
	}
	var n [2]int64
	for i, v := range vals {
		if s, ok := v.(string); ok {
			if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
				return 0, 0, fmt.Errorf("reading quota from redis: counter %q: %w", s, err)
			}
		}
	}
	return n[0], n[1], nil
}

// usageScript adds one decision to a minute. KEYS: the minute's hash.
// ARGV: status field, latency µs, TTL ms.
var usageScript = redis.NewScript(`
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[1], 'latSumUs', ARGV[2])
local mx = tonumber(redis.call('HGET', KEYS[1], 'latMaxUs') or '0')
if tonumber(ARGV[2]) > mx then redis.call('HSET', KEYS[1], 'latMaxUs', ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

func (r *RedisStore) usageKey(appID string, minute time.Time) string {
	return r.k("usage", appID, strconv.FormatInt(minute.Unix(), 10))
}

func (r *RedisStore) RecordUsage(ctx context.Context, appID string, at time.Time, status int, latency time.Duration) error {
	minute := at.UTC().Truncate(time.Minute)
	// Kept until the minute is 24 hours old, counted from the minute's end.
	ttl := minute.Add(time.Minute + usageRetention).Sub(at)
	err := usageScript.Run(ctx, r.c, []string{r.usageKey(appID, minute)},
		"s"+strconv.Itoa(status), latency.Microseconds(), ttl.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("recording usage in redis: %w", err)
	}
	return nil
}

func (r *RedisStore) Usage(ctx context.Context, appID string, from, to time.Time) ([]UsageMinute, error) {
	from = from.UTC().Truncate(time.Minute)
	if oldest := to.Add(-usageRetention).UTC().Truncate(time.Minute); from.Before(oldest) {
		from = oldest
	}
	var cmds []*redis.MapStringStringCmd
	var mins []time.Time
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for m := from; m.Before(to); m = m.Add(time.Minute) {
			cmds = append(cmds, p.HGetAll(ctx, r.usageKey(appID, m)))
			mins = append(mins, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading usage from redis: %w", err)
	}
	var out []UsageMinute
	for i, cmd := range cmds {
		h := cmd.Val()
		if len(h) == 0 {
			continue
		}
		u := UsageMinute{Minute: mins[i], ByStatus: map[int]int64{}}
		for f, v := range h {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("reading usage from redis: field %s=%q: %w", f, v, err)
			}
			switch {
			case f == "n":
				u.Count = n
			case f == "latSumUs":
				u.LatencySum = time.Duration(n) * time.Microsecond
			case f == "latMaxUs":
				u.LatencyMax = time.Duration(n) * time.Microsecond
			case strings.HasPrefix(f, "s"):
				st, err := strconv.Atoi(f[1:])
				if err != nil {
					return nil, fmt.Errorf("reading usage from redis: field %q", f)
				}
				u.ByStatus[st] = n
			}
		}
		out = append(out, u)
	}
	return out, nil
}

func (r *RedisStore) Close() error { return r.c.Close() }
