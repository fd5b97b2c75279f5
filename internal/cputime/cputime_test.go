package cputime

import (
	"testing"
	"time"
)

// TestUsedGrowsWithWork spins until Used has counted 10 ms more; a Used
// that stood still would spin until the 10 s bound.
func TestUsedGrowsWithWork(t *testing.T) {
	start := Used(t)
	for deadline := time.Now().Add(10 * time.Second); Used(t)-start < 10*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("10 s of busy loop and Used moved %v", Used(t)-start)
		}
	}
}
