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
		Handler:           closeAfterChunkedRequest(h),
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

// closeAfterChunkedRequest closes the connection once the answer to an
// HTTP/1.x request with a chunked body has been sent.
//
// A request with both Content-Length and Transfer-Encoding is the classic
// smuggling vector. Envoy refuses it with 400 (Http1ProtocolOptions.
// allow_chunked_length defaults to false). A net/http server cannot tell:
// net/http resolves the conflict while parsing, as RFC 9112 section 6.3
// allows (Transfer-Encoding wins, Content-Length is deleted from the header,
// transfer.go fixLength), and hands the handler a request indistinguishable
// from a plain chunked one. What it does not do is the other half of RFC
// 9112 section 6.1: "the server MUST close the connection after responding
// to such a request". Telling the two apart would mean parsing the raw
// header bytes a second time beside net/http's own parser; a second parser
// that disagrees with the first is exactly how smuggling happens, so none is
// written here.
//
// Instead every chunked HTTP/1.x request gets "Connection: close", which
// makes net/http close the connection after the response and read no
// further request from it (server.go closeAfterReply). With the body read by
// its chunked framing and nothing after it ever parsed as a request, there
// is no second interpretation for anyone to exploit; the answer is the
// handler's instead of Envoy's 400. The price is a new connection after a
// chunked upload, which none of this project's clients make. HTTP/2 has no
// Transfer-Encoding and is unaffected.
func closeAfterChunkedRequest(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}
