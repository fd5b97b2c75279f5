package middleware

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// maxUserAgent bounds the user agent we log: a client must not make our
// log lines as large as it likes.
const maxUserAgent = 512

// logAccess writes the request's one access log line: LogEntry.httpRequest
// with its documented field names, severity by status, and what handlers
// added with Annotate. Trace, request id and component come from the
// request's context (see begin).
// https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry#httprequest
func (l *layer) logAccess(r *http.Request, s *state, status int, size int64, latency time.Duration, err error) {
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status < 400 && l.quiet(r.URL.Path):
		level = slog.LevelDebug
	}
	ctx := r.Context()
	if !l.cfg.Logger.Enabled(ctx, level) {
		return
	}
	ua := r.UserAgent()
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.Attr{Key: KeyHTTPRequest, Value: slog.GroupValue(
		slog.String("requestMethod", r.Method),
		slog.String("requestUrl", requestURL(r)),
		slog.Int("status", status),
		// int64 in the LogEntry's JSON is a string; the size is the body's.
		slog.String("responseSize", strconv.FormatInt(size, 10)),
		slog.String("latency", durationJSON(latency)),
		slog.String("remoteIp", r.RemoteAddr), // "can include port information"
		slog.String("userAgent", ua),
		slog.String("protocol", protocol(r)),
	)})
	if err != nil {
		attrs = append(attrs, slog.String(KeyError, errorText(err)))
	}
	attrs = append(attrs, s.annotations()...)
	l.cfg.Logger.LogAttrs(ctx, level, "request", attrs...)
}

// durationJSON writes d as a protobuf Duration in JSON: seconds with a
// fraction, then "s" ("0.001234s"), to the microsecond.
// https://protobuf.dev/programming-guides/json/ (Duration)
func durationJSON(d time.Duration) string {
	us := d.Microseconds()
	frac := strconv.FormatInt(1_000_000+us%1_000_000, 10)[1:] // six digits
	return strconv.FormatInt(us/1_000_000, 10) + "." + frac + "s"
}

// protocol names the protocol as the LogEntry examples do ("HTTP/1.1",
// "HTTP/2"); Go says "HTTP/2.0".
func protocol(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "HTTP/2"
	}
	return r.Proto
}
