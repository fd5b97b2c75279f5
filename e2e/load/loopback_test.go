package load

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// echoHelperEnv makes TestLoopbackEchoHelper, run in a child process, serve.
const echoHelperEnv = "LOAD_LOOPBACK_ECHO_HELPER"

// TestLoopbackEchoHelper is not a test: it is the echo server of
// BenchmarkLoopbackRoundTrip, run in a process of its own (the os/exec
// tests' helper-process pattern). It prints its address and echoes until
// its stdin closes.
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
	fmt.Println("listening", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	ln.Close()
}

// BenchmarkLoopbackRoundTrip is the floor under every hop the load tool
// measures: one 200-byte TCP round trip on loopback to another process, with
// no HTTP or TLS, sent back to back ("busy") and one every 2 ms ("paced", as
// a request at a few hundred per second finds the machine: the other
// process's threads and the vCPUs gone idle in between). It reports the
// median round trip as p50-µs.
func BenchmarkLoopbackRoundTrip(b *testing.B) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoopbackEchoHelper$", "-test.v")
	cmd.Env = append(os.Environ(), echoHelperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	var addr string
	for sc := bufio.NewScanner(stdout); addr == "" && sc.Scan(); {
		if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			addr = a
		}
	}
	if addr == "" {
		b.Fatal("the echo process did not say where it listens")
	}
	go io.Copy(io.Discard, stdout)

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
