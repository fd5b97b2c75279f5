package apikeys

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestABurstFromParallelConnectionsPassesExactlyTheQuota sends N checks at
// once, each on its own gRPC connection, as N Envoy workers would, with a
// quota of Q: exactly Q are allowed and the rest get 429.
func TestABurstFromParallelConnectionsPassesExactlyTheQuota(t *testing.T) {
	const conns, quota = 40, 15
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := newService(t, st.open(t), testCatalog(t, quota, 1000), time.Now)
			addr, _ := startGRPC(t, s)
			_, key := mustApp(t, s, "alice", "secure-message")
			req := checkRequest("GET", "/api/secure.json", map[string]string{"x-api-key": key})
			clients := make([]func() (int, error), conns)
			for i := range clients {
				c := dial(t, addr)
				// Connect before the burst, so that it is the checks that race.
				if _, err := c.Check(context.Background(), checkRequest("GET", "/api/healthz", nil)); err != nil {
					t.Fatal(err)
				}
				clients[i] = func() (int, error) {
					r, err := c.Check(context.Background(), req)
					if err != nil {
						return 0, err
					}
					if d := r.GetDeniedResponse(); d != nil {
						return int(d.GetStatus().GetCode()), nil
					}
					return 200, nil
				}
			}
			var mu sync.Mutex
			got := map[int]int{}
			var wg sync.WaitGroup
			start := make(chan struct{})
			for _, c := range clients {
				wg.Go(func() {
					<-start
					status, err := c()
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					got[status]++
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
			if got[200] != quota || got[429] != conns-quota || len(got) != 2 {
				t.Fatalf("%d parallel checks against a quota of %d: got %v by status, want %d×200 and %d×429",
					conns, quota, got, quota, conns-quota)
			}
		})
	}
}
