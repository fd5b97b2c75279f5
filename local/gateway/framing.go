package gateway

import "net/http"

// closeAfterChunkedRequest makes the connection close once the answer to an
// HTTP/1.x request with a chunked body has been sent.
//
// A request with both Content-Length and Transfer-Encoding is the classic
// smuggling vector. Envoy refuses it with 400 (Http1ProtocolOptions.
// allow_chunked_length defaults to false). The gateway cannot: net/http
// resolves the conflict while parsing, as RFC 9112 section 6.3 says a
// recipient may (Transfer-Encoding wins, Content-Length is deleted from the
// header, transfer.go fixLength), and hands the handler a request that is
// indistinguishable from a plain chunked one. What net/http does not do is
// the other half of RFC 9112 section 6.1: "the server MUST close the
// connection after responding to such a request". Telling the two apart
// would mean parsing the raw header bytes a second time, beside net/http's
// own parser, over the TLS stream; a second parser that disagrees with the
// first is exactly how smuggling happens, so the gateway does not try.
//
// Instead every chunked HTTP/1.x request gets "Connection: close", which
// makes net/http close the connection after the response and read no
// further request from it (server.go: closeAfterReply). With the body read
// by its chunked framing, Content-Length never forwarded upstream (the
// upstream request is framed afresh) and nothing after the body ever parsed
// as a request, there is no second interpretation for anyone to exploit;
// the answer is the route's instead of Envoy's 400. The price is a new
// connection after a chunked upload, which this API, whose requests carry
// no body, never makes. HTTP/2 has no Transfer-Encoding and is unaffected.
func closeAfterChunkedRequest(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
	}
}
