package gateway

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/acme/cloudrun-istio-gke/internal/tokencache"
	"github.com/acme/cloudrun-istio-gke/local/gateway/authn"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

// TestXFCCIsTheGatewaysOwn checks the gateway's SANITIZE_SET: the backend
// sees exactly one x-forwarded-client-cert, built from the certificate the
// client presented, whatever the client sent under that name.
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert
func TestXFCCIsTheGatewaysOwn(t *testing.T) {
	s := newStack(t, stackOptions{})
	leaf := readLeaf(t, filepath.Join(s.pki.frontend, "tls.crt"))
	sum := sha256.Sum256(leaf.Raw)
	want := strings.Join([]string{
		"Hash=" + hex.EncodeToString(sum[:]),
		`Cert="` + url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))) + `"`,
		`Subject="` + leaf.Subject.String() + `"`,
		"URI=" + pki.DefaultClientURI,
	}, ";")

	tests := []struct {
		name string
		sent []string // the client's own x-forwarded-client-cert lines
	}{
		{"a client that sends none gets its certificate described", nil},
		{"a client claiming another workload's identity is not believed", []string{"By=spiffe://acme.internal/ns/istio-ingress/sa/gw;URI=spiffe://acme.internal/ns/admin/sa/admin"}},
		{"a client appending to a forged chain has the whole chain replaced", []string{"URI=spiffe://evil", "Hash=00;URI=spiffe://acme.internal/ns/frontend/sa/frontend"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{headerXFCC: tt.sent}
			got, err := s.do(t, s.client, newRequest(t, "GET", "/api/healthz", h))
			if err != nil {
				t.Fatal(err)
			}
			var e echoed
			if err := json.Unmarshal([]byte(got.body), &e); err != nil {
				t.Fatalf("upstream answer %d %q: %v", got.status, got.body, err)
			}
			if xfcc := e.Header.Values(headerXFCC); len(xfcc) != 1 || xfcc[0] != want {
				t.Errorf("backend got x-forwarded-client-cert %q\nwant exactly [%q]", xfcc, want)
			}
		})
	}
}

func readLeaf(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUpstreamServiceTimeIsTheGatewaysMeasure checks the router's
// x-envoy-upstream-service-time: whole milliseconds on every answer the
// backend gave, the gateway's own figure rather than one the backend sent,
// and none on the gateway's local replies.
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter#x-envoy-upstream-service-time
func TestUpstreamServiceTimeIsTheGatewaysMeasure(t *testing.T) {
	const forged = "987654321"
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(headerUpstreamServiceTime, forged)
		w.Write([]byte("ok"))
	})
	s := newStack(t, stackOptions{upstream: upstream})
	tests := []struct {
		name     string
		path     string
		wantTime bool
	}{
		{"the backend's answer carries the gateway's measure, not the backend's header", "/api/healthz", true},
		{"a local reply (RBAC denied) carries none", "/api/secure.json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.do(t, s.client, newRequest(t, "GET", tt.path, nil))
			if err != nil {
				t.Fatal(err)
			}
			v := got.header.Values(headerUpstreamServiceTime)
			if !tt.wantTime {
				if len(v) != 0 {
					t.Fatalf("GET %s (%d): x-envoy-upstream-service-time %q, want none on a local reply", tt.path, got.status, v)
				}
				return
			}
			if len(v) != 1 || v[0] == forged {
				t.Fatalf("GET %s: x-envoy-upstream-service-time %q, want one value of the gateway's own", tt.path, v)
			}
			if ms, err := strconv.ParseUint(v[0], 10, 64); err != nil {
				t.Fatalf("x-envoy-upstream-service-time %q: want whole milliseconds: %v (%d)", v[0], err, ms)
			}
		})
	}
}

// BenchmarkSanitizeSetXFCC is the per-request cost of describing the
// client certificate (SHA-256, PEM, URL-escaping), built every time and
// from the gateway's per-certificate cache, side by side. Run:
//
//	go test ./local/gateway -run '^$' -bench SanitizeSetXFCC -count 5
func BenchmarkSanitizeSetXFCC(b *testing.B) {
	leaf := readLeaf(b, filepath.Join(devPKI(b).FrontendDir, "tls.crt"))
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	for _, bc := range []struct {
		name  string
		known *tokencache.Cache[string]
	}{
		{"built", nil},
		{"cached", tokencache.New[string](authn.DefaultCacheSize)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := http.Header{headerXFCC: {"URI=spiffe://evil"}}
			b.ReportAllocs()
			for b.Loop() {
				sanitizeSetXFCC(h, cs, bc.known)
			}
		})
	}
}

func TestEachCertificateGetsItsOwnXFCCFromTheCache(t *testing.T) {
	pki := devPKI(t)
	known := tokencache.New[string](authn.DefaultCacheSize)
	for _, dir := range []string{pki.FrontendDir, pki.GatewayDir, pki.FrontendDir} {
		leaf := readLeaf(t, filepath.Join(dir, "tls.crt"))
		h := http.Header{headerXFCC: {"URI=spiffe://evil"}}
		sanitizeSetXFCC(h, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}, known)
		if got, want := h.Get(headerXFCC), xfccElement(leaf); got != want {
			t.Fatalf("XFCC for %s's certificate %q; want its own element %q", filepath.Base(dir), got, want)
		}
	}
	if known.Len() != 2 {
		t.Errorf("cache holds %d elements after two certificates, the first twice; want 2", known.Len())
	}
}

func TestXFCCIsRemovedWithoutAClientCertificate(t *testing.T) {
	// SANITIZE_SET on a connection without a client certificate (plain
	// HTTP, or TLS without one): Envoy removes the header.
	for _, tt := range []struct {
		name string
		cs   *tls.ConnectionState
	}{
		{"plain HTTP", nil},
		{"TLS without a client certificate", &tls.ConnectionState{}},
	} {
		t.Run("over "+tt.name+" a client-sent XFCC is removed", func(t *testing.T) {
			h := http.Header{headerXFCC: {"URI=spiffe://acme.internal/ns/frontend/sa/frontend"}}
			sanitizeSetXFCC(h, tt.cs, nil)
			if v, ok := h[headerXFCC]; ok {
				t.Fatalf("x-forwarded-client-cert %q left in place; want it removed", v)
			}
		})
	}
}
