package serve

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
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

// signalledListener says when Run has accepted a connection and when the
// listener has closed: the points between which a request is accepted but
// not yet read.
type signalledListener struct {
	net.Listener
	accepted  chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *signalledListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- struct{}{}
	}
	return c, err
}

func (l *signalledListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.closed) })
	return err
}

// A client whose connection was accepted before shutdown, but whose request
// headers were still arriving, gets its answer (and Connection: close)
// rather than its connection closed unanswered, which net/http's Shutdown
// alone does to a request it reads after shutdown began.
func TestRunAnswersARequestStillArrivingWhenShutdownBegins(t *testing.T) {
	base, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &signalledListener{Listener: base, accepted: make(chan struct{}, 1), closed: make(chan struct{})}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "answered") })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Name: "test", Handler: h, Listener: ln, Grace: 5 * time.Second}) }()

	conn, err := net.Dial("tcp", base.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: test\r\n"); err != nil {
		t.Fatal(err)
	}
	<-ln.accepted
	cancel()
	<-ln.closed // new connections are refused from here on
	if _, err := io.WriteString(conn, "\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("a request whose headers ended after shutdown began: %v, want its answer", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "answered" || !resp.Close {
		t.Errorf("got %d %q close=%v, want 200 %q with Connection: close", resp.StatusCode, body, resp.Close, "answered")
	}
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after a clean shutdown, want nil", err)
	}
}

// TestAChunkedRequestIsTheLastOnItsConnection sends a request with both
// Content-Length and Transfer-Encoding and a second request pipelined after
// its chunked body: the handler sees one request, framed by its chunks, and
// the connection closes after its answer (see closeAfterChunkedRequest). A
// plain request keeps its connection.
func TestAChunkedRequestIsTheLastOnItsConnection(t *testing.T) {
	var seen atomic.Int32
	srv := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, string(b))
	}), slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	tests := []struct {
		name      string
		raw       string
		wantBody  string
		wantSeen  int32
		wantClose bool
	}{
		{"Content-Length with Transfer-Encoding, then a pipelined request",
			"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
			"hello", 1, true},
		{"a plain request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen.Store(0)
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.raw)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != tt.wantBody || resp.Close != tt.wantClose {
				t.Errorf("answer %q, closing %v; want %q, closing %v", body, resp.Close, tt.wantBody, tt.wantClose)
			}
			if tt.wantClose {
				if _, err := br.ReadByte(); err != io.EOF {
					t.Errorf("after the answer the connection gave %v, want EOF: the pipelined request was read", err)
				}
			}
			if n := seen.Load(); n != tt.wantSeen {
				t.Errorf("the handler saw %d requests, want %d", n, tt.wantSeen)
			}
		})
	}
}
