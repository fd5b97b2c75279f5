package hopfacts

import (
	"net/http"
	"testing"
	"time"
)

func TestServerTimingRoundTrips(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		metric string
		want   time.Duration
		wantOK bool
	}{
		{"our own formatting reads back", []string{FormatServerTiming(Timing{Name: "gateway", Dur: 12 * time.Millisecond}, Timing{Name: "backend", Dur: 1500 * time.Microsecond, Desc: "backend"})}, "backend", 1500 * time.Microsecond, true},
		{"metrics are found across several header lines", []string{"cache;desc=hit", "db;dur=53"}, "db", 53 * time.Millisecond, true},
		{"names match without regard to case", []string{"Backend;DUR=2"}, "backend", 2 * time.Millisecond, true},
		{"a metric without dur is not a time", []string{"backend;desc=x"}, "backend", 0, false},
		{"a negative dur is refused", []string{"backend;dur=-3"}, "backend", 0, false},
		{"an absent metric is absent", []string{"db;dur=1"}, "backend", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ServerTimingDur(tt.values, tt.metric)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("ServerTimingDur(%q, %q) = %v, %v; want %v, %v", tt.values, tt.metric, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestAReportWithoutTheTokenIsNoReport(t *testing.T) {
	full := Report{Token: Token{Issuer: "i", Subject: "s", Audience: "a", Expires: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}, ClientCert: ClientCert{URI: "spiffe://x", Hash: "00"}}
	h := http.Header{}
	full.Write(h)
	if got, ok := ReadReport(h); !ok || got != full {
		t.Fatalf("ReadReport after Write = %+v, %v; want %+v", got, ok, full)
	}
	for _, k := range []string{HeaderTokenIssuer, HeaderTokenSubject, HeaderTokenAudience, HeaderTokenExpires} {
		t.Run("without "+k, func(t *testing.T) {
			h2 := h.Clone()
			h2.Del(k)
			if got, ok := ReadReport(h2); ok {
				t.Fatalf("ReadReport without %s = %+v, true; want false", k, got)
			}
		})
	}
}
