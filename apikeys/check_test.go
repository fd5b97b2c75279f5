package apikeys

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
)

// answer is a CheckResponse reduced to what Envoy acts on.
type answer struct {
	ok        bool
	status    int               // the denied answer's status
	set       map[string]string // headers set on the upstream request (OK) or the answer (denied)
	remove    []string          // headers removed from the upstream request
	respAdd   map[string]string // headers added to the client's answer (OK)
	body      ErrorBody
	overwrite bool // every header is set with OVERWRITE_IF_EXISTS_OR_ADD
}

func reduce(t *testing.T, r *authv3.CheckResponse) answer {
	t.Helper()
	a := answer{set: map[string]string{}, respAdd: map[string]string{}, overwrite: true}
	collect := func(dst map[string]string, hs []*corev3.HeaderValueOption) {
		for _, h := range hs {
			dst[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || h.GetAppend() != nil {
				a.overwrite = false
			}
		}
	}
	a.ok = r.GetStatus().GetCode() == int32(codes.OK)
	if ok := r.GetOkResponse(); ok != nil {
		collect(a.set, ok.GetHeaders())
		collect(a.respAdd, ok.GetResponseHeadersToAdd())
		a.remove = ok.GetHeadersToRemove()
	}
	if d := r.GetDeniedResponse(); d != nil {
		if a.ok {
			t.Fatalf("status OK with a denied response: %v", r)
		}
		a.status = int(d.GetStatus().GetCode())
		collect(a.set, d.GetHeaders())
		if err := json.Unmarshal([]byte(d.GetBody()), &a.body); err != nil {
			t.Fatalf("denied body %q is not JSON: %v", d.GetBody(), err)
		}
	}
	return a
}

func TestCheckAnswersAsEnvoyExpects(t *testing.T) {
	store := NewMemoryStore()
	clock := &fixedClock{time.Date(2026, 12, 3, 12, 0, 30, 0, time.UTC)}
	s := newService(t, store, testCatalog(t, 3, 100), clock.Now)
	_, client := startGRPC(t, s)

	app, key := mustApp(t, s, "alice", "secure-message")
	_, reportsKey := mustApp(t, s, "alice", "reports")
	revokedApp, revokedKey := mustApp(t, s, "bob", "secure-message")
	if _, err := store.Revoke(context.Background(), revokedApp.ID, clock.t); err != nil {
		t.Fatal(err)
	}
	spentApp, spentKey := mustApp(t, s, "carol", "secure-message")
	for range 3 {
		if c, err := store.Take(context.Background(), spentApp.ID, "secure-message", Quota{3, 100}, clock.t); err != nil || !c.Allowed {
			t.Fatalf("using up the quota: %+v, %v", c, err)
		}
	}
	unknown, _ := newKey()

	type want struct {
		ok     bool
		status int
		app    string // x-api-app set upstream; "" means not set
		remove []string
		code   string // error code in the JSON body
	}
	tests := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		want    want
	}{
		{"a request without a key passes untouched, to the other policies", "GET", "/api/secure.json", nil,
			want{ok: true, remove: []string{"x-api-app"}}},
		{"a spoofed x-api-app without a key is stripped", "GET", "/api/secure.json",
			map[string]string{"x-api-app": "app_someone_else"}, want{ok: true, remove: []string{"x-api-app"}}},
		{"a valid key is allowed and its app named upstream", "GET", "/api/secure.json",
			map[string]string{"x-api-key": key}, want{ok: true, app: app.ID, remove: []string{"x-api-key"}}},
		{"a spoofed x-api-app beside a valid key is overwritten with the real app", "GET", "/api/secure.json?x=1",
			map[string]string{"x-api-key": key, "x-api-app": "app_someone_else"}, want{ok: true, app: app.ID, remove: []string{"x-api-key"}}},
		{"an unknown key is refused with 401", "GET", "/api/secure.json",
			map[string]string{"x-api-key": unknown}, want{status: 401, code: "unauthenticated"}},
		{"a malformed key is refused with 401", "GET", "/api/secure.json",
			map[string]string{"x-api-key": "not-a-key"}, want{status: 401, code: "unauthenticated"}},
		{"two keys are refused with 401", "GET", "/api/secure.json",
			map[string]string{"x-api-key": key + "," + reportsKey}, want{status: 401, code: "unauthenticated"}},
		{"a revoked key is refused with 401", "GET", "/api/secure.json",
			map[string]string{"x-api-key": revokedKey}, want{status: 401, code: "unauthenticated"}},
		{"a key for another product is refused with 403", "GET", "/api/secure.json",
			map[string]string{"x-api-key": reportsKey}, want{status: 403, code: "forbidden"}},
		{"a method the product does not cover is refused with 403", "DELETE", "/api/secure.json",
			map[string]string{"x-api-key": key}, want{status: 403, code: "forbidden"}},
		{"a path climbing out of the product's prefix is refused with 403", "GET", "/api/reports/../secure.json",
			map[string]string{"x-api-key": reportsKey}, want{status: 403, code: "forbidden"}},
		{"a key in the query string is not a key", "GET", "/api/secure.json?x-api-key=" + key, nil,
			want{ok: true, remove: []string{"x-api-app"}}},
		{"a key past its quota is refused with 429", "GET", "/api/secure.json",
			map[string]string{"x-api-key": spentKey}, want{status: 429, code: "quota_exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := client.Check(context.Background(), checkRequest(tt.method, tt.path, tt.headers))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			a := reduce(t, r)
			if a.ok != tt.want.ok || a.status != tt.want.status {
				t.Fatalf("got ok=%v status=%d, want ok=%v status=%d", a.ok, a.status, tt.want.ok, tt.want.status)
			}
			if !a.overwrite {
				t.Errorf("a header is not set with OVERWRITE_IF_EXISTS_OR_ADD: %v", r)
			}
			if tt.want.ok {
				if got := a.set[HeaderAPIApp]; got != tt.want.app {
					t.Errorf("x-api-app upstream: got %q, want %q", got, tt.want.app)
				}
				if !slices.Equal(a.remove, tt.want.remove) {
					t.Errorf("headers_to_remove: got %q, want %q", a.remove, tt.want.remove)
				}
				// Envoy removes after it sets: x-api-app in both would
				// drop the value we set.
				if a.set[HeaderAPIApp] != "" && slices.Contains(a.remove, HeaderAPIApp) {
					t.Errorf("x-api-app is both set and removed: Envoy would drop it")
				}
				return
			}
			if a.body.Error != tt.want.code || a.body.Message == "" {
				t.Errorf("body: got %+v, want error %q with a message", a.body, tt.want.code)
			}
			if a.set["content-type"] != "application/json" {
				t.Errorf("content-type: got %q, want application/json", a.set["content-type"])
			}
			if strings.Contains(r.GetDeniedResponse().GetBody(), key) {
				t.Errorf("the answer repeats the key")
			}
		})
	}
}

func TestQuotaHeaders(t *testing.T) {
	clock := &fixedClock{time.Date(2026, 12, 3, 12, 0, 30, 0, time.UTC)}
	s := newService(t, NewMemoryStore(), testCatalog(t, 2, 100), clock.Now)
	_, client := startGRPC(t, s)
	_, key := mustApp(t, s, "alice", "secure-message")
	check := func() answer {
		r, err := client.Check(context.Background(), checkRequest("GET", "/api/secure.json", map[string]string{"x-api-key": key}))
		if err != nil {
			t.Fatal(err)
		}
		return reduce(t, r)
	}
	tests := []struct {
		name                           string
		status                         int
		limit, remaining, reset, retry string
		headers                        func(answer) map[string]string
	}{
		{"the first request is told one is left this minute", 0, "2", "1", "30", "", func(a answer) map[string]string { return a.respAdd }},
		{"the second is told none is left", 0, "2", "0", "30", "", func(a answer) map[string]string { return a.respAdd }},
		{"the third is refused and told when to retry", 429, "2", "0", "30", "30", func(a answer) map[string]string { return a.set }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := check()
			if a.status != tt.status {
				t.Fatalf("status: got %d, want %d", a.status, tt.status)
			}
			h := tt.headers(a)
			for k, want := range map[string]string{"x-ratelimit-limit": tt.limit, "x-ratelimit-remaining": tt.remaining,
				"x-ratelimit-reset": tt.reset, "retry-after": tt.retry} {
				if h[k] != want {
					t.Errorf("%s: got %q, want %q (all: %v)", k, h[k], want, h)
				}
			}
		})
	}
	t.Run("the next minute the quota is back", func(t *testing.T) {
		clock.t = clock.t.Add(30 * time.Second)
		if a := check(); !a.ok {
			t.Fatalf("got status %d, want OK", a.status)
		}
	})
}

func TestRevocationBitesOnTheNextRequest(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			store := st.open(t)
			s := newService(t, store, testCatalog(t, 100, 1000), time.Now)
			_, client := startGRPC(t, s)
			app, key := mustApp(t, s, "alice", "secure-message")
			req := checkRequest("GET", "/api/secure.json", map[string]string{"x-api-key": key})
			if r, err := client.Check(context.Background(), req); err != nil || reduce(t, r).status != 0 {
				t.Fatalf("before revocation: got %v, %v; want OK", r, err)
			}
			if _, err := store.Revoke(context.Background(), app.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			r, err := client.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := reduce(t, r).status; got != http.StatusUnauthorized {
				t.Fatalf("after revocation: got %d, want 401", got)
			}
		})
	}
}

// TestCheckReadsRawHeaders: with encode_raw_headers Envoy sends a list that
// keeps repeated headers apart instead of the joined map.
func TestCheckReadsRawHeaders(t *testing.T) {
	s := newService(t, NewMemoryStore(), testCatalog(t, 100, 1000), time.Now)
	_, client := startGRPC(t, s)
	app, key := mustApp(t, s, "alice", "secure-message")
	_, other := mustApp(t, s, "alice", "secure-message")
	raw := func(keys ...string) *authv3.CheckRequest {
		hm := &corev3.HeaderMap{}
		for _, k := range keys {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: "x-api-key", RawValue: []byte(k)})
		}
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/api/secure.json", HeaderMap: hm}}}}
	}
	tests := []struct {
		name    string
		req     *authv3.CheckRequest
		status  int
		wantApp string
	}{
		{"one raw key is read", raw(key), 0, app.ID},
		{"two raw keys are refused", raw(key, other), 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := client.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			a := reduce(t, r)
			if a.status != tt.status || a.set[HeaderAPIApp] != tt.wantApp {
				t.Fatalf("got status %d, x-api-app %q; want %d, %q", a.status, a.set[HeaderAPIApp], tt.status, tt.wantApp)
			}
		})
	}
}

// TestAStoreThatFailsFailsClosed: with Redis unreachable a keyed request is
// refused with 503, while one without a key, which needs no store, passes.
func TestAStoreThatFailsFailsClosed(t *testing.T) {
	healthy := NewMemoryStore()
	s := newService(t, healthy, testCatalog(t, 100, 1000), time.Now)
	_, key := mustApp(t, s, "alice", "secure-message")
	down := NewRedisStore(redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		MaxRetries: -1, DialTimeout: time.Second}))
	t.Cleanup(func() { down.Close() })
	s = newService(t, down, testCatalog(t, 100, 1000), time.Now)
	_, client := startGRPC(t, s)
	for _, tt := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"a keyed request is refused with 503", map[string]string{"x-api-key": key}, 503},
		{"a request without a key still passes", nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := client.Check(context.Background(), checkRequest("GET", "/api/secure.json", tt.headers))
			if err != nil {
				t.Fatal(err)
			}
			a := reduce(t, r)
			if a.status != tt.status {
				t.Fatalf("got %d, want %d", a.status, tt.status)
			}
			if tt.status != 0 && a.body.Error != "unavailable" {
				t.Errorf("body: got %+v, want error unavailable", a.body)
			}
		})
	}
}
