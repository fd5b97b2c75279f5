package components

import (
	"fmt"
	"time"
)

// RequestPath is how the request for the secret reached the backend, built
// only from what the hops reported: the client certificate the gateway
// forwarded, the token the backend verified, and each hop's timing. A fact
// a hop did not report is absent and the panel says so.
type RequestPath struct {
	ClientCert *ClientCertFact
	Token      *TokenFact
	Timings    []HopTiming
}

// ClientCertFact is the frontend's client certificate as the gateway
// described it in x-forwarded-client-cert.
type ClientCertFact struct {
	URI  string // the SPIFFE identity
	Hash string // SHA-256 of the certificate, hex
}

// TokenFact is the ID token the backend verified.
type TokenFact struct {
	Issuer, Subject, Audience string
	Expires                   time.Time
	// Left is the time before expiry when the page was made.
	Left time.Duration
}

// HopTiming is one hop's time, with where the figure comes from.
type HopTiming struct {
	Hop    string // "Frontend → gateway → backend"
	Source string // "measured by the frontend", "x-envoy-upstream-service-time", …
	Dur    time.Duration
	// Whole is set when the source counts whole milliseconds
	// (x-envoy-upstream-service-time), so no decimals are invented.
	Whole bool
}

// shortHash shows a long hex digest by its ends, the full value in a title.
func shortHash(h string) string {
	if len(h) <= 16 {
		return h
	}
	return h[:8] + "…" + h[len(h)-8:]
}

// millis renders a duration the way devtools shows Server-Timing, or as
// the whole milliseconds its source counted.
func millis(t HopTiming) string {
	if t.Whole {
		if t.Dur < time.Millisecond {
			return "< 1 ms"
		}
		return fmt.Sprintf("%d ms", t.Dur.Milliseconds())
	}
	ms := float64(t.Dur) / float64(time.Millisecond)
	if ms < 0.05 {
		return "< 0.1 ms"
	}
	if ms < 10 {
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// timeLeft says how long a token has left, in words.
func timeLeft(d time.Duration) string {
	switch {
	case d <= 0:
		return "expired"
	case d < time.Minute:
		return fmt.Sprintf("%d s left", int(d.Seconds()))
	default:
		return fmt.Sprintf("%d min left", int(d.Minutes()))
	}
}
