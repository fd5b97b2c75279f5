package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/local/gateway"
	"github.com/acme/cloudrun-istio-gke/local/gateway/authz"
)

func TestRunRefusesTargetsOffThisMachine(t *testing.T) {
	tests := []struct {
		target string
		ok     bool
	}{
		{"http://127.0.0.1:8443/", true},
		{"https://127.0.0.2:8443/", true},
		{"http://[::1]:80/", true},
		{"http://localhost:80/", true},
		{"http://10.0.0.1/", false},
		{"http://192.168.1.10/", false},
		{"https://example.com/", false},
		{"http://0.0.0.0:80/", false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			u, _ := url.Parse(tt.target)
			err := checkLoopback(u)
			if (err == nil) != tt.ok {
				t.Errorf("checkLoopback(%s) = %v, want allowed=%v", tt.target, err, tt.ok)
			}
		})
	}
}

func config(t *testing.T, srv *httptest.Server) Config {
	u, _ := url.Parse(srv.URL)
	return Config{
		Target: u, Workers: 4, Duration: 5 * time.Second, WantStatus: http.StatusOK, Client: srv.Client(),
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		},
	}
}

func TestRunSendsExactlyMaxRequestsAndCountsFailures(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c := config(t, srv)
	c.MaxRequests = 40

	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 40 || n.Load() != 40 {
		t.Fatalf("completed %d, server saw %d; want 40 and 40", res.Requests, n.Load())
	}
	if res.Errors != 10 || res.ErrorKinds["status 503"] != 10 {
		t.Errorf("errors %d %v, want 10 of kind \"status 503\"", res.Errors, res.ErrorKinds)
	}
	if res.Latencies.P50 <= 0 || res.Latencies.P50 > res.Latencies.P99 || res.Latencies.P99 > res.Latencies.Max {
		t.Errorf("percentiles not ordered: %+v", res.Latencies)
	}
}

func TestObserveIsToldEachRequestsOutcome(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	c := config(t, srv)
	c.MaxRequests = 20
	var mu sync.Mutex
	statuses := map[int]int{}
	c.Observe = func(o Outcome) {
		mu.Lock()
		defer mu.Unlock()
		if o.Done.Before(o.Scheduled) {
			t.Errorf("outcome done at %v, before its scheduled %v", o.Done, o.Scheduled)
		}
		statuses[o.Status]++
	}
	if _, err := Run(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	c.MaxRequests = 3
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if statuses[200] != 15 || statuses[503] != 5 || statuses[0] != 3 || res.Errors != 3 {
		t.Errorf("observed statuses %v, and %d errors after the server closed; want 15×200, 5×503, then 3×0 (no response)", statuses, res.Errors)
	}
}

// TestClosedLoopTimesEachRequestFromItsOwnStart checks rate 0: one worker
// sends its next request only once the last is answered, so each request
// must start after the one before it is done. Stamped when the scheduler
// queued it instead, a request's latency would include the whole previous
// request.
func TestClosedLoopTimesEachRequestFromItsOwnStart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
	}))
	defer srv.Close()
	c := config(t, srv)
	c.Workers, c.Rate, c.MaxRequests = 1, 0, 10
	var outcomes []Outcome
	c.Observe = func(o Outcome) { outcomes = append(outcomes, o) } // one worker: no race
	if _, err := Run(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(outcomes); i++ {
		if outcomes[i].Scheduled.Before(outcomes[i-1].Done) {
			t.Errorf("request %d timed from %v, before request %d was done at %v", i, outcomes[i].Scheduled, i-1, outcomes[i-1].Done)
		}
	}
}

func TestRunHoldsTheRateAndStopsByItself(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()

	// The rate is a ceiling: 50 requests at 200/s cannot finish in less than
	// the 49 intervals of 5ms between their scheduled starts, however fast
	// the server. (A busy machine may make them slower; that is not asserted.)
	c := config(t, srv)
	c.Rate, c.MaxRequests = 200, 50
	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests+res.Dropped != 50 {
		t.Errorf("scheduled %d+%d dropped, want 50", res.Requests, res.Dropped)
	}
	if res.Elapsed < 245*time.Millisecond {
		t.Errorf("50 requests at 200/s took %v, want ≥ 245ms: the rate was not held", res.Elapsed)
	}

	// Duration bounds a run with no request limit.
	c.MaxRequests, c.Rate, c.Duration = 0, 1000, 200*time.Millisecond
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err = Run(t.Context(), c)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a 200ms run at 1000/s did not stop by itself")
	}
	if err != nil || res.Requests+res.Dropped > 201 {
		t.Errorf("a 200ms run at 1000/s: %d sent + %d dropped, err %v; want at most 201 scheduled", res.Requests, res.Dropped, err)
	}
}

func TestRunCountsQueueingInLatencyAndDropsTheExcess(t *testing.T) {
	// One worker and a server that takes 20ms: the request queued behind the
	// first waits for the worker, and that wait must show in its latency
	// (measured from its scheduled time), while requests that find the queue
	// full are reported as dropped rather than silently sent later.
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(20 * time.Millisecond) }))
	defer srv.Close()
	c := config(t, srv)
	c.Workers, c.Rate, c.MaxRequests = 1, 1000, 5

	res, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests+res.Dropped != 5 {
		t.Fatalf("sent %d + dropped %d, want 5 scheduled", res.Requests, res.Dropped)
	}
	if res.Dropped == 0 {
		t.Errorf("a single busy worker at 1000/s dropped nothing; want the excess reported as dropped")
	}
	if res.Latencies.Max < 38*time.Millisecond {
		t.Errorf("max latency %v, want ≥ 38ms: the queued request waited ~20ms for the worker, then ~20ms more", res.Latencies.Max)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := Run(t.Context(), Config{Target: &url.URL{Scheme: "http", Host: "127.0.0.1"}})
	for _, want := range []string{"NewRequest", "Workers", "Duration", "WantStatus"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run with an empty config: %v, want an error naming %s", err, want)
		}
	}
}

func TestReadProcSeesThisProcess(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS < 1<<20 {
		t.Errorf("RSS of the test process = %d bytes, want at least 1 MiB", s.RSS)
	}
	if s.AnonRSS < 1<<20 || s.AnonRSS > s.RSS {
		t.Errorf("anonymous RSS of the test process = %d bytes, want at least 1 MiB and at most RSS (%d)", s.AnonRSS, s.RSS)
	}
	sm, err := Sample(os.Getpid(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn CPU so the sampler has something to see
	}
	u, err := sm.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if u.PeakRSS < u.StartRSS || u.PeakAnonRSS <= 0 || u.PeakAnonRSS > u.PeakRSS || u.CPU <= 0 {
		t.Errorf("usage %+v: want peak ≥ start and some CPU", u)
	}
	if len(u.RSS) < 3 || u.RSS[0].RSS != u.StartRSS || u.RSS[len(u.RSS)-1].RSS != u.EndRSS {
		t.Errorf("RSS series %v: want the start, the samples, the end", u.RSS)
	}
}

func TestEveryKeepsTheLastSampleAtEachMark(t *testing.T) {
	s := time.Second
	series := []RSSPoint{{0, 10}, {400 * time.Millisecond, 11}, {s, 12}, {1400 * time.Millisecond, 13}, {2100 * time.Millisecond, 14}, {2500 * time.Millisecond, 15}}
	got := Every(series, s)
	want := []RSSPoint{{0, 10}, {s, 12}, {1400 * time.Millisecond, 13}, {2500 * time.Millisecond, 15}}
	if !slices.Equal(got, want) {
		t.Errorf("Every(%v, 1s) = %v, want %v", series, got, want)
	}
}

func TestWithDenyRulesAddsAPolicyTheGatewayLoadsAndEvaluates(t *testing.T) {
	for _, n := range []int{1, 10, 100} {
		dst := t.TempDir()
		if err := WithDenyRules("../istio", dst, n); err != nil {
			t.Fatalf("WithDenyRules(%d): %v", n, err)
		}
		rs, err := gateway.Load(dst, "demo-acme")
		if err != nil {
			t.Fatalf("gateway.Load of the copy with %d deny rules: %v", n, err)
		}
		sel := rs.Select(gateway.Workload{Namespace: gateway.DefaultNamespace, Labels: gateway.DefaultLabels()})
		var deny int
		for _, ap := range sel.AuthorizationPolicies {
			if ap.Spec.GetAction().String() == "DENY" {
				deny += len(ap.Spec.GetRules())
			}
		}
		if deny != n {
			t.Errorf("the gateway selects %d DENY rules, want %d", deny, n)
		}
		// DecideLocal: DENY and ALLOW, as after the CUSTOM provider has passed
		// a request without a key. The load's request passes every one of them (so each is
		// evaluated), and one each rule names is refused by it.
		eng, err := authz.New(sel.AuthorizationPolicies)
		if err != nil {
			t.Fatalf("authz.New: %v", err)
		}
		req := func(project, path, email string) authz.Request {
			return authz.Request{Method: "GET", Host: "api.internal.example", Path: path, Port: 443,
				Principal:        "acme.internal/ns/frontend/sa/frontend",
				RequestPrincipal: "https://securetoken.google.com/" + project + "/uid",
				Claims:           map[string]any{"iss": "https://securetoken.google.com/" + project, "sub": "uid", "email": email, "email_verified": true},
				// As the gateway's authn sets it from the verified claim.
				Headers: http.Header{"X-Jwt-Claim-Email-Verified": {"true"}}}
		}
		if d := eng.DecideLocal(req("demo-acme", "/api/secure.json", "demo@acme.test")); !d.Allow {
			t.Errorf("the load's request with %d deny rules: %+v, want allowed", n, d)
		}
		last := n - 1
		if d := eng.DecideLocal(req(fmt.Sprintf("blocked-project-%d", last), fmt.Sprintf("/api/blocked-%d/x", last), fmt.Sprintf("blocked-%d@example.com", last))); d.Allow || d.Policy != "istio-ingress/loadtest-deny-rules" {
			t.Errorf("a request rule %d names: %+v, want denied by istio-ingress/loadtest-deny-rules", last, d)
		}
	}
	if _, err := os.Stat("../istio/" + DenyRulesFile); err == nil {
		t.Errorf("istio/%s exists: the copy must leave the repository alone", DenyRulesFile)
	}
}
