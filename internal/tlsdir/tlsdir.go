// Package tlsdir serves TLS material from a directory in the Kubernetes TLS
// secret layout (tls.crt, tls.key, ca.crt) — a Secret volume on GKE, the dev
// PKI locally — or from three files (Secret Manager volumes on Cloud Run),
// and follows rotations of those files without a restart.
//
// The gateway serves with ServerConfig (its ca.crt verifies client
// certificates); the frontend dials with ClientConfig (its ca.crt verifies the
// gateway). Both look at the files at most once per CheckInterval, with a
// stat, so the cost per handshake is a clock read and an atomic load. Material is validated
// before use; a rotation caught half-written (a new certificate beside the old
// key) or expired is logged naming the file and refused, and the last good
// material stays in use. A rotation to a certificate that is not valid yet
// (issued by a host whose clock is ahead) is refused the same way but taken
// up, without the files changing again, once its NotBefore has passed. A
// certificate with under a tenth of its life left that nothing has replaced
// is warned about once, and one that has expired is logged as an error once:
// from then on every handshake fails with an error naming the file.
//
// Rotation applies to new connections. A connection made before it keeps
// the certificates it was made with until it closes: TLS authenticates a
// connection once, at its handshake, and Envoy does the same.
package tlsdir

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
)

// CheckInterval is how often, at most, the files are stat'ed for changes.
const CheckInterval = time.Second

// Config says where the TLS material is: a directory in the TLS secret
// layout, or three files.
type Config struct {
	Dir string // holds tls.crt, tls.key and ca.crt
	// CertFile, KeyFile and CAFile, when set, override Dir's file of that
	// name: Cloud Run mounts each Secret Manager secret as a volume of its
	// own, so there the three files live in three directories. Without Dir
	// all three are required.
	CertFile, KeyFile, CAFile string
	Logger                    *slog.Logger // optional: reloads and refused rotations are logged here
	// Now is the clock for expiry checks and for pacing the change checks;
	// nil means time.Now. Tests move it to cross CheckInterval and NotAfter.
	Now func() time.Time
}

// Dir is the current TLS material of one directory (or three files). It is
// safe for concurrent use.
type Dir struct {
	paths [3]string // tls.crt, tls.key, ca.crt
	where string    // for logs: the directory, or the certificate file
	log   *slog.Logger
	now   func() time.Time

	cur       atomic.Pointer[material]
	nextCheck atomic.Int64 // UnixNano before which the files are not stat'ed again

	mu         sync.Mutex // serialises reloads and guards the fields below
	tried      stamp      // the files as last attempted, so a bad rotation is reported once
	statFailed bool       // the last check could not stat a file (reported once too)
	// retryAt is the NotBefore of a refused rotation that was only early:
	// the same files are tried again once it has passed.
	retryAt time.Time
}

// material is one validated, immutable set of files.
type material struct {
	cert    tls.Certificate // Leaf is set
	roots   *x509.CertPool  // from ca.crt
	stamp   stamp
	warned  atomic.Bool // the expiry warning was logged
	expired atomic.Bool // the expiry error was logged
}

// stamp identifies the versions of the three files by size, modification
// time and inode, which every rotation (rewrite or rename over) changes.
type stamp [3]fileID

type fileID struct {
	size  int64
	mtime time.Time
	fi    os.FileInfo // for os.SameFile: a rename over the file changes it
}

func (a fileID) same(b fileID) bool {
	return a.fi != nil && b.fi != nil && a.size == b.size && a.mtime.Equal(b.mtime) && os.SameFile(a.fi, b.fi)
}

func (a stamp) same(b stamp) bool {
	return a[0].same(b[0]) && a[1].same(b[1]) && a[2].same(b[2])
}

// Open loads and validates the material cfg names. It fails, naming the
// file, if a file is missing or unreadable, the key does not match the
// certificate, or the certificate is expired or not yet valid.
func Open(cfg Config) (*Dir, error) {
	d := &Dir{log: cfg.Logger, now: cfg.Now, where: cfg.Dir}
	for i, f := range []struct{ file, name, field string }{
		{cfg.CertFile, certgen.CertFile, "CertFile"},
		{cfg.KeyFile, certgen.KeyFile, "KeyFile"},
		{cfg.CAFile, certgen.CAFile, "CAFile"},
	} {
		switch {
		case f.file != "":
			d.paths[i] = f.file
		case cfg.Dir != "":
			d.paths[i] = filepath.Join(cfg.Dir, f.name)
		default:
			return nil, fmt.Errorf("tlsdir: Config.Dir or Config.%s is required", f.field)
		}
	}
	if d.where == "" {
		d.where = cfg.CertFile
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	m, err := d.load()
	if err != nil {
		return nil, err
	}
	d.cur.Store(m)
	d.tried = m.stamp
	d.nextCheck.Store(d.now().Add(CheckInterval).UnixNano())
	return d, nil
}

// Certificate returns the leaf certificate in use now, for logs and health
// reports.
func (d *Dir) Certificate() *x509.Certificate {
	m, _ := d.current()
	return m.cert.Leaf
}

// ServerConfig returns a TLS config for an HTTPS server (it offers h2 and
// http/1.1) that picks up the current certificate and client CA pool on every
// handshake. clientAuth is explicit because it is the security decision:
// tls.RequireAndVerifyClientCert is Istio's MUTUAL, tls.NoClientCert SIMPLE.
func (d *Dir) ServerConfig(clientAuth tls.ClientAuthType) *tls.Config {
	type built struct {
		m   *material
		cfg *tls.Config
	}
	var last atomic.Pointer[built] // one config per material, not per handshake
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m, now := d.current()
			if err := d.usable(m, now); err != nil {
				return nil, err // the server's error log names the file
			}
			if b := last.Load(); b != nil && b.m == m {
				return b.cfg, nil
			}
			cfg := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				NextProtos:   []string{"h2", "http/1.1"},
				Certificates: []tls.Certificate{m.cert},
				ClientCAs:    m.roots,
				ClientAuth:   clientAuth,
				Time:         d.now,
			}
			last.Store(&built{m: m, cfg: cfg})
			return cfg, nil
		},
	}
}

// ClientConfig returns a TLS config for one new connection to serverName: the
// current client certificate, ca.crt as the only roots, and ALPN for h2 and
// http/1.1. Call it per dial (see DialTLSContext) so that new connections use
// rotated material. serverName is what the server certificate must name — an
// internal host name when the server is reached by private IP.
func (d *Dir) ClientConfig(serverName string) (*tls.Config, error) {
	if serverName == "" {
		return nil, errors.New("tlsdir: ClientConfig needs a server name to verify the server against")
	}
	m, now := d.current()
	if err := d.usable(m, now); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		ServerName: serverName,
		RootCAs:    m.roots,
		// Always present the certificate, whatever CAs the server names
		// (Envoy names none): a refusal is then the server's, and explicit.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &m.cert, nil
		},
		Time: d.now,
	}, nil
}

// DialTLSContext returns a dial function for http.Transport.DialTLSContext
// that handshakes each new connection with ClientConfig(serverName). The
// Transport must set ForceAttemptHTTP2: with a custom dialer net/http does
// not speak HTTP/2 on its own, yet the server may have chosen h2 in ALPN.
func (d *Dir) DialTLSContext(serverName string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cfg, err := d.ClientConfig(serverName)
		if err != nil {
			return nil, err
		}
		dialer := &tls.Dialer{Config: cfg}
		return dialer.DialContext(ctx, network, addr)
	}
}

// usable refuses material whose certificate has expired since it was loaded
// (no rotation came in time): a clear error beats a peer's bare alert.
func (d *Dir) usable(m *material, now time.Time) error {
	if now.After(m.cert.Leaf.NotAfter) {
		return fmt.Errorf("tlsdir: %s: %s has expired and no valid replacement was found",
			d.paths[0], Describe(m.cert.Leaf))
	}
	return nil
}

// current returns the material to use now, first reloading it if the files
// changed, which is checked at most once per CheckInterval; and the time it
// was asked at, so that a handshake reads the clock once.
func (d *Dir) current() (*material, time.Time) {
	now := d.now()
	next := d.nextCheck.Load()
	if ns := now.UnixNano(); ns >= next && d.nextCheck.CompareAndSwap(next, ns+int64(CheckInterval)) {
		d.refresh(now)
		d.warnIfExpiring(now)
	}
	return d.cur.Load(), now
}

// warnIfExpiring logs once per certificate when under a tenth of its life
// remains and no rotation has replaced it: time to renew it, before the
// handshakes start failing. Once it has expired it says so, once, as an
// error: each failing handshake names the file too, but this line is the
// one to alert on.
func (d *Dir) warnIfExpiring(now time.Time) {
	m := d.cur.Load()
	leaf := m.cert.Leaf
	switch {
	case now.After(leaf.NotAfter):
		if !m.expired.Swap(true) {
			d.log.Error("tls certificate has expired and nothing has replaced it; every handshake fails until a valid one is in place",
				"file", d.paths[0], "certificate", CertLogValue(leaf))
		}
	case now.Before(leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 10)):
	case !m.warned.Swap(true):
		d.log.Warn("tls certificate expires soon and has not been rotated", "file", d.paths[0],
			"certificate", CertLogValue(leaf))
	}
}

func (d *Dir) refresh(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.stat()
	if err != nil {
		if !d.statFailed {
			d.log.Error("tls material unreadable; keeping the last good one", "dir", d.where, "error", err.Error())
		}
		d.statFailed = true
		return
	}
	d.statFailed = false
	if s.same(d.cur.Load().stamp) {
		return
	}
	if s.same(d.tried) && (d.retryAt.IsZero() || now.Before(d.retryAt)) {
		return
	}
	d.tried, d.retryAt = s, time.Time{}
	m, err := d.load()
	if err != nil {
		// Often a rotation caught between two files; the next change
		// retries. One that is only early is retried when it is due.
		var early *notYetValidError
		if errors.As(err, &early) {
			d.retryAt = early.notBefore
		}
		d.log.Error("tls material rotation refused; keeping the last good one", "dir", d.where,
			"error", err.Error(), "inUse", CertLogValue(d.cur.Load().cert.Leaf))
		return
	}
	d.cur.Store(m)
	d.log.Info("tls material reloaded", "dir", d.where, "certificate", CertLogValue(m.cert.Leaf))
}

func (d *Dir) stat() (stamp, error) {
	var s stamp
	for i, name := range d.paths {
		fi, err := os.Stat(name)
		if err != nil {
			return stamp{}, err
		}
		s[i] = fileID{size: fi.Size(), mtime: fi.ModTime(), fi: fi}
	}
	return s, nil
}

// load reads and validates the files. It stats before reading, so a change
// racing the read shows up as a new stamp at the next check.
func (d *Dir) load() (*material, error) {
	s, err := d.stat()
	if err != nil {
		return nil, fmt.Errorf("tlsdir: %w", explainPermission(err))
	}
	var data [3][]byte
	for i, name := range d.paths {
		if data[i], err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("tlsdir: %w", explainPermission(err))
		}
	}
	certPath, keyPath, caPath := d.paths[0], d.paths[1], d.paths[2]

	chain, err := certgen.ParseCerts(data[0])
	if err != nil {
		return nil, fmt.Errorf("tlsdir: %s: %w", certPath, err)
	}
	leaf := chain[0]
	desc := Describe(leaf)
	cert, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return nil, fmt.Errorf("tlsdir: %s does not hold the key of %s in %s: %w", keyPath, desc, certPath, err)
	}
	now := d.now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tlsdir: %s: %s has expired", certPath, desc)
	}
	if now.Before(leaf.NotBefore) {
		return nil, &notYetValidError{notBefore: leaf.NotBefore,
			err: fmt.Errorf("tlsdir: %s: %s is not valid before %s", certPath, desc, leaf.NotBefore.UTC().Format(time.RFC3339))}
	}
	cas, err := certgen.ParseCerts(data[2])
	if err != nil {
		return nil, fmt.Errorf("tlsdir: %s: %w", caPath, err)
	}
	roots := x509.NewCertPool()
	valid := 0
	for _, ca := range cas {
		roots.AddCert(ca)
		if !now.After(ca.NotAfter) {
			valid++
		}
	}
	if valid == 0 {
		return nil, fmt.Errorf("tlsdir: %s: every CA certificate has expired (the first, %q, at %s)",
			caPath, cas[0].Subject, cas[0].NotAfter.UTC().Format(time.RFC3339))
	}
	return &material{cert: cert, roots: roots, stamp: s}, nil
}

// notYetValidError is a load refused only because it came early.
type notYetValidError struct {
	notBefore time.Time
	err       error
}

func (e *notYetValidError) Error() string { return e.err.Error() }
func (e *notYetValidError) Unwrap() error { return e.err }

// Describe names a certificate in errors and logs, by what tells two of them
// apart when one has been rotated in for the other: subject, SANs, serial
// (hex, as openssl and Envoy's %DOWNSTREAM_PEER_SERIAL% print it) and
// validity. A certificate is public; nothing secret is in it.
func Describe(c *x509.Certificate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "certificate %q (", c.Subject.String())
	if sans := sanList(c); sans != "" {
		fmt.Fprintf(&b, "SANs %s, ", sans)
	}
	fmt.Fprintf(&b, "serial %s, not before %s, not after %s)", Serial(c),
		c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	return b.String()
}

// CertLogValue is Describe as a log group, for queries on one field.
func CertLogValue(c *x509.Certificate) slog.Value {
	if c == nil {
		return slog.StringValue("")
	}
	attrs := []slog.Attr{slog.String("subject", c.Subject.String())}
	if sans := sanList(c); sans != "" {
		attrs = append(attrs, slog.String("sans", sans))
	}
	attrs = append(attrs,
		slog.String("serial", Serial(c)),
		slog.String("issuer", c.Issuer.String()),
		slog.String("notBefore", c.NotBefore.UTC().Format(time.RFC3339)),
		slog.String("notAfter", c.NotAfter.UTC().Format(time.RFC3339)),
	)
	return slog.GroupValue(attrs...)
}

// Serial is the certificate's serial number in lower-case hex.
func Serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// sanList lists URI SANs first (a client's identity), then DNS names and
// IP addresses (a server's).
func sanList(c *x509.Certificate) string {
	var names []string
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return strings.Join(names, " ")
}
