package idtoken

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"firebase.google.com/go/v4/auth"

	"github.com/acme/cloudrun-istio-gke/internal/clocktest"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

// TestRevokedUsersAreRefusedWithinTheCheckPeriod shows the bound
// Config.RevocationCheck promises: after an operator (or sign-out) revokes,
// disables or deletes a user, the token that was accepted before keeps
// working for at most the check period, and is refused from then on. The
// verifier's clock is a fake one; the emulator runs ten minutes behind the
// Admin SDK, so that a revocation (which the SDK stamps with its own clock)
// postdates the token without the test sleeping.
func TestRevokedUsersAreRefusedWithinTheCheckPeriod(t *testing.T) {
	const period = 30 * time.Second
	emulatorNow := func() time.Time { return time.Now().Add(-10 * time.Minute) }
	em, err := identity.New(identity.Config{ProjectID: project, StateDir: t.TempDir(), PasswordHashCost: 10, Now: emulatorNow})
	if err != nil {
		t.Fatal(err)
	}
	var lookups atomic.Int64
	h := em.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/accounts:lookup") {
			lookups.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e := &emulator{Emulator: em, host: srv.Listener.Addr().String()}
	t.Setenv(EmulatorHostEnv, e.host)
	admin := e.adminClient(t)

	tests := []struct {
		name   string
		change func(ctx context.Context, uid string) error // nil: nothing happens to the user
	}{
		{"a user whose tokens were revoked (sign-out)", func(ctx context.Context, uid string) error {
			return admin.RevokeRefreshTokens(ctx, uid)
		}},
		{"a user who was disabled", func(ctx context.Context, uid string) error {
			_, err := admin.UpdateUser(ctx, uid, (&auth.UserToUpdate{}).Disabled(true))
			return err
		}},
		{"a user who was deleted", func(ctx context.Context, uid string) error {
			return admin.DeleteUser(ctx, uid)
		}},
		{"a user nothing happened to", nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Now())
			v, err := New(t.Context(), Config{ProjectID: project, EmulatorHost: e.host, Now: clock.Now, RevocationCheck: period})
			if err != nil {
				t.Fatal(err)
			}
			uid := e.user(t, "user"+string(rune('a'+i))+"@example.com")
			tok := e.token(t, uid, emulatorNow())
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Fatalf("before anything happened: %v; want the token accepted", err)
			}
			if tt.change != nil {
				if err := tt.change(t.Context(), uid); err != nil {
					t.Fatal(err)
				}
			}

			clock.Advance(period - time.Second)
			before := lookups.Load()
			if _, err := v.Verify(t.Context(), tok); err != nil {
				t.Errorf("%v after the first check: %v; want the token still accepted from the cache", period-time.Second, err)
			}
			if n := lookups.Load() - before; n != 0 {
				t.Errorf("a repeat within the period looked the user up %d times; want none (the fast path)", n)
			}

			clock.Advance(time.Second)
			_, err = v.Verify(t.Context(), tok)
			switch {
			case tt.change == nil && err != nil:
				t.Errorf("%v after the first check, nothing changed: %v; want the token accepted", period, err)
			case tt.change != nil && !errors.Is(err, ErrInvalidToken):
				t.Errorf("%v after the first check, the change made before it: %v; want a refusal wrapping ErrInvalidToken", period, err)
			}
			if n := lookups.Load() - before; n != 1 {
				t.Errorf("once the period passed the user was looked up %d times; want exactly 1", n)
			}
		})
	}
}

// TestARevocationCheckThatCannotReachIdentityPlatformIsAnError keeps a failed
// lookup apart from a refusal: the caller answers 503, not 401, and never
// lets the request through.
func TestARevocationCheckThatCannotReachIdentityPlatformIsAnError(t *testing.T) {
	e := startEmulator(t)
	clock := clocktest.New(time.Now())
	v, err := New(t.Context(), Config{ProjectID: project, EmulatorHost: e.host, Now: clock.Now, RevocationCheck: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	uid := e.user(t, "ada@example.com")
	tok := e.token(t, uid, time.Now())
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	// The token is cached; only the user lookup goes out, and it fails.
	v.revoked.users = failingLookup{}
	clock.Advance(time.Second)
	_, err = v.Verify(t.Context(), tok)
	if err == nil || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify with the lookup failing: %v; want an error that is not ErrInvalidToken", err)
	}
}

type failingLookup struct{}

func (failingLookup) GetUser(context.Context, string) (*auth.UserRecord, error) {
	return nil, errors.New("connection refused")
}
