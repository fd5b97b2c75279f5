package logtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
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
