package main

import (
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestRunRefusesBadFlagsBeforeSendingAnything checks the flag errors a user
// meets first: each names the flag, and none gets as far as signing in (no
// stack runs here, so getting that far would fail differently).
func TestRunRefusesBadFlagsBeforeSendingAnything(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-rate", "fast"}, `-rate: "fast" is not a non-negative number`},
		{[]string{"-workers", "8,-1"}, `-workers: "-1" is not a non-negative number`},
		{[]string{"-policy-rules", "ten"}, `-policy-rules: "ten" is not a non-negative number`},
		{[]string{"-own-gateway=false", "-policy-rules", "0,10"}, "-policy-rules needs -own-gateway"},
		{[]string{"-targets", "backend,gatway"}, `-targets: unknown target "gatway"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := run(t.Context(), tt.args, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestChildSubcommandsRefuseIncompleteCommandLines checks that the child
// processes' subcommands name what is missing instead of serving half-wired.
func TestChildSubcommandsRefuseIncompleteCommandLines(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve-gateway", "-project", "demo-acme"}, "serve-gateway: -istio-dir is required"},
		{[]string{"serve-bare-proxy", "-cert-dir", "pki/gateway"}, "serve-bare-proxy: -backend-addr is required"},
		{[]string{"serve-bare-proxy", "-cert-dir", "pki/gateway", "-backend-addr", "127.0.0.1:1", "extra"}, `serve-bare-proxy: unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := run(t.Context(), tt.args, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestTheToolLinksNoComponentItDoesNotRun keeps the measured processes (this
// binary, run again as the gateway and bare-proxy children) free of the
// stack's other components: linking local/stack for its default addresses
// once cost every child 16 MB of RSS at start (35 MB → 51 MB, `loadtest -h`
// under /usr/bin/time -f %M), which the gateway's figures would count.
func TestTheToolLinksNoComponentItDoesNotRun(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range []string{"/local/stack", "/frontend", "/backend", "/apikeys", "/local/identity", "/local/google", "/web"} {
		if slices.Contains(strings.Fields(string(out)), "github.com/acme/cloudrun-istio-gke"+pkg) {
			t.Errorf("cmd/loadtest links github.com/acme/cloudrun-istio-gke%s; read devstack's defaults from local/stack/defaults", pkg)
		}
	}
}
