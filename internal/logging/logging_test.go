package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
)

func TestLinesHaveCloudLoggingShape(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelDebug, "demo-acme")
	ctx := WithTrace(t.Context(), Trace{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", Sampled: true})
	log.WarnContext(ctx, "backend slow", "ms", 250)

	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("log line is not JSON: %q: %v", buf.String(), err)
	}
	want := map[string]any{
		"severity":                             "WARNING",
		"message":                              "backend slow",
		"logging.googleapis.com/trace":         "projects/demo-acme/traces/4bf92f3577b34da6a3ce929d0e0e4736",
		"logging.googleapis.com/spanId":        "00f067aa0ba902b7",
		"logging.googleapis.com/trace_sampled": true,
		"ms":                                   float64(250),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, got[k], v, buf.String())
		}
	}
	for _, k := range []string{"msg", "level"} {
		if _, ok := got[k]; ok {
			t.Errorf("line still has slog's %q key: %s", k, buf.String())
		}
	}
}

func TestTraceFromHeaders(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   Trace
		ok     bool
	}{
		{"a sampled traceparent is read",
			http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
			Trace{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true}, true},
		{"traceparent wins over X-Cloud-Trace-Context",
			http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
				"X-Cloud-Trace-Context": {"105445aa7843bc8bf206b12000100000/1;o=1"}},
			Trace{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", false}, true},
		{"X-Cloud-Trace-Context is the fallback",
			http.Header{"X-Cloud-Trace-Context": {"105445AA7843BC8BF206B12000100000/1;o=1"}},
			Trace{"105445aa7843bc8bf206b12000100000", "1", true}, true},
		{"a trace id without span is enough",
			http.Header{"X-Cloud-Trace-Context": {"105445aa7843bc8bf206b12000100000"}},
			Trace{"105445aa7843bc8bf206b12000100000", "", false}, true},
		{"an all-zero traceparent is invalid",
			http.Header{"Traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}, Trace{}, false},
		{"a short trace id is invalid",
			http.Header{"X-Cloud-Trace-Context": {"abc/1;o=1"}}, Trace{}, false},
		{"no header, no trace", http.Header{}, Trace{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := TraceFromHeaders(tt.header)
			if got != tt.want || ok != tt.ok {
				t.Errorf("TraceFromHeaders(%v) = %+v, %v; want %+v, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestWithAttrsAddsToEveryLineOfTheContext(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelInfo, "p")
	ctx := WithAttrs(t.Context(), slog.String("component", "backend"))
	ctx = WithAttrs(ctx, slog.String("requestId", "r-1"))
	log.InfoContext(ctx, "one")
	log.InfoContext(t.Context(), "two")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatal(err)
	}
	if first["component"] != "backend" || first["requestId"] != "r-1" {
		t.Errorf("line logged with the context: want component and requestId, got %s", lines[0])
	}
	if _, ok := second["requestId"]; ok {
		t.Errorf("line logged without the context carries its attrs: %s", lines[1])
	}
}

func TestAKeyTheLoggerCarriesIsNotRepeatedFromTheContext(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelInfo, "p").With("component", "backend")
	ctx := WithAttrs(t.Context(), slog.String("component", "backend"), slog.String("requestId", "r-1"))
	log.InfoContext(ctx, "one")
	log.WithGroup("g").InfoContext(ctx, "two") // a group's keys are not top-level ones

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", buf.String())
	}
	if n := bytes.Count(lines[0], []byte(`"component"`)); n != 1 {
		t.Errorf("line holds %d component keys, want 1: %s", n, lines[0])
	}
	if !bytes.Contains(lines[0], []byte(`"requestId":"r-1"`)) {
		t.Errorf("line lost the context's other attrs: %s", lines[0])
	}
	if !bytes.Contains(lines[1], []byte(`"requestId":"r-1"`)) {
		t.Errorf("a grouped logger lost the context's attrs: %s", lines[1])
	}
}
