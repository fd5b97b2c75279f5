package clocktest

import (
	"testing"
	"time"
)

func TestAdvanceMovesNow(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	c := New(start)
	c.Advance(90 * time.Minute)
	if got, want := c.Now(), start.Add(90*time.Minute); !got.Equal(want) {
		t.Fatalf("Now after Advance(90m) = %v, want %v", got, want)
	}
}
