package middleware

import (
	"context"
	"log/slog"
	"sync"

	"github.com/acme/cloudrun-istio-gke/internal/logging"
)

// state is what the layer knows of the request being served.
type state struct {
	id    string
	trace logging.Trace

	mu    sync.Mutex
	attrs []slog.Attr // added by handlers, for the access log line
}

type stateKey struct{}

func stateFrom(ctx context.Context) *state {
	s, _ := ctx.Value(stateKey{}).(*state)
	return s
}

// RequestID is the id of the request ctx belongs to, or "" outside one.
func RequestID(ctx context.Context) string {
	if s := stateFrom(ctx); s != nil {
		return s.id
	}
	return ""
}

// Annotate adds attrs to the access log line of the request ctx belongs to:
// how the request was decided (KeyReason), by whom (KeyPrincipal), ... so
// that the one line per request tells its whole story. Outside a request it
// does nothing.
func Annotate(ctx context.Context, attrs ...slog.Attr) {
	s := stateFrom(ctx)
	if s == nil {
		return
	}
	s.mu.Lock()
	s.attrs = append(s.attrs, attrs...)
	s.mu.Unlock()
}

func (s *state) annotations() []slog.Attr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attrs
}
