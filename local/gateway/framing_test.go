package gateway

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// framed is what the upstream saw of one request's framing.
type framed struct {
	method, path     string
	contentLength    int64
	transferEncoding []string
	clHeader         string // the Content-Length header, "" when absent
	body             string
}

// framingRecorder is an upstream that records the framing of every request.
type framingRecorder struct{ seen chan framed }

func (rec framingRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.seen <- framed{r.Method, r.URL.Path, r.ContentLength, r.TransferEncoding, strings.Join(r.Header.Values("Content-Length"), ","), string(b)}
	io.WriteString(w, "ok")
}

// TestChunkedRequestsCloseTheConnection is the gateway's answer to a request
// with both Content-Length and Transfer-Encoding (see internal/serve closeAfterChunkedRequest): chunked
// framing wins, Content-Length never reaches the upstream, and the
// connection closes after the answer, so bytes after the chunked body never
// run as a request of their own.
func TestChunkedRequestsCloseTheConnection(t *testing.T) {
	rec := framingRecorder{seen: make(chan framed, 8)}
	s := newStack(t, stackOptions{upstream: rec})
	// The second request is open to anyone (/api/healthz), so only a closed
	// connection can keep it from the upstream.
	const pipelined = "GET /api/healthz HTTP/1.1\r\nHost: " + gatewayHost + "\r\n\r\n"
	tests := []struct {
		name string
		doc  string
		raw  string
		// wantAnswers is how many responses come back before the
		// connection closes; wantSeen what the upstream got, in order.
		wantAnswers int
		wantClose   bool
		wantSeen    []framed
	}{
		{
			name: "Content-Length with Transfer-Encoding: the body is read as chunked, Content-Length is not forwarded, and the connection closes",
			doc:  "RFC 9112 sections 6.1 and 6.3; net/http transfer.go fixLength",
			// Read by Content-Length, the body would be "5\r\nh" and the rest
			// a malformed request; read as chunked it is "hello".
			raw: "POST /api/healthz HTTP/1.1\r\nHost: " + gatewayHost + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"5\r\nhello\r\n0\r\n\r\n" + pipelined,
			wantAnswers: 1, wantClose: true,
			wantSeen: []framed{{method: "POST", path: "/api/healthz", contentLength: -1, transferEncoding: []string{"chunked"}, body: "hello"}},
		},
		{
			name: "Transfer-Encoding before Content-Length is the same request",
			doc:  "RFC 9112 section 6.3",
			raw: "POST /api/healthz HTTP/1.1\r\nHost: " + gatewayHost + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n" +
				"0\r\n\r\n" + pipelined,
			wantAnswers: 1, wantClose: true,
			wantSeen: []framed{{method: "POST", path: "/api/healthz", contentLength: -1, transferEncoding: []string{"chunked"}}},
		},
		{
			name:        "a chunked request without Content-Length closes the connection too, since the two look the same once parsed",
			doc:         "internal/serve closeAfterChunkedRequest",
			raw:         "POST /api/healthz HTTP/1.1\r\nHost: " + gatewayHost + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + pipelined,
			wantAnswers: 1, wantClose: true,
			wantSeen: []framed{{method: "POST", path: "/api/healthz", contentLength: -1, transferEncoding: []string{"chunked"}}},
		},
		{
			name: "requests without a chunked body keep the connection for the next one",
			doc:  "RFC 9112 section 9.3 (persistence)",
			raw: "POST /api/healthz HTTP/1.1\r\nHost: " + gatewayHost + "\r\nContent-Length: 5\r\n\r\nhello" +
				pipelined,
			wantAnswers: 2, wantClose: false,
			wantSeen: []framed{
				{method: "POST", path: "/api/healthz", contentLength: 5, clHeader: "5", body: "hello"},
				{method: "GET", path: "/api/healthz"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for len(rec.seen) > 0 { // what a failed row left behind
				<-rec.seen
			}
			answers, closed := rawHTTP1(t, s, tt.raw)
			if len(answers) != tt.wantAnswers {
				t.Fatalf("%d answers %v; want %d [%s]", len(answers), answers, tt.wantAnswers, tt.doc)
			}
			for i, a := range answers {
				if a.status != http.StatusOK || a.body != "ok" {
					t.Errorf("answer %d: %d %q; want the upstream's 200 \"ok\"", i, a.status, a.body)
				}
			}
			if last := answers[len(answers)-1]; closed != tt.wantClose || last.announcedClose != tt.wantClose {
				t.Errorf("connection closed %v, announced by Connection: close %v; want %v [%s]",
					closed, last.announcedClose, tt.wantClose, tt.doc)
			}
			for i, want := range tt.wantSeen {
				var got framed
				select {
				case got = <-rec.seen:
				case <-time.After(5 * time.Second):
					t.Fatalf("the upstream saw %d requests; want %d", i, len(tt.wantSeen))
				}
				if got.method != want.method || got.path != want.path || got.contentLength != want.contentLength ||
					strings.Join(got.transferEncoding, ",") != strings.Join(want.transferEncoding, ",") ||
					got.clHeader != want.clHeader || got.body != want.body {
					t.Errorf("upstream request %d: %+v; want %+v", i, got, want)
				}
			}
			select {
			case extra := <-rec.seen:
				t.Errorf("the upstream also saw %+v; want nothing after the connection closed", extra)
			default:
			}
		})
	}
}

// answer is one response read off the wire.
type answer struct {
	status         int
	body           string
	announcedClose bool // Connection: close, which http.ReadResponse turns into Response.Close
}

// rawHTTP1 writes raw over a new mTLS connection speaking HTTP/1.1 only,
// and returns the answers read until the gateway closes the connection, and
// whether it did (rather than keep it open and idle for a second).
func rawHTTP1(t *testing.T, s *stack, raw string) ([]answer, bool) {
	t.Helper()
	cfg, err := openDir(t, s.pki.frontend).ClientConfig(gatewayHost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []answer
	for {
		// The upstream answers at once: a second of silence means the
		// gateway keeps the connection open, waiting for another request.
		conn.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(br, nil)
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return out, true
		case errors.Is(err, os.ErrDeadlineExceeded):
			return out, false
		case err != nil:
			t.Fatalf("reading answer %d: %v", len(out)+1, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("reading answer %d's body: %v", len(out)+1, err)
		}
		out = append(out, answer{resp.StatusCode, string(b), resp.Close})
	}
}
