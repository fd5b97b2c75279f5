// Package hopfacts is how a hop tells the one before it what it saw of a
// request: the backend answers with what it verified (the ID token, and the
// client certificate the gateway forwarded in x-forwarded-client-cert), in
// response headers, and every hop times itself in Server-Timing
// (https://www.w3.org/TR/server-timing/). The frontend reads them to show
// how a request reached the backend. Headers, not the JSON body, so that
// every API answer keeps its body as it is.
package hopfacts

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The backend's answer headers. Nothing in them is secret: the token's
// issuer, subject (the uid the body already carries), audience and expiry,
// and the public identity of the calling workload.
const (
	HeaderTokenIssuer    = "X-Verified-Token-Issuer"
	HeaderTokenSubject   = "X-Verified-Token-Subject"
	HeaderTokenAudience  = "X-Verified-Token-Audience"
	HeaderTokenExpires   = "X-Verified-Token-Expires" // RFC 3339, UTC
	HeaderClientCertURI  = "X-Forwarded-Client-Cert-Uri"
	HeaderClientCertHash = "X-Forwarded-Client-Cert-Hash"
)

// Token is what a hop verified of the bearer token.
type Token struct {
	Issuer, Subject, Audience string
	Expires                   time.Time
}

// ClientCert is the calling workload as the gateway described its
// certificate: the URI SAN (its SPIFFE identity) and the SHA-256 of the
// certificate.
type ClientCert struct {
	URI, Hash string
}

// Report is what the backend verified of one request.
type Report struct {
	Token      Token
	ClientCert ClientCert // zero when the gateway forwarded none
}

// Write sets r's headers on h.
func (r Report) Write(h http.Header) {
	h.Set(HeaderTokenIssuer, r.Token.Issuer)
	h.Set(HeaderTokenSubject, r.Token.Subject)
	h.Set(HeaderTokenAudience, r.Token.Audience)
	h.Set(HeaderTokenExpires, r.Token.Expires.UTC().Format(time.RFC3339))
	if r.ClientCert.URI != "" {
		h.Set(HeaderClientCertURI, r.ClientCert.URI)
	}
	if r.ClientCert.Hash != "" {
		h.Set(HeaderClientCertHash, r.ClientCert.Hash)
	}
}

// ReadReport reads what Write set; ok is false when the token facts are
// missing or malformed, so that a caller never shows half a story.
func ReadReport(h http.Header) (r Report, ok bool) {
	r.Token = Token{
		Issuer:   h.Get(HeaderTokenIssuer),
		Subject:  h.Get(HeaderTokenSubject),
		Audience: h.Get(HeaderTokenAudience),
	}
	exp, err := time.Parse(time.RFC3339, h.Get(HeaderTokenExpires))
	if err != nil || r.Token.Issuer == "" || r.Token.Subject == "" || r.Token.Audience == "" {
		return Report{}, false
	}
	r.Token.Expires = exp
	r.ClientCert = ClientCert{URI: h.Get(HeaderClientCertURI), Hash: h.Get(HeaderClientCertHash)}
	return r, true
}

// Timing is one Server-Timing metric.
type Timing struct {
	Name string
	Dur  time.Duration
	Desc string // optional
}

// FormatServerTiming renders metrics as one Server-Timing value, durations
// in milliseconds as the specification has them.
func FormatServerTiming(ts ...Timing) string {
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		p := fmt.Sprintf("%s;dur=%s", t.Name, strconv.FormatFloat(float64(t.Dur.Microseconds())/1000, 'f', -1, 64))
		if t.Desc != "" {
			p += ";desc=" + strconv.Quote(t.Desc)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// ServerTimingDur finds metric name in Server-Timing values and returns its
// dur; ok is false when it is absent or has no valid dur.
func ServerTimingDur(values []string, name string) (time.Duration, bool) {
	for _, v := range values {
		for _, metric := range strings.Split(v, ",") {
			params := strings.Split(metric, ";")
			if !strings.EqualFold(strings.TrimSpace(params[0]), name) {
				continue
			}
			for _, p := range params[1:] {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if !strings.EqualFold(k, "dur") {
					continue
				}
				ms, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil || ms < 0 {
					return 0, false
				}
				return time.Duration(ms * float64(time.Millisecond)), true
			}
		}
	}
	return 0, false
}
