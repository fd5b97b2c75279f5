package gateway

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Sources cited by the rows below (envoyproxy/envoy):
//
//	[hcm]     source/common/http/conn_manager_impl.cc ActiveStream::decodeHeaders (relative paths only: 404 absolute_path)
//	[util]    source/common/http/conn_manager_utility.cc maybeNormalizePath (a fragment is rejected: 400)
//	[frag]    https://www.envoyproxy.io/docs/envoy/latest/version_history/v1.19/v1.19.1 (http_reject_path_with_fragment)
//	[h1]      source/common/http/http1/codec_impl.cc and balsa_parser.cc (headers over the limit: 431, connection closed)
//	[h2]      source/common/http/http2/codec_impl.cc saveHeader (headers over the limit: the stream is reset)
//	[limit]   HttpConnectionManager.max_request_headers_kb, default 60 KiB
//	[count]   HttpProtocolOptions.max_headers_count, default 100 (431 for HTTP/1.x, a stream reset for HTTP/2)
//	[balsa]   source/common/http/http1/balsa_parser.cc (disallow_header_continuation_lines = false; CR and LF removed from values)

// TestEnvoysCodecChecksHappenBeforeTheFilters sends, over raw HTTP/1.1 and
// HTTP/2 connections, the requests net/http accepts but Envoy's codecs and
// connection manager refuse (or treat otherwise) before any filter runs.
func TestEnvoysCodecChecksHappenBeforeTheFilters(t *testing.T) {
	s := newStack(t, stackOptions{})
	tok := s.token(t)
	filler := func(n int) string { return strings.Repeat("a", n) }
	// A request line and Host of the size the rows use, so that the header
	// section lands where a row wants it: the filler makes up the rest.
	const h1Head = "GET /api/healthz HTTP/1.1\r\nHost: " + gatewayHost + "\r\n"
	h1Filler := func(total int) string {
		return "X-Filler: " + filler(total-len(h1Head)-len("X-Filler: \r\n\r\n")) + "\r\n"
	}

	// n header lines besides Host.
	h1Lines := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "X-H%d: v\r\n", i)
		}
		return b.String()
	}
	h2Fields := func(n int) [][2]string {
		f := [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", gatewayHost}, {":path", "/api/healthz"}}
		for i := range n {
			f = append(f, [2]string{fmt.Sprintf("x-h%d", i), "v"})
		}
		return f
	}

	t.Run("HTTP/1.1", func(t *testing.T) {
		tests := []struct {
			name, source string
			raw          string
			wantStatus   int
			wantBody     string
			wantClose    bool
			check        func(t *testing.T, body string)
		}{
			{name: "a header section 1 byte over 60 KiB is 431 with Envoy's body, and the connection closes", source: "[limit]; [h1]",
				raw: h1Head + h1Filler(maxRequestHeadersBytes+1) + "\r\n", wantStatus: 431, wantBody: "Request Header Fields Too Large", wantClose: true},
			{name: "a header section of exactly 60 KiB passes", source: "[limit]",
				raw: h1Head + h1Filler(maxRequestHeadersBytes) + "\r\n", wantStatus: 200},
			{name: "101 header lines are 431 with Envoy's body, and the connection closes", source: "[count]; [h1]",
				raw: h1Head + h1Lines(100) + "\r\n", wantStatus: 431, wantBody: "Request Header Fields Too Large", wantClose: true},
			{name: "100 header lines pass", source: "[count]",
				raw: h1Head + h1Lines(99) + "\r\n", wantStatus: 200},
			{name: "a # in the request line is 400 with an empty body, even on the open health check", source: "[util]; [frag]",
				raw: "GET /api/healthz#x HTTP/1.1\r\nHost: " + gatewayHost + "\r\n\r\n", wantStatus: 400},
			{name: "a # in the request line does not reach the backend as %23 with a valid token", source: "[util]; [frag]",
				raw: "GET /api/secure.json#/../healthz HTTP/1.1\r\nHost: " + gatewayHost + "\r\nAuthorization: Bearer " + tok + "\r\n\r\n", wantStatus: 400},
			{name: "a # after the query is 400 too", source: "[util]; [frag]",
				raw: "GET /api/healthz?a=b#x HTTP/1.1\r\nHost: " + gatewayHost + "\r\n\r\n", wantStatus: 400},
			{name: "an obs-folded header is accepted and unfolded, as Envoy's parser does", source: "[balsa]",
				raw: "GET /api/healthz HTTP/1.1\r\nHost: " + gatewayHost + "\r\nX-Folded: a\r\n b\r\n\r\n", wantStatus: 200,
				check: func(t *testing.T, body string) {
					var e echoed
					if err := json.Unmarshal([]byte(body), &e); err != nil {
						t.Fatal(err)
					}
					// Balsa drops the CR LF and keeps the continuation's
					// whitespace: "a" + " b". (net/http folds any run of
					// whitespace into one space, so only a one-space
					// continuation reads the same through both.)
					if got := e.Header.Values("X-Folded"); len(got) != 1 || got[0] != "a b" {
						t.Errorf("the upstream saw X-Folded %q; want [\"a b\"]", got)
					}
				}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				answers, closed := rawHTTP1(t, s, tt.raw)
				if len(answers) != 1 {
					t.Fatalf("%d answers %v; want 1 [%s]", len(answers), answers, tt.source)
				}
				a := answers[0]
				if a.status != tt.wantStatus {
					t.Fatalf("answered %d %q; want %d [%s]", a.status, a.body, tt.wantStatus, tt.source)
				}
				if tt.wantStatus != 200 && a.body != tt.wantBody {
					t.Errorf("body %q; want %q [%s]", a.body, tt.wantBody, tt.source)
				}
				if closed != tt.wantClose || a.announcedClose != tt.wantClose {
					t.Errorf("connection closed %v, announced %v; want %v [%s]", closed, a.announcedClose, tt.wantClose, tt.source)
				}
				if tt.check != nil {
					tt.check(t, a.body)
				}
			})
		}
	})

	t.Run("HTTP/2", func(t *testing.T) {
		pseudo := func(path string) [][2]string {
			return [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", gatewayHost}, {":path", path}}
		}
		// The pseudo-headers count towards the limit: the filler is the rest.
		h2Filler := func(total int) [][2]string {
			n := len(":methodGET:schemehttps:authority" + gatewayHost + ":path/api/healthz" + "x-filler")
			return append(pseudo("/api/healthz"), [2]string{"x-filler", filler(total - n)})
		}
		tests := []struct {
			name, source string
			fields       [][2]string
			wantReset    bool
			wantStatus   int
		}{
			{name: "a :path in absolute form is 404 with an empty body", source: "[hcm]",
				fields: pseudo("https://" + gatewayHost + "/api/healthz"), wantStatus: 404},
			{name: "a :path in absolute form with a valid token is 404 too", source: "[hcm]",
				fields: append(pseudo("https://"+gatewayHost+"/api/secure.json"), [2]string{"authorization", "Bearer " + tok}), wantStatus: 404},
			{name: "a # in :path is 400", source: "[util]; [frag]",
				fields: pseudo("/api/healthz#x"), wantStatus: 400},
			{name: "headers 1 byte over 60 KiB reset the stream", source: "[limit]; [h2]",
				fields: h2Filler(maxRequestHeadersBytes + 1), wantReset: true},
			{name: "101 fields, the pseudo-headers among them, reset the stream", source: "[count]; [h2]",
				fields: h2Fields(97), wantReset: true},
			{name: "100 fields pass", source: "[count]",
				fields: h2Fields(96), wantStatus: 200},
			{name: "headers of exactly 60 KiB pass", source: "[limit]",
				fields: h2Filler(maxRequestHeadersBytes), wantStatus: 200},
			{name: "an origin-form :path passes", source: "[hcm]",
				fields: pseudo("/api/healthz"), wantStatus: 200},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body, reset := rawHTTP2(t, s, tt.fields)
				if reset != tt.wantReset {
					t.Fatalf("stream reset %v (status %d %q); want reset %v [%s]", reset, status, body, tt.wantReset, tt.source)
				}
				if tt.wantReset {
					return
				}
				if status != tt.wantStatus {
					t.Fatalf("answered %d %q; want %d [%s]", status, body, tt.wantStatus, tt.source)
				}
				if status != 200 && body != "" {
					t.Errorf("body %q; want Envoy's empty local reply [%s]", body, tt.source)
				}
			})
		}
	})
}

// rawHTTP2 sends one HEADERS request with exactly fields (pseudo-headers
// included, in order) over a new mTLS HTTP/2 connection, and returns the
// answer's status and body, or reset when the gateway reset the stream.
func rawHTTP2(t *testing.T, s *stack, fields [][2]string) (status int, body string, reset bool) {
	t.Helper()
	cfg, err := openDir(t, s.pki.frontend).ClientConfig(gatewayHost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q; want h2", p)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range fields {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	// The default maximum frame size is 16 KiB: the rest goes in
	// CONTINUATION frames.
	const maxFrame = 16 << 10
	b := block.Bytes()
	first := b[:min(len(b), maxFrame)]
	b = b[len(first):]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true, EndHeaders: len(b) == 0}); err != nil {
		t.Fatal(err)
	}
	for len(b) > 0 {
		chunk := b[:min(len(b), maxFrame)]
		b = b[len(chunk):]
		if err := fr.WriteContinuation(1, len(b) == 0, chunk); err != nil {
			t.Fatal(err)
		}
	}
	dec := hpack.NewDecoder(4096, nil)
	var out bytes.Buffer
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) {
				t.Fatalf("the connection closed before stream 1 ended (status %d)", status)
			}
			t.Fatalf("reading frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			hfs, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, hf := range hfs {
				if hf.Name == ":status" {
					status, _ = strconv.Atoi(hf.Value)
				}
			}
			if f.StreamEnded() {
				return status, out.String(), false
			}
		case *http2.DataFrame:
			out.Write(f.Data())
			if f.StreamEnded() {
				return status, out.String(), false
			}
		case *http2.RSTStreamFrame:
			return status, out.String(), true
		case *http2.GoAwayFrame:
			t.Fatalf("the gateway sent GOAWAY (%v); want an answer or a reset of stream 1", f.ErrCode)
		}
	}
}
