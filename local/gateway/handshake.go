package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

// handshakeTimeout bounds a TLS handshake, as net/http bounds it by the
// server's ReadHeaderTimeout (internal/serve: 10 s).
const handshakeTimeout = 10 * time.Second

// handshakingListener completes each connection's TLS handshake before
// net/http sees the connection. net/http would do it too, but it logs a
// failure as one line of text that names the error and not the certificate
// refused; Envoy's listener access log has the peer certificate and
// %DOWNSTREAM_TRANSPORT_FAILURE_REASON% for such a connection. Here the
// failure, with the *tls.CertificateVerificationError that holds the
// certificates, goes to failed.
//
// Handshakes run one goroutine per connection, as they would in net/http,
// so a slow client holds up no one else. Close stops them all and waits.
type handshakingListener struct {
	net.Listener
	cfg    *tls.Config
	failed func(*tls.Conn, error)

	ready  chan net.Conn // handshaken connections for Accept
	errs   chan error    // the raw listener's Accept errors
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func newHandshakingListener(ln net.Listener, cfg *tls.Config, failed func(*tls.Conn, error)) *handshakingListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &handshakingListener{
		Listener: ln, cfg: cfg, failed: failed,
		ready: make(chan net.Conn), errs: make(chan error),
		ctx: ctx, cancel: cancel,
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *handshakingListener) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			// net/http decides: it retries a temporary error and
			// closes the listener on any other.
			select {
			case l.errs <- err:
			case <-l.ctx.Done():
				return
			}
			continue
		}
		l.wg.Add(1)
		go l.handshake(raw)
	}
}

func (l *handshakingListener) handshake(raw net.Conn) {
	defer l.wg.Done()
	conn := tls.Server(raw, l.cfg)
	ctx, cancel := context.WithTimeout(l.ctx, handshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		if l.ctx.Err() == nil { // not merely cut short by Close
			l.failed(conn, err)
		}
		conn.Close()
		return
	}
	select {
	case l.ready <- conn:
	case <-l.ctx.Done():
		conn.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *handshakingListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops accepting, interrupts the handshakes under way and waits for
// their goroutines.
func (l *handshakingListener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.Listener.Close()
		l.wg.Wait()
	})
	return err
}

// handshakeFailed is the access log line of a connection refused at the TLS
// handshake: who connected, the SNI, why, and the certificate it presented,
// so that "which certificate was refused?" is answered by the log. A
// certificate is public; keys and tokens never reach this point.
func (g *Gateway) handshakeFailed(conn *tls.Conn, err error) {
	cs := conn.ConnectionState()
	attrs := []slog.Attr{
		slog.String("remote", conn.RemoteAddr().String()),
		slog.String("sni", cs.ServerName),
		slog.Int("port", int(g.cfg.Port)),
	}
	level, reason := slog.LevelWarn, "tls_handshake_failed"
	peers := cs.PeerCertificates // set when a check after verification refused them
	if cve, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		peers = cve.UnverifiedCertificates
		reason = peerCertificateReason(cve.Err, peers[0], g.cfg.Now())
	}
	switch {
	case len(peers) > 0:
		attrs = append(attrs, slog.Any("peer_certificate", tlsdir.CertLogValue(peers[0])))
	case errors.Is(err, io.EOF):
		// The client hung up before saying anything: a port probe, most
		// often, not worth a warning.
		level = slog.LevelDebug
	}
	attrs = append(attrs, slog.String("reason", reason), slog.String("error", err.Error()))
	g.access.LogAttrs(context.Background(), level, "tls handshake failed", attrs...)
}

// peerCertificateReason says in a few words why the client's certificate
// was refused; the error that goes with it has the details.
func peerCertificateReason(err error, leaf *x509.Certificate, now time.Time) string {
	if cie, ok := errors.AsType[x509.CertificateInvalidError](err); ok && cie.Reason == x509.Expired {
		if now.Before(leaf.NotBefore) {
			return "client_certificate_not_yet_valid"
		}
		if now.After(leaf.NotAfter) {
			return "client_certificate_expired"
		}
		// An intermediate in the chain is the one out of its validity.
		return "client_certificate_chain_expired"
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return "client_certificate_untrusted_ca"
	}
	return "client_certificate_refused"
}
