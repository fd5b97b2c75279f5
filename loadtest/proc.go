package loadtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcStats is a snapshot of a process as Linux accounts for it.
type ProcStats struct {
	RSS int64 // resident set size, bytes (VmRSS)
	// AnonRSS is the part of RSS that is the process's own memory (RssAnon:
	// heap, stacks); the rest is mostly its executable's pages, shared with
	// every process running the same binary.
	AnonRSS int64
	CPUTime time.Duration // user + system time consumed so far
}

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat; 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// ReadProc reads pid's RSS and CPU time from /proc.
func ReadProc(pid int) (ProcStats, error) {
	var s ProcStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("reading process %d status: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		var into *int64
		switch {
		case !ok:
			continue
		case name == "VmRSS":
			into = &s.RSS
		case name == "RssAnon":
			into = &s.AnonRSS
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return s, fmt.Errorf("process %d %s %q: %w", pid, name, v, err)
		}
		*into = kb << 10
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("reading process %d stat: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after its closing
	// parenthesis are fixed: utime and stime are fields 14 and 15.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return s, fmt.Errorf("process %d stat: %d fields after the name, want ≥ 13", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("process %d stat: utime %q stime %q", pid, f[11], f[12])
	}
	s.CPUTime = time.Duration(utime+stime) * time.Second / clockTicks
	return s, nil
}

// RSSPoint is the RSS seen some time into a run.
type RSSPoint struct {
	At  time.Duration
	RSS int64
}

// Sampler records a process's RSS over a run (peak, last, and every sample)
// and its CPU time.
type Sampler struct {
	pid      int
	stop     chan struct{}
	done     chan struct{}
	start    ProcStats
	startAt  time.Time
	peak     int64
	peakAnon int64
	last     ProcStats
	lastAt   time.Time
	series   []RSSPoint
	firstErr error
}

// Sample starts sampling pid every interval until Stop.
func Sample(pid int, every time.Duration) (*Sampler, error) {
	first, err := ReadProc(pid)
	if err != nil {
		return nil, err
	}
	s := &Sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{}),
		start: first, startAt: time.Now(), peak: first.RSS, peakAnon: first.AnonRSS, last: first, lastAt: time.Now(),
		series: []RSSPoint{{0, first.RSS}}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				st, err := ReadProc(pid)
				if err != nil {
					s.firstErr = err
					return
				}
				s.last, s.lastAt = st, time.Now()
				s.peak, s.peakAnon = max(s.peak, st.RSS), max(s.peakAnon, st.AnonRSS)
				s.series = append(s.series, RSSPoint{s.lastAt.Sub(s.startAt), st.RSS})
			}
		}
	}()
	return s, nil
}

// Usage is what a Sampler saw.
type Usage struct {
	StartRSS, PeakRSS, EndRSS int64
	PeakAnonRSS               int64      // the peak of ProcStats.AnonRSS
	CPU                       float64    // cores used on average (1.0 = one core busy)
	RSS                       []RSSPoint // every sample, in order, for a soak's curve
}

// Stop ends sampling and returns what was seen.
func (s *Sampler) Stop() (Usage, error) {
	close(s.stop)
	<-s.done
	if s.firstErr != nil {
		return Usage{}, s.firstErr
	}
	if st, err := ReadProc(s.pid); err == nil {
		s.last, s.lastAt = st, time.Now()
		s.peak, s.peakAnon = max(s.peak, st.RSS), max(s.peakAnon, st.AnonRSS)
		s.series = append(s.series, RSSPoint{s.lastAt.Sub(s.startAt), st.RSS})
	}
	u := Usage{StartRSS: s.start.RSS, PeakRSS: s.peak, EndRSS: s.last.RSS, PeakAnonRSS: s.peakAnon, RSS: s.series}
	if wall := s.lastAt.Sub(s.startAt); wall > 0 {
		u.CPU = (s.last.CPUTime - s.start.CPUTime).Seconds() / wall.Seconds()
	}
	return u, nil
}

// Every thins a run's RSS samples for a soak report, one line a minute
// rather than five a second: the last sample at or before each multiple of d,
// then the final sample.
func Every(series []RSSPoint, d time.Duration) []RSSPoint {
	if len(series) == 0 || d <= 0 {
		return series
	}
	var out []RSSPoint
	i := 0
	for mark := time.Duration(0); mark <= series[len(series)-1].At; mark += d {
		for i+1 < len(series) && series[i+1].At <= mark {
			i++
		}
		out = append(out, series[i])
	}
	if last := series[len(series)-1]; out[len(out)-1] != last {
		out = append(out, last)
	}
	return out
}
