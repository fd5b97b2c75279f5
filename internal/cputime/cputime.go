// Package cputime measures the CPU time this process uses, for benchmarks on
// a shared machine: other processes' load inflates wall-clock ns/op several
// times over, and barely moves the CPU time each operation costs.
package cputime

import (
	"syscall"
	"testing"
	"time"
)

// Used is the user+system CPU time this process has used so far, all its
// threads together (getrusage RUSAGE_SELF).
func Used(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportPerOp reports, as cpu-ns/op, the CPU time used since start (a value
// of Used) divided by b.N.
func ReportPerOp(b *testing.B, start time.Duration) {
	b.Helper()
	b.ReportMetric(float64(Used(b)-start)/float64(b.N), "cpu-ns/op")
}
