package logging

import (
	"net/http"
	"strconv"
	"strings"
)

// TraceFromHeaders reads the W3C traceparent header, falling back to Google's
// X-Cloud-Trace-Context, which Cloud Run and Google load balancers still set.
// Malformed headers are ignored: a bad trace header must never fail a request.
func TraceFromHeaders(h http.Header) (Trace, bool) {
	if t, ok := parseTraceparent(h.Get("traceparent")); ok {
		return t, true
	}
	return parseCloudTraceContext(h.Get("X-Cloud-Trace-Context"))
}

// parseTraceparent reads "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>".
// https://www.w3.org/TR/trace-context/#traceparent-header
func parseTraceparent(v string) (Trace, bool) {
	parts := strings.Split(v, "-")
	if len(parts) != 4 || len(parts[0]) != 2 || parts[0] == "ff" ||
		!isHex(parts[1], 32) || !isHex(parts[2], 16) || !isHex(parts[3], 2) ||
		parts[1] == strings.Repeat("0", 32) || parts[2] == strings.Repeat("0", 16) {
		return Trace{}, false
	}
	flags, _ := strconv.ParseUint(parts[3], 16, 8)
	return Trace{TraceID: parts[1], SpanID: parts[2], Sampled: flags&1 == 1}, true
}

// parseCloudTraceContext reads "TRACE_ID/SPAN_ID;o=OPTIONS" where SPAN_ID is
// decimal and both the span and the options are optional.
// https://cloud.google.com/trace/docs/trace-context#legacy-http-header
func parseCloudTraceContext(v string) (Trace, bool) {
	traceID, rest, _ := strings.Cut(v, "/")
	traceID = strings.ToLower(traceID)
	if !isHex(traceID, 32) {
		return Trace{}, false
	}
	t := Trace{TraceID: traceID}
	span, opts, _ := strings.Cut(rest, ";")
	if _, err := strconv.ParseUint(span, 10, 64); err == nil {
		t.SpanID = span
	}
	t.Sampled = opts == "o=1"
	return t, true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
