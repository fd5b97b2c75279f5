package load

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
	RSS     int64         // resident set size, bytes (VmRSS)
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
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return s, fmt.Errorf("process %d VmRSS %q: %w", pid, v, err)
			}
			s.RSS = kb << 10
		}
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

// Sampler records a process's peak and last RSS while a run goes on.
type Sampler struct {
	pid      int
	stop     chan struct{}
	done     chan struct{}
	start    ProcStats
	startAt  time.Time
	peak     int64
	last     ProcStats
	lastAt   time.Time
	firstErr error
}

// Sample starts sampling pid every interval until Stop.
func Sample(pid int, every time.Duration) (*Sampler, error) {
	first, err := ReadProc(pid)
	if err != nil {
		return nil, err
	}
	s := &Sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{}),
		start: first, startAt: time.Now(), peak: first.RSS, last: first, lastAt: time.Now()}
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
				s.peak = max(s.peak, st.RSS)
			}
		}
	}()
	return s, nil
}

// Usage is what a Sampler saw.
type Usage struct {
	StartRSS, PeakRSS, EndRSS int64
	CPU                       float64 // cores used on average (1.0 = one core busy)
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
		s.peak = max(s.peak, st.RSS)
	}
	u := Usage{StartRSS: s.start.RSS, PeakRSS: s.peak, EndRSS: s.last.RSS}
	if wall := s.lastAt.Sub(s.startAt); wall > 0 {
		u.CPU = (s.last.CPUTime - s.start.CPUTime).Seconds() / wall.Seconds()
	}
	return u, nil
}
