// Package logtest collects what servers log while a test runs: their
// goroutines write concurrently, so the sink must be safe for that, and a
// line may be written a moment after the client has seen the outcome it
// records, so a test can wait for one.
package logtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent writers. The zero value is
// ready to use.
type Buffer struct {
	// Timeout bounds WaitFor; zero means WaitTimeout.
	Timeout time.Duration

	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed by the next Write; nil until a waiter needs it
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
		b.written = nil
	}
	return b.b.Write(p)
}

// WaitTimeout is WaitFor's default bound: a line that has not come by then
// is not coming.
const WaitTimeout = 10 * time.Second

// WaitFor returns the first line (without its newline) for which match is
// true, waiting up to Timeout for it to be written. Otherwise it fails
// t, saying what was awaited and quoting the log.
func (b *Buffer) WaitFor(t testing.TB, what string, match func(line string) bool) string {
	t.Helper()
	wait := b.Timeout
	if wait == 0 {
		wait = WaitTimeout
	}
	timeout := time.After(wait)
	for {
		b.mu.Lock()
		text := b.b.String()
		if b.written == nil {
			b.written = make(chan struct{})
		}
		written := b.written
		b.mu.Unlock()
		for l := range strings.Lines(text) {
			if l = strings.TrimSuffix(l, "\n"); match(l) {
				return l
			}
		}
		select {
		case <-written:
		case <-timeout:
			t.Fatalf("no log line %s within %v; the log:\n%s", what, wait, text)
		}
	}
}

// Containing matches a line that contains every one of want.
func Containing(want ...string) func(line string) bool {
	return func(line string) bool {
		for _, w := range want {
			if !strings.Contains(line, w) {
				return false
			}
		}
		return true
	}
}

// WaitForJSON is WaitFor for a JSON line: it returns the first line that is
// a JSON object for which match is true, decoded.
func (b *Buffer) WaitForJSON(t testing.TB, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	b.WaitFor(t, what, func(line string) bool {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || !match(m) {
			return false
		}
		found = m
		return true
	})
	return found
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// JSONLines parses every line written so far as one JSON object, as the
// project's loggers write them.
func (b *Buffer) JSONLines() ([]map[string]any, error) {
	var out []map[string]any
	for l := range strings.Lines(b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			return nil, fmt.Errorf("log line is not JSON: %q: %w", l, err)
		}
		out = append(out, m)
	}
	return out, nil
}
