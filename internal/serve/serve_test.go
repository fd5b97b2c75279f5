package serve

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunFinishesInFlightRequestsOnShutdown(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})
	shutdownBegan := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Name: "test", Handler: h, Listener: ln, Grace: 5 * time.Second,
			OnShutdown: func() { close(shutdownBegan) }})
	}()

	type result struct {
		body string
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{string(b), err}
	}()

	<-started
	cancel()
	<-shutdownBegan
	// The in-flight request still completes after shutdown began.
	close(release)
	res := <-resc
	if res.err != nil || res.body != "finished" {
		t.Fatalf("in-flight request: got body %q, err %v; want %q, nil", res.body, res.err, "finished")
	}
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after a clean shutdown, want nil", err)
	}
}

func TestListenNamesTheBusyAddress(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(t.Context(), ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Listen on a busy port: got %v, want an error naming %s", err, ln.Addr())
	}
}

func TestDrainKeepsServingNewRequestsAfterShutdownBegins(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ready atomic.Bool
	ready.Store(true)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
		}
	})
	shutdownBegan := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Name: "test", Handler: h, Listener: ln, Drain: 5 * time.Second,
			OnShutdown: func() { ready.Store(false); close(shutdownBegan) }})
	}()
	cancel()
	<-shutdownBegan
	// During the drain a new connection still gets an answer: readiness
	// fails (503) instead of the connection being refused.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("a new request during the drain: %v, want an answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("during the drain: status %d, want 503 from the failing readiness", resp.StatusCode)
	}
}
