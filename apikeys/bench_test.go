package apikeys

import (
	"context"
	"slices"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// BenchmarkCheck measures one allowed check (key lookup, product match,
// quota count, usage record), in process and over gRPC on loopback, with
// each store. It reports the median and 99th percentile of single checks
// (serial) and the throughput of checks from all Ps (parallel):
//
//	go test ./apikeys -run '^$' -bench Check -benchtime 20000x -cpu 2
func BenchmarkCheck(b *testing.B) {
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			s := newService(b, st.open(b), testCatalog(b, 1<<40, 1<<41), time.Now)
			_, key := mustApp(b, s, "bench", "secure-message")
			req := checkRequest("GET", "/api/secure.json", map[string]string{"x-api-key": key})
			_, client := startGRPC(b, s)
			calls := []struct {
				name  string
				check func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error)
			}{
				{"in-process", s.Check},
				{"grpc", func(ctx context.Context, r *authv3.CheckRequest) (*authv3.CheckResponse, error) {
					return client.Check(ctx, r)
				}},
			}
			for _, c := range calls {
				b.Run(c.name+"/serial", func(b *testing.B) {
					lat := make([]time.Duration, 0, b.N)
					ctx := context.Background()
					for b.Loop() {
						t0 := time.Now()
						r, err := c.check(ctx, req)
						lat = append(lat, time.Since(t0))
						if err != nil || r.GetOkResponse() == nil {
							b.Fatalf("check: %v, %v", r, err)
						}
					}
					slices.Sort(lat)
					b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
					b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
				})
				b.Run(c.name+"/parallel", func(b *testing.B) {
					// Several checks in flight per P, as Envoy's workers keep
					// many streams open on the connection.
					b.SetParallelism(8)
					start := time.Now()
					b.RunParallel(func(pb *testing.PB) {
						ctx := context.Background()
						for pb.Next() {
							if r, err := c.check(ctx, req); err != nil || r.GetOkResponse() == nil {
								b.Errorf("check: %v, %v", r, err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
				})
			}
		})
	}
}
