package logtest

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBufferKeepsEveryConcurrentWrite(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 50 {
		t.Fatalf("got %d lines from 50 concurrent writers, want 50", n)
	}
}

func TestJSONLinesParsesEachLineAndNamesABadOne(t *testing.T) {
	var b Buffer
	b.Write([]byte(`{"message":"a"}` + "\n" + `{"message":"b"}` + "\n"))
	lines, err := b.JSONLines()
	if err != nil || len(lines) != 2 || lines[1]["message"] != "b" {
		t.Fatalf("JSONLines = %v, %v; want two objects, the second with message b", lines, err)
	}
	b.Write([]byte("not json\n"))
	if _, err := b.JSONLines(); err == nil || !strings.Contains(err.Error(), "not json") {
		t.Fatalf("JSONLines with a bad line: %v, want an error quoting it", err)
	}
}

func TestWaitForReturnsALineWrittenLaterAndMatchersSelectIt(t *testing.T) {
	var b Buffer
	b.Write([]byte(`{"msg":"start"}` + "\n"))
	go func() {
		for i := range 3 {
			fmt.Fprintf(&b, `{"msg":"request","n":%d}`+"\n", i)
		}
	}()
	if got := b.WaitFor(t, "for request 2", Containing(`"request"`, `"n":2`)); got != `{"msg":"request","n":2}` {
		t.Errorf("WaitFor(Containing) = %q, want the line of request 2", got)
	}
	if got := b.WaitForJSON(t, "for request 1", func(m map[string]any) bool { return m["n"] == 1.0 }); got["msg"] != "request" || got["n"] != 1.0 {
		t.Errorf("WaitForJSON = %v, want the line of request 1", got)
	}
}

func TestWaitForFailsNamingWhatItAwaited(t *testing.T) {
	b := Buffer{Timeout: 20 * time.Millisecond}
	b.Write([]byte("something else\n"))
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.WaitFor(ft, "for the thing", Containing("never"))
	}()
	<-done
	if !strings.Contains(ft.msg, "no log line for the thing") || !strings.Contains(ft.msg, "something else") {
		t.Errorf("WaitFor failed with %q; want what it awaited and the log", ft.msg)
	}
}

// fatalRecorder records Fatalf instead of failing, ending the goroutine as
// t.Fatalf does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
