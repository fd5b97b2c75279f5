// Package serve runs an HTTP server with the lifecycle every component of this
// project shares: bounded timeouts, a listener the caller binds (so tests and
// devstack can use port 0 and learn the address), and a graceful shutdown when
// the context ends, finishing in-flight requests within a grace period.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultGrace is how long in-flight requests get to finish after shutdown
// starts. Cloud Run and Kubernetes both allow 10 s between SIGTERM and SIGKILL
// by default; we stay under that.
const DefaultGrace = 8 * time.Second

// Options describes one server. Handler and Listener are required.
type Options struct {
	Name     string       // for logs: "backend", "gateway", ...
	Handler  http.Handler // the whole surface of the server
	Listener net.Listener // already bound; Run closes it
	// TLS, when set, makes the server speak TLS on Listener with this config.
	TLS *tls.Config
	// Grace bounds the graceful shutdown; zero means DefaultGrace.
	Grace  time.Duration
	Logger *slog.Logger
	// OnShutdown runs as soon as shutdown begins, before in-flight requests
	// drain: the place to make readiness checks fail.
	OnShutdown func()
	// Drain keeps accepting new requests for this long after OnShutdown, so
	// that a kubelet sees readiness fail and the endpoint is removed before
	// the listener closes; without it, requests routed in that window are
	// refused. Zero closes the listener at once (Cloud Run, local runs).
	Drain time.Duration
}

// Listen binds addr and names the address in its error, so that a busy port
// reads as one clear line.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ln, nil
}

// NewServer returns an http.Server with the timeouts every server here uses:
// slow or idle clients cannot hold connections open for ever.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Run serves until ctx ends, then shuts down gracefully. It returns nil after
// a clean shutdown and the serving or shutdown error otherwise.
func Run(ctx context.Context, o Options) error {
	if o.Handler == nil || o.Listener == nil {
		return errors.New("serve: Handler and Listener are required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	grace := o.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	srv := NewServer(o.Handler, log)
	srv.TLSConfig = o.TLS
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	fresh := &freshConns{since: map[net.Conn]time.Time{}, changed: make(chan struct{})}
	srv.ConnState = fresh.track

	errc := make(chan error, 1)
	go func() {
		var err error
		if o.TLS != nil {
			err = srv.ServeTLS(o.Listener, "", "")
		} else {
			err = srv.Serve(o.Listener)
		}
		errc <- err
	}()

	select {
	case err := <-errc:
		return fmt.Errorf("%s: serving on %s: %w", o.Name, o.Listener.Addr(), err)
	case <-ctx.Done():
	}

	log.Info("shutting down", "component", o.Name, "grace", grace.String())
	if o.OnShutdown != nil {
		o.OnShutdown()
	}
	if o.Drain > 0 {
		t := time.NewTimer(o.Drain)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return fmt.Errorf("%s: serving on %s: %w", o.Name, o.Listener.Addr(), err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	// Shutdown closes unanswered a connection whose request it reads after
	// shutdown began (net/http, go.dev/issue/65802): a client that connected
	// just before, or was still sending its headers, would see EOF and could
	// not tell whether it was served. So refuse new connections first, have
	// every response close its connection, and give each connection already
	// accepted its first request, then shut down.
	o.Listener.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%s: serving on %s: %w", o.Name, o.Listener.Addr(), err)
	}
	srv.SetKeepAlivesEnabled(false)
	fresh.settle(sctx)
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
		return fmt.Errorf("%s: graceful shutdown: %w", o.Name, err)
	}
	log.Info("stopped", "component", o.Name)
	return nil
}

// freshConnWait is how long a connection accepted before shutdown may take
// to send its first request: net/http's Shutdown treats one that has sent
// nothing for as long as idle.
const freshConnWait = 5 * time.Second

// freshConns tracks the connections whose first request has not been read
// yet (http.StateNew), for the shutdown to wait for.
type freshConns struct {
	mu      sync.Mutex
	since   map[net.Conn]time.Time
	changed chan struct{} // closed and replaced when one leaves StateNew
}

func (f *freshConns) track(c net.Conn, state http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state == http.StateNew {
		f.since[c] = time.Now()
		return
	}
	if _, ok := f.since[c]; ok {
		delete(f.since, c)
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

// settle waits until no connection younger than freshConnWait is still
// waiting for its first request, or ctx ends.
func (f *freshConns) settle(ctx context.Context) {
	for {
		f.mu.Lock()
		var last time.Time
		for _, t := range f.since {
			if t.After(last) {
				last = t
			}
		}
		changed := f.changed
		f.mu.Unlock()
		wait := time.Until(last.Add(freshConnWait))
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}
