package loadtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"testing"
	"time"
)

// echoHelperEnv makes TestLoopbackEchoHelper, run in a child process, serve.
const echoHelperEnv = "LOAD_LOOPBACK_ECHO_HELPER"

// TestLoopbackEchoHelper is not a test: it is the echo server of
// BenchmarkLoopbackRoundTrip, run in a process of its own (the os/exec
// tests' helper-process pattern) by StartGatewayProcess, as the load tool
// starts its gateway. It prints its address and echoes until SIGTERM.
func TestLoopbackEchoHelper(t *testing.T) {
	if os.Getenv(echoHelperEnv) != "1" {
		t.Skip("the echo server of BenchmarkLoopbackRoundTrip, run in a child process")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("listening", ln.Addr())
	<-ctx.Done()
	ln.Close()
}

// BenchmarkLoopbackRoundTrip is the floor under every hop the load tool
// measures: one 200-byte TCP round trip on loopback to another process, with
// no HTTP or TLS, sent back to back ("busy") and one every 2 ms ("paced", as
// a request at a few hundred per second finds the machine: the other
// process's threads and the vCPUs gone idle in between). It reports the
// median round trip as p50-µs.
func BenchmarkLoopbackRoundTrip(b *testing.B) {
	b.Setenv(echoHelperEnv, "1") // inherited by the child
	echo, err := StartGatewayProcess(b.Context(), io.Discard, 0, "-test.run=^TestLoopbackEchoHelper$")
	if err != nil {
		b.Fatal(err)
	}
	defer echo.Stop()
	addr := echo.Addr

	for _, bm := range []struct {
		name string
		gap  time.Duration
	}{{"busy", 0}, {"paced", 2 * time.Millisecond}} {
		b.Run(bm.name, func(b *testing.B) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg, buf := make([]byte, 200), make([]byte, 200)
			var rtts []time.Duration
			for b.Loop() {
				if bm.gap > 0 {
					time.Sleep(bm.gap)
				}
				start := time.Now()
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, time.Since(start))
			}
			slices.Sort(rtts)
			b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50-µs")
		})
	}
}
