// Package logging builds the slog loggers every component uses: JSON lines in
// the shape Cloud Logging reads (severity, message, trace correlation), so the
// same binary logs usefully on Cloud Run, on GKE and in a terminal.
package logging

import (
	"context"
	"io"
	"log/slog"
	"slices"
)

// Keys Cloud Logging lifts out of a JSON log line into the LogEntry.
// https://cloud.google.com/logging/docs/structured-logging#special-payload-fields
const (
	keyTrace        = "logging.googleapis.com/trace"
	keySpan         = "logging.googleapis.com/spanId"
	keyTraceSampled = "logging.googleapis.com/trace_sampled"
)

// New returns a JSON logger writing to w. projectID, when set, turns trace IDs
// found in the context (see WithTrace) into the fully qualified resource name
// Cloud Logging needs to correlate a line with its request trace.
func New(w io.Writer, level slog.Leveler, projectID string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: cloudShape})
	return slog.New(traceHandler{Handler: h, projectID: projectID})
}

// cloudShape renames slog's built-in keys to Cloud Logging's.
func cloudShape(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "message"
	case slog.LevelKey:
		a.Key = "severity"
		a.Value = slog.StringValue(severity(a.Value.Any().(slog.Level)))
	}
	return a
}

func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// Trace is the trace context of one request.
type Trace struct {
	TraceID string // 32 lowercase hex digits
	SpanID  string // as the incoming header gave it
	Sampled bool
}

type traceKey struct{}

// WithTrace returns a context whose log lines carry t.
func WithTrace(ctx context.Context, t Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// TraceFrom returns the trace stored by WithTrace, if any.
func TraceFrom(ctx context.Context) (Trace, bool) {
	t, ok := ctx.Value(traceKey{}).(Trace)
	return t, ok
}

type attrsKey struct{}

// WithAttrs returns a context whose log lines carry attrs, after any that
// ctx already carries: the request id and component of the request being
// served, on every line logged while serving it.
func WithAttrs(ctx context.Context, attrs ...slog.Attr) context.Context {
	old, _ := ctx.Value(attrsKey{}).([]slog.Attr)
	return context.WithValue(ctx, attrsKey{}, append(old[:len(old):len(old)], attrs...))
}

type traceHandler struct {
	slog.Handler
	projectID string
	// own are the top-level keys the logger already carries (Logger.With):
	// a context's attrs under the same keys are left out, so that a line
	// never holds one key twice (local/stack names each component's logger,
	// and the HTTP layer names the component of each request).
	own     []string
	grouped bool
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if t, ok := TraceFrom(ctx); ok && t.TraceID != "" {
		trace := t.TraceID
		if h.projectID != "" {
			trace = "projects/" + h.projectID + "/traces/" + t.TraceID
		}
		r.AddAttrs(slog.String(keyTrace, trace))
		if t.SpanID != "" {
			r.AddAttrs(slog.String(keySpan, t.SpanID))
		}
		r.AddAttrs(slog.Bool(keyTraceSampled, t.Sampled))
	}
	if as, ok := ctx.Value(attrsKey{}).([]slog.Attr); ok {
		for _, a := range as {
			if !slices.Contains(h.own, a.Key) {
				r.AddAttrs(a)
			}
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	own := h.own
	if !h.grouped {
		own = slices.Clip(own)
		for _, a := range as {
			own = append(own, a.Key)
		}
	}
	return traceHandler{Handler: h.Handler.WithAttrs(as), projectID: h.projectID, own: own, grouped: h.grouped}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{Handler: h.Handler.WithGroup(name), projectID: h.projectID, own: h.own, grouped: true}
}
