// Package logtest collects what servers log while a test runs: their
// goroutines write concurrently, so the sink must be safe for that.
package logtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent writers. The zero value is
// ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
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
