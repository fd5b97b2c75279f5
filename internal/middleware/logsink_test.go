package middleware

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/logging"
)

// logSink collects the JSON lines a real logging.New logger writes, from
// server goroutines, and lets a test wait for them without sleeping.
type logSink struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []map[string]any
	raw   []string
	added chan struct{}
}

func newLogSink() *logSink { return &logSink{added: make(chan struct{}, 1024)} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	for {
		line, err := s.buf.ReadBytes('\n')
		if err != nil {
			s.buf.Write(line) // a partial line waits for the rest
			break
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			m = map[string]any{"unparsable": string(line)}
		}
		s.lines = append(s.lines, m)
		s.raw = append(s.raw, string(line))
		s.added <- struct{}{}
	}
	return len(p), nil
}

// logger is a real project logger writing to s, at DEBUG so that quiet
// lines are seen too.
func (s *logSink) logger(projectID string) *slog.Logger {
	return logging.New(s, slog.LevelDebug, projectID)
}

// wait returns the first line whose message is msg, waiting for it.
func (s *logSink) wait(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		for _, l := range s.lines {
			if l["message"] == msg {
				s.mu.Unlock()
				return l
			}
		}
		s.mu.Unlock()
		select {
		case <-s.added:
		case <-deadline:
			t.Fatalf("no %q line was logged; got:\n%s", msg, s.String())
		}
	}
}

// waitPrefix is wait for the first line whose message starts with prefix.
func (s *logSink) waitPrefix(t *testing.T, prefix string) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		for _, l := range s.lines {
			if m, _ := l["message"].(string); len(m) >= len(prefix) && m[:len(prefix)] == prefix {
				s.mu.Unlock()
				return l
			}
		}
		s.mu.Unlock()
		select {
		case <-s.added:
		case <-deadline:
			t.Fatalf("no line starting %q was logged; got:\n%s", prefix, s.String())
		}
	}
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b bytes.Buffer
	for _, l := range s.raw {
		b.WriteString(l)
	}
	return b.String()
}

// httpRequest is the access line's httpRequest object.
func httpRequest(t *testing.T, line map[string]any) map[string]any {
	t.Helper()
	hr, ok := line[KeyHTTPRequest].(map[string]any)
	if !ok {
		t.Fatalf("access line has no %s object: %v", KeyHTTPRequest, line)
	}
	return hr
}

func loggerAt(s *logSink, level slog.Level) *slog.Logger {
	return logging.New(s, level, "demo-acme")
}
