package gateway

import (
	"net/http"
	"strings"
)

// What Envoy refuses before any HTTP filter runs, and net/http lets through:
// the checks of its HTTP/1 and HTTP/2 codecs and of the connection manager's
// first look at a request. Each answer is Envoy's, cited where it is made.

// maxRequestHeadersBytes is HttpConnectionManager.max_request_headers_kb's
// default, 60 KiB, which Istio leaves alone
// (https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto).
// net/http's own limit (internal/serve: 64 KiB plus its read-buffer slack)
// is above it, so requests between the two are refused here, with Envoy's
// answer; beyond net/http's limit net/http answers 431 itself, with its own
// body.
const maxRequestHeadersBytes = 60 << 10

// maxRequestHeadersCount is HttpProtocolOptions.max_headers_count's default:
// "the default maximum number of request headers allowed is 100. Requests
// that exceed this limit will receive a 431 response for HTTP/1.x and cause a
// stream reset for HTTP/2"
// (https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/core/v3/protocol.proto).
// net/http has no such limit.
const maxRequestHeadersCount = 100

// Envoy's body for a local 431: the status text (http1/codec_impl.cc
// sendProtocolError sends CodeUtility::toString of the code).
const bodyHeadersTooLarge = "Request Header Fields Too Large"

// codecRefusal is Envoy's verdict on a request its codec or the connection
// manager refuses before the filter chain.
type codecRefusal struct {
	status int    // 0: reset the HTTP/2 stream without an answer
	body   string // "" for an empty local reply
	reason string // Envoy's response code details
	close  bool   // the connection closes after the answer
}

// refusedBeforeFilters reports what Envoy does with r before any filter
// runs, or nil when it goes on to the filters.
func refusedBeforeFilters(r *http.Request) *codecRefusal {
	if headerBytes(r) > maxRequestHeadersBytes || headerCount(r) > maxRequestHeadersCount {
		if r.ProtoMajor == 2 {
			// http2/codec_impl.cc saveHeader: over max_request_headers_kb the
			// stream is reset ("This will cause the library to reset/close
			// the stream"), details http2.too_many_headers.
			return &codecRefusal{reason: "http2.too_many_headers"}
		}
		// http1/codec_impl.cc (Balsa max_header_length, then
		// "headers size exceeds limit", for the size and for the count):
		// 431 RequestHeaderFieldsTooLarge as a protocol error, which also
		// closes the connection.
		return &codecRefusal{status: http.StatusRequestHeaderFieldsTooLarge, body: bodyHeadersTooLarge,
			reason: "http1.headers_too_large", close: true}
	}
	if r.Method == http.MethodConnect {
		return nil
	}
	// conn_manager_impl.cc ActiveStream::decodeHeaders: "Currently we only
	// support relative paths at the application layer": a :path that does
	// not start with "/" (HTTP/2's absolute form; HTTP/1's request line in
	// absolute form is split by the codec) is 404 with an empty body,
	// details absolute_path. net/http would take the path out of the URL
	// and route it.
	if r.ProtoMajor == 2 && !strings.HasPrefix(r.RequestURI, "/") {
		return &codecRefusal{status: http.StatusNotFound, reason: "absolute_path"}
	}
	// conn_manager_utility.cc maybeNormalizePath: a "#" in the path is
	// rejected (runtime guard envoy.reloadable_features.http_reject_path_with_fragment,
	// on by default since Envoy 1.19.1:
	// https://www.envoyproxy.io/docs/envoy/latest/version_history/v1.19/v1.19.1),
	// answered 400 with an empty body like any path normalization failure.
	// net/http keeps "#" in the path, which would reach the backend as %23.
	if strings.Contains(r.RequestURI, "#") {
		return &codecRefusal{status: http.StatusBadRequest, reason: "path_normalization_failed"}
	}
	return nil
}

// headerBytes is the size Envoy holds the request's headers against
// max_request_headers_kb. HTTP/1: the header section as sent, request line
// included (Balsa's max_header_length), rebuilt with one space after each
// colon since net/http keeps no other whitespace. HTTP/2: names and values
// of the header map, pseudo-headers included (HeaderMapImpl byteSize).
func headerBytes(r *http.Request) int {
	if r.ProtoMajor == 2 {
		n := len(":method") + len(r.Method) + len(":path") + len(r.RequestURI) +
			len(":authority") + len(r.Host) + len(":scheme") + len("https")
		for name, values := range r.Header {
			for _, v := range values {
				n += len(name) + len(v)
			}
		}
		return n
	}
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2 // request line
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for name, values := range r.Header {
		for _, v := range values {
			n += len(name) + 2 + len(v) + 2
		}
	}
	return n + 2 // the empty line that ends the section
}

// headerCount is the number of entries Envoy's header map holds for r: every
// header line (HTTP/1, Host included) or field (HTTP/2, the four
// pseudo-headers included). Envoy appends a repeated inline header (such as
// Authorization) to its first entry instead of adding one, so a request of
// more than 100 lines that repeats one may pass Envoy and not here.
func headerCount(r *http.Request) int {
	n := 0
	for _, values := range r.Header {
		n += len(values)
	}
	if r.ProtoMajor == 2 {
		return n + 4 // :method, :scheme, :authority, :path
	}
	if r.Host != "" {
		n++
	}
	return n
}
