package apikeys

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
)

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pingWith builds a client from conn's options for addr, PINGs once and
// returns the error from building the options or from the PING.
func pingWith(t *testing.T, conn RedisConn) error {
	t.Helper()
	o, err := conn.Options()
	if err != nil {
		return err
	}
	o.MaxRetries = -1 // one attempt: the answer, not a retry loop, is under test
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// TestRedisAUTHFromFile runs a real redis-server with requirepass, as a
// Memorystore instance with AUTH enabled behaves, and connects with the AUTH
// string read from a file.
func TestRedisAUTHFromFile(t *testing.T) {
	const secret = "0c3f8e2a-7d41-4b4e-9a53-1f2e6b7c8d90" // a UUID, as Memorystore's AUTH strings are
	srv := startRedisServer(t, func(port int) []string { return []string{"--port", strconv.Itoa(port)} },
		redis.Options{Password: secret}, "--requirepass", secret)
	addr := srv.Options().Addr
	srv.Close()

	tests := []struct {
		name     string
		authFile string
		wantErr  string // empty: PING succeeds
	}{
		{"the right AUTH string in a file connects", writeFile(t, "auth", secret), ""},
		{"a trailing newline in the file is not part of the AUTH string", writeFile(t, "auth", secret+"\n"), ""},
		{"a wrong AUTH string is refused by the server", writeFile(t, "auth", "not-the-secret"), "WRONGPASS"},
		{"no AUTH file is refused by the server", "", "NOAUTH"},
		{"a missing AUTH file is an error naming it", filepath.Join(t.TempDir(), "absent"), "absent"},
		{"an empty AUTH file is an error, not silently no AUTH", writeFile(t, "auth", "\n"), "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pingWith(t, RedisConn{Addr: addr, AuthFile: tt.authFile})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("PING: got %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("PING: got %v, want an error containing %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatalf("the error %q carries the AUTH string", err)
			}
		})
	}
}

// TestRedisTLSVerifiesTheServerAgainstTheGivenCA runs a real redis-server
// that speaks only TLS (as Memorystore with in-transit encryption does on
// port 6378), with a certificate from a throwaway CA, and shows that only a
// client trusting that CA gets through.
func TestRedisTLSVerifiesTheServerAgainstTheGivenCA(t *testing.T) {
	v := certgen.For(time.Now(), time.Hour)
	ca, err := certgen.NewCA("redis test CA", v)
	if err != nil {
		t.Fatal(err)
	}
	other, err := certgen.NewCA("another CA", v)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.IssueServer([]string{"127.0.0.1"}, v)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := certgen.WriteDir(dir, server, ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, certgen.CAFile)
	readyOpts, err := RedisConn{CAFile: caFile}.Options()
	if err != nil {
		t.Fatal(err)
	}
	srv := startRedisServer(t, func(port int) []string {
		return []string{"--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", filepath.Join(dir, certgen.CertFile),
			"--tls-key-file", filepath.Join(dir, certgen.KeyFile),
			"--tls-ca-cert-file", caFile,
			// Memorystore's mode is server authentication: clients hold no certificate.
			"--tls-auth-clients", "no"}
	}, *readyOpts)
	addr := srv.Options().Addr
	srv.Close()

	tests := []struct {
		name    string
		caFile  string
		wantErr string // empty: PING succeeds
	}{
		{"a client trusting the server's CA connects", caFile, ""},
		{"a client trusting another CA refuses the server", writeFile(t, "other.pem", string(other.CertPEM)), "certificate signed by unknown authority"},
		{"a client without TLS gets no answer from a TLS-only server", "", ""},
		{"a CA file without certificates is an error naming it", writeFile(t, "junk.pem", "not PEM"), "junk.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pingWith(t, RedisConn{Addr: addr, CAFile: tt.caFile})
			if tt.caFile == "" {
				// The server reads plain text as a broken TLS record and
				// closes; what the client sees is an I/O error, not a reply.
				if err == nil {
					t.Fatal("PING over plain TCP to a TLS-only server: got success, want an error")
				}
				return
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("PING: got %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("PING: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("TLS below 1.2 is never offered", func(t *testing.T) {
		o, err := RedisConn{Addr: addr, CAFile: caFile}.Options()
		if err != nil {
			t.Fatal(err)
		}
		if o.TLSConfig.MinVersion < 0x0303 {
			t.Fatalf("MinVersion: got %#x, want at least TLS 1.2 (0x0303)", o.TLSConfig.MinVersion)
		}
		if o.TLSConfig.InsecureSkipVerify {
			t.Fatal("InsecureSkipVerify is set: the server would not be verified")
		}
	})
}
