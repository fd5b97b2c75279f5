package frontend

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/hopfacts"
	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
)

func TestSignedInPageTellsTheBrowserEachHopsTime(t *testing.T) {
	// The fake gateway answers as Envoy does, with
	// x-envoy-upstream-service-time: 1, and reports nothing verified.
	s := newStack(t)
	session, _ := s.signIn("ada@example.com")
	resp, body := s.get("/", session)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / signed in: got %d, want 200", resp.StatusCode)
	}
	st := resp.Header.Values("Server-Timing")
	if _, ok := hopfacts.ServerTimingDur(st, "backend-call"); !ok {
		t.Errorf("Server-Timing %q: want the frontend's backend-call metric", st)
	}
	if d, ok := hopfacts.ServerTimingDur(st, "gateway"); !ok || d != time.Millisecond {
		t.Errorf("Server-Timing %q: want gateway;dur=1 from x-envoy-upstream-service-time", st)
	}
	if _, ok := hopfacts.ServerTimingDur(st, "backend"); ok {
		t.Errorf("Server-Timing %q: the backend reported no time, so none may be shown", st)
	}
	panel := htmltest.ByID(htmltest.Parse(t, body), "request-path")
	if panel == nil {
		t.Fatalf("the signed-in page has no #request-path panel")
	}
	text := htmltest.Text(panel)
	for _, want := range []string{"Gateway → backend", "1 ms", "Not reported by the backend.", "Not reported by the gateway."} {
		if !strings.Contains(text, want) {
			t.Errorf("panel %q: want %q", text, want)
		}
	}
}

func TestHopsAreReadOnlyFromWhatTheAnswerSaid(t *testing.T) {
	exp := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	reported := http.Header{}
	hopfacts.Report{Token: hopfacts.Token{Issuer: "iss", Subject: "sub", Audience: "aud", Expires: exp},
		ClientCert: hopfacts.ClientCert{URI: "spiffe://acme.internal/ns/frontend/sa/frontend", Hash: "ab"}}.Write(reported)
	reported.Set("X-Envoy-Upstream-Service-Time", "7")
	reported.Set("Server-Timing", "backend;dur=0.25")
	tests := []struct {
		name        string
		header      http.Header
		wantTimings int
		wantToken   bool
		wantCert    bool
	}{
		{"a full report gives every fact", reported, 3, true, true},
		{"an answer without reports gives the frontend's own time only", http.Header{}, 1, false, false},
		{"a malformed upstream service time is dropped, not guessed", http.Header{"X-Envoy-Upstream-Service-Time": {"7ms"}}, 1, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := requestPath(readHops(tt.header, 20*time.Millisecond), exp.Add(-time.Hour))
			if len(p.Timings) != tt.wantTimings || (p.Token != nil) != tt.wantToken || (p.ClientCert != nil) != tt.wantCert {
				t.Fatalf("got %d timings, token %v, cert %v; want %d, %v, %v", len(p.Timings), p.Token != nil, p.ClientCert != nil, tt.wantTimings, tt.wantToken, tt.wantCert)
			}
			if tt.wantToken && p.Token.Left != time.Hour {
				t.Errorf("time left %v, want 1h (exp minus now)", p.Token.Left)
			}
		})
	}
}
