package components

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/acme/cloudrun-istio-gke/internal/htmltest"
)

func TestRequestPathPanelShowsOnlyWhatTheHopsReported(t *testing.T) {
	exp := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	full := RequestPath{
		ClientCert: &ClientCertFact{URI: "spiffe://acme.internal/ns/frontend/sa/frontend", Hash: "4f1c0ad2a7d0e9b2b8b6a1f0c3d2e1f09a8b7c6d5e4f30211f0e0d0c0b0a0908"},
		Token:      &TokenFact{Issuer: "https://securetoken.google.com/demo-acme", Subject: "uid-<b>1</b>", Audience: "demo-acme", Expires: exp, Left: 42*time.Minute + 10*time.Second},
		Timings: []HopTiming{
			{Hop: "Frontend → backend, round trip", Source: "measured by the frontend", Dur: 12345 * time.Microsecond},
			{Hop: "Gateway → backend", Source: "x-envoy-upstream-service-time", Dur: 3 * time.Millisecond, Whole: true},
			{Hop: "Backend", Source: "its Server-Timing", Dur: 300 * time.Microsecond},
			{Hop: "Cache", Source: "its Server-Timing", Dur: 20 * time.Microsecond},
		},
	}
	tests := []struct {
		name      string
		in        RequestPath
		byID      map[string]string // element id -> its text
		contains  []string
		notReport int // how many "Not reported" lines
	}{
		{
			name: "every reported fact is shown, user-controlled text escaped",
			in:   full,
			byID: map[string]string{
				"path-peer": "spiffe://acme.internal/ns/frontend/sa/frontend",
				"path-iss":  "https://securetoken.google.com/demo-acme",
				"path-sub":  "uid-<b>1</b>",
				"path-aud":  "demo-acme",
				"path-exp":  "42 min left",
			},
			contains: []string{"4f1c0ad2…0b0a0908", "12 ms", "3 ms", "0.3 ms", "< 0.1 ms", "x-envoy-upstream-service-time", "How this request reached the backend"},
		},
		{
			name:      "facts no hop reported read 'not reported' instead of a guess",
			in:        RequestPath{},
			contains:  []string{"Not reported by the gateway.", "Not reported by the backend."},
			notReport: 3,
		},
		{
			name:      "an expired token says so",
			in:        RequestPath{Token: &TokenFact{Issuer: "i", Subject: "s", Audience: "a", Expires: exp, Left: -time.Second}},
			byID:      map[string]string{"path-exp": "expired"},
			contains:  []string{"Not reported by the gateway."},
			notReport: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := render(t, RequestPathPanel(tt.in))
			for id, want := range tt.byID {
				if got := strings.TrimSpace(htmltest.Text(htmltest.ByID(doc, id))); got != want {
					t.Errorf("#%s: got %q, want %q", id, got, want)
				}
			}
			text := htmltest.Text(doc)
			for _, want := range tt.contains {
				if !strings.Contains(text, want) {
					t.Errorf("panel text lacks %q:\n%s", want, text)
				}
			}
			if got := strings.Count(text, "Not reported"); got != tt.notReport {
				t.Errorf("%d 'Not reported' lines, want %d", got, tt.notReport)
			}
			if tt.in.Token != nil {
				tm := htmltest.Find(htmltest.ByID(doc, "path-exp"), func(n *html.Node) bool { return n.Data == "time" })
				if got := htmltest.Attr(tm, "datetime"); got != "2026-12-03T10:00:00Z" {
					t.Errorf("expiry <time datetime>: got %q, want the token's exp in RFC 3339", got)
				}
			}
		})
	}
}

func TestTheSecretCarriesThePanelOnlyWhenThereIsAPath(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   Secret
		want bool
	}{
		{"a message with a path shows the panel", Secret{Message: "Hello World", Path: &RequestPath{}}, true},
		{"a message without one shows none", Secret{Message: "Hello World"}, false},
		{"a problem shows none", Secret{Problem: &Problem{Title: "x"}, Path: &RequestPath{}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := htmltest.ByID(render(t, SecretMessage(tt.in)), "request-path") != nil; got != tt.want {
				t.Fatalf("panel shown: %v, want %v", got, tt.want)
			}
		})
	}
}
