package command

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	refused := errors.New("listening on 127.0.0.1:8080: address already in use")
	byKind := func(err error) int {
		if errors.Is(err, refused) {
			return 3
		}
		return 1
	}
	tests := []struct {
		name     string
		err      error
		exitCode func(error) int
		want     int
		wantLine string
	}{
		{"success exits 0 and prints nothing", nil, nil, 0, ""},
		{"-h is not a failure", fmt.Errorf("parsing flags: %w", flag.ErrHelp), nil, 0, ""},
		{"a failure is one line naming the command, status 1", refused, nil, 1,
			"backend: listening on 127.0.0.1:8080: address already in use\n"},
		{"the command's own mapping chooses the status", fmt.Errorf("serving: %w", refused), byKind, 3,
			"backend: serving: listening on 127.0.0.1:8080: address already in use\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			if got := status("backend", tt.err, tt.exitCode, &stderr); got != tt.want || stderr.String() != tt.wantLine {
				t.Errorf("status(%v) = %d, stderr %q; want %d, %q", tt.err, got, stderr.String(), tt.want, tt.wantLine)
			}
		})
	}
}
