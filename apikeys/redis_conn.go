package apikeys

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisConn says how to reach a Redis server securely. It is shaped after
// Memorystore for Redis, the production store:
//
//   - AUTH (https://cloud.google.com/memorystore/docs/redis/auth-overview):
//     each instance has one AUTH string (a UUID) that a client sends before
//     any other command. It is read from a file (a Secret Manager or
//     Kubernetes secret volume), never a flag or environment value, so it
//     stays out of `ps`, crash dumps of the environment, and logs.
//   - In-transit encryption
//     (https://cloud.google.com/memorystore/docs/redis/about-in-transit-encryption):
//     TLS 1.2 or later only, on the instance's TLS port (6378), the server
//     verified against the instance's own Certificate Authority, which you
//     download (https://cloud.google.com/memorystore/docs/redis/manage-in-transit-encryption).
//     Google notes the AUTH string is not confidential without it.
type RedisConn struct {
	Addr     string // host:port; Memorystore listens on 6378 with in-transit encryption
	AuthFile string // file holding the AUTH string; empty: no AUTH
	CAFile   string // PEM CA bundle that signed the server's certificate; empty: plain TCP
}

// Options returns go-redis options for c: Password from the AUTH file and,
// with a CA file, a TLS config that trusts that CA only (not the system
// roots: a public CA has no say over a private instance's identity). The
// caller adds timeouts and pool settings.
func (c RedisConn) Options() (*redis.Options, error) {
	o := &redis.Options{Addr: c.Addr}
	if c.AuthFile != "" {
		pw, err := readAuthString(c.AuthFile)
		if err != nil {
			return nil, &RedisConnError{Field: "AuthFile", Err: err}
		}
		o.Password = pw
	}
	if c.CAFile != "" {
		pool, err := readCAPool(c.CAFile)
		if err != nil {
			return nil, &RedisConnError{Field: "CAFile", Err: err}
		}
		// ServerName is left empty: go-redis dials with tls.DialWithDialer,
		// which verifies the host part of Addr (an IP for Memorystore).
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	return o, nil
}

// RedisConnError is a RedisConn setting that cannot be used; Field names
// it ("AuthFile" or "CAFile") so that a command can name its own flag.
type RedisConnError struct {
	Field string
	Err   error
}

func (e *RedisConnError) Error() string { return "RedisConn." + e.Field + ": " + e.Err.Error() }
func (e *RedisConnError) Unwrap() error { return e.Err }

// readAuthString reads the AUTH string. A trailing newline (left by an
// editor or `echo`) is not part of it; an empty file is a mistake, not "no
// AUTH", since an operator who set the file meant to authenticate.
func readAuthString(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("reading the redis AUTH string: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("redis AUTH file %s is empty", name)
	}
	return pw, nil
}

func readCAPool(name string) (*x509.CertPool, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading the redis CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("redis CA file %s: %w", name, errNoPEMCerts)
	}
	return pool, nil
}

var errNoPEMCerts = errors.New("no PEM certificates found")
