package apikeys

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the service's Prometheus series. Labels are bounded: the
// outcome and the product, never the app, whose number is unbounded (per-app
// figures are the usage API's job).
type metrics struct {
	checks   *prometheus.CounterVec
	duration prometheus.Histogram
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apikeys_checks_total",
			Help: "ext_authz checks answered, by outcome and the product that covered the request.",
		}, []string{"outcome", "product"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "apikeys_check_duration_seconds",
			Help: "Time to decide one ext_authz check, store round trips included.",
			// From 25 µs (in memory) to 100 ms (a struggling Redis).
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 13),
		}),
	}
	for _, c := range []prometheus.Collector{m.checks, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(d Decision, elapsed time.Duration) {
	m.checks.WithLabelValues(string(d.Outcome), d.Product).Inc()
	m.duration.Observe(elapsed.Seconds())
}
