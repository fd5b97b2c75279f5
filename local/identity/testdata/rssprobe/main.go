// Command rssprobe runs only the identity emulator, on a loopback port it
// prints, until its stdin closes. TestIdleRSS builds it to measure the
// emulator's resident memory in a process holding nothing else (the test
// binary itself links the Firebase Admin SDK, gRPC and more).
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/acme/cloudrun-istio-gke/internal/serve"
	"github.com/acme/cloudrun-istio-gke/local/identity"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rssprobe:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: rssprobe STATE_DIR")
	}
	e, err := identity.New(identity.Config{ProjectID: "demo-acme", StateDir: args[0]})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := serve.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ln.Addr().String())
	go func() {
		io.Copy(io.Discard, stdin) // the parent closes stdin to stop us
		cancel()
	}()
	return serve.Run(ctx, serve.Options{Name: "identity", Handler: e.Handler(), Listener: ln})
}
