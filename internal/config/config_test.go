package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		addr    string
		timeout time.Duration
		wantErr string
	}{
		{name: "defaults stand when nothing is given", addr: "127.0.0.1:8080", timeout: time.Second},
		{name: "the environment overrides defaults", env: map[string]string{"ADDR": ":9", "TIMEOUT": "5s"},
			addr: ":9", timeout: 5 * time.Second},
		{name: "flags override the environment", args: []string{"-addr", ":7"}, env: map[string]string{"ADDR": ":9"},
			addr: ":7", timeout: time.Second},
		{name: "a bad environment value names its variable", env: map[string]string{"TIMEOUT": "soon"},
			wantErr: `env TIMEOUT="soon"`},
		{name: "stray arguments are refused", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			addr := fs.String("addr", "127.0.0.1:8080", "listen address")
			timeout := fs.Duration("timeout", time.Second, "timeout")
			getenv := func(k string) string { return tt.env[k] }
			err := Parse(fs, tt.args, getenv, map[string]string{"addr": "ADDR", "timeout": "TIMEOUT"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *addr != tt.addr || *timeout != tt.timeout {
				t.Errorf("got addr %q timeout %v, want %q %v", *addr, *timeout, tt.addr, tt.timeout)
			}
			if u := fs.Lookup("addr").Usage; !strings.Contains(u, "(env ADDR)") {
				t.Errorf("usage %q does not name its variable", u)
			}
		})
	}
}

func TestListenAddrHonoursPORT(t *testing.T) {
	if got := ListenAddr(func(string) string { return "" }, "127.0.0.1:8080"); got != "127.0.0.1:8080" {
		t.Errorf("without PORT: got %q, want the loopback default", got)
	}
	if got := ListenAddr(func(k string) string { return map[string]string{"PORT": "9090"}[k] }, "127.0.0.1:8080"); got != ":9090" {
		t.Errorf("with PORT=9090: got %q, want :9090", got)
	}
}
