package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"

	"github.com/acme/cloudrun-istio-gke/local/identity"
)

func TestRunRefusesBadConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"help is not an error to report", []string{"-h"}, nil, flag.ErrHelp.Error()},
		{"a missing project is named", nil, nil, "ProjectID is required"},
		{"an emulator host only in the injected environment is refused", []string{"-project", "demo-acme"},
			map[string]string{"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:1"}, "process environment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", "")
			err := run(t.Context(), tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestSIGTERMFinishesTheInFlightRequest runs the command as main does and
// sends the test process a real SIGTERM while a request is in flight: the
// backend is waiting on the emulator's user lookup, which the test holds.
func TestSIGTERMFinishesTheInFlightRequest(t *testing.T) {
	em, err := identity.New(identity.Config{ProjectID: "demo-acme", StateDir: t.TempDir(), PasswordHashCost: 10})
	if err != nil {
		t.Fatal(err)
	}
	uid, err := em.EnsureUser(t.Context(), "alice@example.com", "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	lookupStarted, releaseLookup := make(chan struct{}), make(chan struct{})
	var holdOnce sync.Once
	var armed atomic.Bool // set once the test's own setup calls are done
	emHandler := em.Handler()
	emSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only the first lookup is held; the revocation check looks the
		// user up once more after it.
		if strings.HasSuffix(r.URL.Path, "/accounts:lookup") && armed.Load() {
			holdOnce.Do(func() {
				close(lookupStarted)
				<-releaseLookup
			})
		}
		emHandler.ServeHTTP(w, r)
	}))
	defer emSrv.Close()
	host := emSrv.Listener.Addr().String()
	t.Setenv("FIREBASE_AUTH_EMULATOR_HOST", host)
	// The backend serves only verified emails.
	app, err := firebase.NewApp(t.Context(), &firebase.Config{ProjectID: "demo-acme"})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := app.Auth(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateUser(t.Context(), uid, (&auth.UserToUpdate{}).EmailVerified(true)); err != nil {
		t.Fatal(err)
	}
	tok, err := em.IDTokenFor(t.Context(), uid, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)

	ctx, stop := signal.NotifyContext(t.Context(), syscall.SIGTERM)
	defer stop()
	logR, logW := io.Pipe()
	env := map[string]string{"FIREBASE_AUTH_EMULATOR_HOST": host, "GOOGLE_CLOUD_PROJECT": "demo-acme"}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, logW)
		logW.CloseWithError(errors.New("run returned"))
		done <- err
	}()

	// Log lines arrive in order; the address comes with "backend listening".
	lines := make(chan map[string]any, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(logR)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
	}()
	var addr string
	for l := range lines {
		if l["message"] == "backend listening" {
			addr = l["addr"].(string)
			break
		}
	}
	if addr == "" {
		t.Fatalf("run ended before listening: %v", <-done)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/secure.json", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- result{resp.StatusCode, string(b), err}
	}()
	<-lookupStarted

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		if l["message"] == "shutting down" {
			break
		}
	}
	close(releaseLookup)

	res := <-inflight
	if res.err != nil || res.status != 200 || !strings.Contains(res.body, `"uid":"`+uid+`"`) {
		t.Fatalf("in-flight request across SIGTERM: got %d %q %v, want 200 with uid %s", res.status, res.body, res.err, uid)
	}
	if err := <-done; err != nil {
		t.Fatalf("run after SIGTERM: %v, want nil", err)
	}
	var stopped bool
	for l := range lines {
		stopped = stopped || l["message"] == "stopped"
	}
	if !stopped {
		t.Errorf("no \"stopped\" log line after a graceful shutdown")
	}
}
