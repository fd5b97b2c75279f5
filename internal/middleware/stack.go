// Package middleware is the HTTP layer every server of this project runs
// behind, so that a request reads the same in every hop's logs: its request
// id, its trace context carried on to the next hop, panic recovery, a body
// limit, and one access log line in Cloud Logging's httpRequest shape with
// the same keys everywhere (keys.go).
//
// Echo servers install it with e.Use(middleware.Stack(cfg)...); a plain
// net/http server wraps its handler with Handler(cfg, h). Calls to the next
// hop go through Transport.
package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/labstack/echo/v4"
)

// DefaultBodyLimit bounds request bodies when Config.BodyLimit is zero: far
// above what any of our APIs take, far below what would hurt a server.
const DefaultBodyLimit = 1 << 20

// Config describes one server's layer.
type Config struct {
	// Component names the server in every line of its requests: "frontend",
	// "gateway", "backend", "identity".
	Component string
	// Logger writes the access log. It should come from logging.New, which
	// adds the trace, request id and component (and so knows the project id
	// that Cloud Logging's trace field needs).
	Logger *slog.Logger
	// BodyLimit bounds request bodies in bytes; larger ones get 413. Zero
	// means DefaultBodyLimit; negative means no limit (a proxy that streams
	// bodies, as Envoy does).
	BodyLimit int64
	// TrustRequestID decides whether an incoming X-Request-Id is adopted;
	// nil means TrustPrivateNetwork, which suits every hop here: the public
	// frontend makes its own, the gateway, backend and emulator adopt the
	// one their caller inside the network passes on.
	TrustRequestID TrustRequestID
	// QuietPaths are paths (health probes) whose successful answers are
	// logged at DEBUG: a kubelet probing every few seconds is not news
	// worth paying Cloud Logging for.
	QuietPaths []string
}

// Validate names the first setting that is wrong.
func (c Config) Validate() error {
	if c.Component == "" {
		return errors.New("middleware: Config.Component is required")
	}
	if c.Logger == nil {
		return errors.New("middleware: Config.Logger is required")
	}
	return nil
}

// layer is one server's configured layer, shared by the echo and net/http
// forms.
type layer struct {
	cfg       Config
	limit     int64 // < 0: none
	component slog.Attr
}

func newLayer(cfg Config) *layer {
	if err := cfg.Validate(); err != nil {
		// Config is written in code, not read from users: a mistake is a
		// programming error, as for regexp.MustCompile.
		panic(err)
	}
	l := &layer{cfg: cfg, limit: cfg.BodyLimit, component: slog.String(KeyComponent, cfg.Component)}
	if l.limit == 0 {
		l.limit = DefaultBodyLimit
	}
	return l
}

// begin gives r its request id (echoed in the response) and trace, in the
// context that handlers, their log lines and their calls to the next hop
// see.
func (l *layer) begin(w http.ResponseWriter, r *http.Request) (*http.Request, *state) {
	s := &state{id: requestIDFor(r, l.cfg.TrustRequestID), trace: serverTrace(r.Header)}
	w.Header().Set(HeaderRequestID, s.id)
	ctx := context.WithValue(r.Context(), stateKey{}, s)
	ctx = logging.WithTrace(ctx, s.trace)
	ctx = logging.WithAttrs(ctx, l.component, slog.String(KeyRequestID, s.id))
	return r.WithContext(ctx), s
}

// Stack is the layer as echo middleware, outermost first; install it with
// e.Use(middleware.Stack(cfg)...) before any other middleware, or with
// e.Pre(...) when the server has Pre middleware (CORS) it should cover.
// Errors that handlers return reach the server's HTTPErrorHandler here,
// before the access line is written, so that the line has the status the
// client got. It panics if cfg is invalid (see Config.Validate).
func Stack(cfg Config) []echo.MiddlewareFunc {
	l := newLayer(cfg)
	return []echo.MiddlewareFunc{l.echoRequest, l.echoRecover(), l.echoBodyLimit()}
}

func (l *layer) echoRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r, s := l.begin(c.Response(), c.Request())
		c.SetRequest(r)
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		res := c.Response()
		status := res.Status
		if !res.Committed {
			status = unanswered(r, status)
		}
		l.logAccess(r, s, status, res.Size, time.Since(start), err)
		return nil
	}
}

// Handler is the layer for a server built on net/http alone (the gateway,
// a reverse proxy). It panics if cfg is invalid (see Config.Validate).
func Handler(cfg Config, next http.Handler) http.Handler {
	l := newLayer(cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r, s := l.begin(w, r)
		rw := &responseWriter{ResponseWriter: w}
		defer func() {
			// After recovery: a panic is logged as the 500 it became.
			status := rw.status()
			switch {
			case rw.code == 0 && rw.aborted:
				status = statusNone // an HTTP/2 stream reset, a connection closed
			case rw.code == 0:
				status = unanswered(r, status)
			}
			l.logAccess(r, s, status, rw.size, time.Since(start), rw.err)
		}()
		defer l.recoverHTTP(rw, r)
		if !l.limitBody(rw, r) {
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// responseWriter remembers what the access log needs of a response.
type responseWriter struct {
	http.ResponseWriter
	code int
	size int64
	err  error // why the layer answered itself
	// aborted says the handler aborted with http.ErrAbortHandler.
	aborted bool
}

func (w *responseWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 { // 1xx are interim
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.size += int64(n)
	return n, err
}

func (w *responseWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach Flush and friends.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush is what httputil.ReverseProxy calls for streamed responses.
func (w *responseWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// StatusClientClosedRequest is logged for a request whose client went away
// before any answer was written (nginx's 499, which the gateway logged
// before this layer): net/http would otherwise report the 200 it writes to
// a closed connection.
const StatusClientClosedRequest = 499

// statusNone is logged for a response a handler aborted before answering
// (http.ErrAbortHandler: the stream is reset, the connection closed), as
// Envoy logs a response code of 0 when it sent none.
// https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#command-operators (%RESPONSE_CODE%)
const statusNone = 0

func unanswered(r *http.Request, status int) int {
	if r.Context().Err() != nil {
		return StatusClientClosedRequest
	}
	return status
}

func (l *layer) quiet(path string) bool { return slices.Contains(l.cfg.QuietPaths, path) }

// errorText is the most telling text of an error: the internal cause of an
// echo.HTTPError (what went wrong) beside its message (what the client was
// told).
func errorText(err error) string {
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		return err.Error()
	}
	if he.Internal != nil {
		return fmt.Sprintf("%v: %v", he.Message, he.Internal)
	}
	return fmt.Sprint(he.Message)
}
