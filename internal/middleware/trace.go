package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"

	"github.com/acme/cloudrun-istio-gke/internal/logging"
)

// Trace context headers: W3C's, and Google's older one that Cloud Run and
// Google load balancers still set.
// https://www.w3.org/TR/trace-context/#traceparent-header
// https://cloud.google.com/trace/docs/trace-context#legacy-http-header
const (
	HeaderTraceparent       = "Traceparent"
	HeaderCloudTraceContext = "X-Cloud-Trace-Context"
)

// serverTrace is the trace a server logs a request under: the one the
// request came with, or a new one, so that the hops after this one share a
// trace id even when no load balancer started a trace. Its span id is the
// one the caller gave this hop, in the 16 hex digits Cloud Logging's spanId
// wants (X-Cloud-Trace-Context's is decimal).
// https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry (spanId)
func serverTrace(h http.Header) logging.Trace {
	t, ok := logging.TraceFromHeaders(h)
	if !ok {
		return logging.Trace{TraceID: newTraceID(), SpanID: newSpanID()}
	}
	t.SpanID = hexSpanID(t.SpanID)
	return t
}

// hexSpanID turns a span id as either header gives it into 16 hex digits,
// or a new one when there is none (or it is zero, which W3C forbids).
func hexSpanID(s string) string {
	if len(s) == 16 && s != "0000000000000000" && isLowerHex(s) {
		return s
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && n != 0 {
		var b [16]byte
		v := strconv.AppendUint(b[:0], n, 16)
		return "0000000000000000"[len(v):] + string(v)
	}
	return newSpanID()
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func newTraceID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

func newSpanID() string {
	var b [8]byte
	for b == [8]byte{} { // all zero is invalid
		rand.Read(b[:])
	}
	return hex.EncodeToString(b[:])
}

// PropagateHeaders sets, on the headers of a call to the next hop, the
// request id and trace of the request ctx belongs to: the same trace id and
// a new span id for this call, in both trace headers, so that the next hop
// logs under the same trace whichever header it reads. Transport does this
// for every call; use PropagateHeaders where a request is built without it.
func PropagateHeaders(ctx context.Context, h http.Header) {
	if id := RequestID(ctx); id != "" {
		h.Set(HeaderRequestID, id)
	}
	t, ok := logging.TraceFrom(ctx)
	if !ok || t.TraceID == "" {
		return
	}
	span := newSpanID()
	flags, opt := "-00", ";o=0"
	if t.Sampled {
		flags, opt = "-01", ";o=1"
	}
	h.Set(HeaderTraceparent, "00-"+t.TraceID+"-"+span+flags)
	n, _ := strconv.ParseUint(span, 16, 64)
	h.Set(HeaderCloudTraceContext, t.TraceID+"/"+strconv.FormatUint(n, 10)+opt)
}
