// Package loadtest drives bounded HTTP load at a fixed rate against servers on
// this machine and reports what a capacity review needs: latency percentiles,
// throughput, errors, and the CPU and RSS of the process under test.
//
// It is open-loop: requests are scheduled at the target rate whether or not
// earlier ones have finished, and latency is measured from each request's
// scheduled time, so a stalled server shows up as latency instead of silently
// lowering the rate (coordinated omission). With rate 0 it is closed-loop
// instead (each worker sends its next request when the last is answered)
// and latency is each request's own. Runs are bounded in time and count, and
// only loopback targets are accepted.
//
// It is a top-level package, not under e2e/ or internal/, because it is a
// tool of its own: cmd/loadtest is its command, and benchmarks across the
// repository (cmd/*, local/identity, e2e) use its driver and process
// sampler. It starts the local gateway in a child process, so it sits above
// local/, which internal/ must not import.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Config describes one run. Target, NewRequest and Client are required.
type Config struct {
	Target      *url.URL // only for the loopback check and the report
	Rate        int      // requests per second to schedule; 0 = as fast as Workers allow
	Workers     int      // concurrent requests in flight at most (≈ connections with keep-alive)
	Duration    time.Duration
	MaxRequests int // stop after this many, whatever Duration says; 0 = Rate×Duration bound only
	// NewRequest builds each request; it must be safe for concurrent use.
	NewRequest func(ctx context.Context) (*http.Request, error)
	Client     *http.Client
	// WantStatus is the status every response must have to count as success.
	WantStatus int
	// Observe, when set, is told each request's outcome as it completes, from
	// the worker that sent it, so it must be safe for concurrent use: tests
	// that inject a fault judge each request against when the fault began.
	Observe func(Outcome)
}

// Outcome is one request as Observe sees it.
type Outcome struct {
	Scheduled, Done time.Time
	Status          int   // 0 when no response came
	Err             error // why no response came
}

// MaxDuration bounds any run: a load test here stops by itself.
const MaxDuration = 10 * time.Minute

func (c Config) validate() error {
	var errs []error
	if c.Target == nil {
		errs = append(errs, errors.New("Target is required"))
	} else if err := checkLoopback(c.Target); err != nil {
		errs = append(errs, err)
	}
	if c.NewRequest == nil || c.Client == nil {
		errs = append(errs, errors.New("NewRequest and Client are required"))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("Workers = %d, want ≥ 1", c.Workers))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("Rate = %d, want ≥ 0", c.Rate))
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("Duration = %v, want between 0 and %v", c.Duration, MaxDuration))
	}
	if c.WantStatus == 0 {
		errs = append(errs, errors.New("WantStatus is required"))
	}
	return errors.Join(errs...)
}

// checkLoopback refuses any target that is not on this machine: a load test
// must never send traffic anywhere else.
func checkLoopback(u *url.URL) error {
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %s: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed", u.Redacted())
	}
	return nil
}

// Result is what one run measured.
type Result struct {
	Target     string
	Requests   int // completed, successful or not
	Errors     int
	ErrorKinds map[string]int // "status 503", "dial: connection refused", ...
	Elapsed    time.Duration
	Latencies  Percentiles
	Dropped    int // scheduled but not started because every worker was busy
}

// Throughput is completed requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentiles of request latency.
type Percentiles struct{ P50, P90, P99, Max time.Duration }

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: d[len(d)-1]}
}

// Run drives the load described by c until Duration passes, MaxRequests are
// sent, or ctx ends, then waits for requests in flight.
func Run(ctx context.Context, c Config) (Result, error) {
	if err := c.validate(); err != nil {
		return Result{}, fmt.Errorf("load config: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()

	type sample struct {
		lat time.Duration
		err string
	}
	jobs := make(chan time.Time, c.Workers) // scheduled start times
	samples := make(chan sample, 1024)
	var wg sync.WaitGroup
	for range c.Workers {
		wg.Go(func() {
			for scheduled := range jobs {
				if c.Rate == 0 {
					// Closed loop: there is no schedule to fall behind, and
					// the wait for a free worker is the load tool's, not the
					// server's, so latency starts when the request does.
					scheduled = time.Now()
				}
				o, kind := do(ctx, c, scheduled)
				if c.Observe != nil {
					c.Observe(o)
				}
				samples <- sample{err: kind, lat: o.Done.Sub(scheduled)}
			}
		})
	}

	res := Result{Target: c.Target.Redacted(), ErrorKinds: map[string]int{}}
	var lats []time.Duration
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for s := range samples {
			res.Requests++
			lats = append(lats, s.lat)
			if s.err != "" {
				res.Errors++
				res.ErrorKinds[s.err]++
			}
		}
	}()

	start := time.Now()
	res.Dropped = schedule(ctx, c, start, jobs)
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(start)
	close(samples)
	<-collected
	res.Latencies = percentiles(lats)
	return res, nil
}

// schedule feeds start times to the workers at c.Rate (or as fast as they
// take them when Rate is 0) and returns how many it had to drop because all
// workers were busy: dropping, not queueing, keeps the offered rate honest.
func schedule(ctx context.Context, c Config, start time.Time, jobs chan<- time.Time) (dropped int) {
	for n := 0; c.MaxRequests == 0 || n < c.MaxRequests; n++ {
		if c.Rate == 0 {
			select {
			case jobs <- time.Now():
				continue
			case <-ctx.Done():
				return dropped
			}
		}
		at := start.Add(time.Duration(n) * time.Second / time.Duration(c.Rate))
		// Nothing is scheduled at or past the run's end, even when a busy
		// machine has the scheduler catching up after it: ctx's own timer may
		// not have fired yet.
		if end, ok := ctx.Deadline(); ok && !at.Before(end) {
			return dropped
		}
		if wait := time.Until(at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return dropped
			}
		} else if ctx.Err() != nil {
			return dropped
		}
		select {
		case jobs <- at:
		default:
			dropped++
		}
	}
	return dropped
}

// do sends one request and returns its outcome and "" on success or a short
// error kind.
func do(ctx context.Context, c Config, scheduled time.Time) (o Outcome, kind string) {
	o.Scheduled = scheduled
	defer func() { o.Done = time.Now() }()
	req, err := c.NewRequest(context.WithoutCancel(ctx))
	if err != nil {
		o.Err = err
		return o, "building request: " + err.Error()
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		o.Err = err
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return o, "timeout"
		}
		return o, "transport: " + rootCause(err)
	}
	o.Status = resp.StatusCode
	// Drain so the connection goes back to the pool (keep-alive).
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		// The status came, the body did not: the answer is not whole.
		o.Err = err
		return o, "reading body: " + rootCause(err)
	}
	if resp.StatusCode != c.WantStatus {
		return o, fmt.Sprintf("status %d", resp.StatusCode)
	}
	return o, ""
}

func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}
