// Package command is what every main here does around its run function, so
// that each main is one line: the context ends at SIGINT or SIGTERM (servers
// then shut down gracefully), -h is not a failure, and a failure is one line
// on stderr naming the command, then a non-zero exit status.
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs run and exits as its error says. exitCode maps an error to the
// exit status; nil means 1 for every error.
func Main(name string, run func(ctx context.Context) error, exitCode func(error) int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	os.Exit(status(name, err, exitCode, os.Stderr))
}

// status reports err on stderr and returns the exit status for it.
func status(name string, err error, exitCode func(error) int, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) { // -h printed the flags
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if exitCode == nil {
		return 1
	}
	return exitCode(err)
}
