package frontend

import (
	"net/http"
	"strconv"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/hopfacts"
	"github.com/acme/cloudrun-istio-gke/web/components"
	"github.com/labstack/echo/v4"
)

// Hops is what the hops reported of one call to the backend, read from the
// answer's headers, and how long the call took as the frontend saw it.
type Hops struct {
	// Call is the frontend's own measure: connection, gateway and backend,
	// until the whole answer was read.
	Call time.Duration
	// Gateway is Envoy's x-envoy-upstream-service-time: from the request
	// going to the backend to the backend's answer, in whole milliseconds.
	// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter#x-envoy-upstream-service-time
	Gateway    time.Duration
	HasGateway bool
	// Backend is the backend's own time, its Server-Timing "backend" metric.
	Backend    time.Duration
	HasBackend bool
	// Report is what the backend verified; HasReport is false when it said
	// nothing (an older backend, or a refusal).
	Report    hopfacts.Report
	HasReport bool
}

func readHops(h http.Header, call time.Duration) Hops {
	hp := Hops{Call: call}
	if ms, err := strconv.ParseUint(h.Get("X-Envoy-Upstream-Service-Time"), 10, 32); err == nil {
		hp.Gateway, hp.HasGateway = time.Duration(ms)*time.Millisecond, true
	}
	hp.Backend, hp.HasBackend = hopfacts.ServerTimingDur(h.Values("Server-Timing"), "backend")
	hp.Report, hp.HasReport = hopfacts.ReadReport(h)
	return hp
}

// requestPath turns what the hops reported into the panel's facts, with the
// token's time left reckoned at now.
func requestPath(h Hops, now time.Time) *components.RequestPath {
	p := &components.RequestPath{}
	if h.HasReport {
		t := h.Report.Token
		p.Token = &components.TokenFact{Issuer: t.Issuer, Subject: t.Subject, Audience: t.Audience, Expires: t.Expires, Left: t.Expires.Sub(now)}
		if cc := h.Report.ClientCert; cc.URI != "" {
			p.ClientCert = &components.ClientCertFact{URI: cc.URI, Hash: cc.Hash}
		}
	}
	p.Timings = append(p.Timings, components.HopTiming{Hop: "Frontend → backend, round trip", Source: "measured by the frontend", Dur: h.Call})
	if h.HasGateway {
		p.Timings = append(p.Timings, components.HopTiming{Hop: "Gateway → backend", Source: "x-envoy-upstream-service-time", Dur: h.Gateway, Whole: true})
	}
	if h.HasBackend {
		p.Timings = append(p.Timings, components.HopTiming{Hop: "Backend", Source: "its Server-Timing", Dur: h.Backend})
	}
	return p
}

// setServerTiming tells the browser the same figures (devtools, Timing
// tab): https://www.w3.org/TR/server-timing/
func setServerTiming(c echo.Context, h Hops) {
	ts := []hopfacts.Timing{{Name: "backend-call", Dur: h.Call, Desc: "frontend to backend round trip"}}
	if h.HasGateway {
		ts = append(ts, hopfacts.Timing{Name: "gateway", Dur: h.Gateway, Desc: "x-envoy-upstream-service-time"})
	}
	if h.HasBackend {
		ts = append(ts, hopfacts.Timing{Name: "backend", Dur: h.Backend, Desc: "backend"})
	}
	c.Response().Header().Add("Server-Timing", hopfacts.FormatServerTiming(ts...))
}
