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

	"github.com/acme/cloudrun-istio-gke/internal/logging"
	"github.com/acme/cloudrun-istio-gke/internal/middleware"
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
// so a slow client holds up no one else. Close refuses new connections but,
// as net/http does with a connection it has accepted, lets the handshakes
// under way finish and hands them over (for at most closeWait): a client
// that connected just before a SIGTERM is served, not reset. Accept reports
// net.ErrClosed once none is left.
type handshakingListener struct {
	net.Listener
	cfg    *tls.Config
	failed func(*tls.Conn, error)

	ready chan net.Conn // handshaken connections for Accept
	errs  chan error    // the raw listener's Accept errors
	// ctx ends closeWait after Close: handshakes still under way are cut
	// then, and connections no Accept took are closed.
	ctx     context.Context
	cancel  context.CancelFunc
	closing chan struct{} // closed by Close
	drained chan struct{} // closed once closing and no handshake is pending
	mu      sync.Mutex
	pending int // handshakes under way or waiting for Accept
	once    sync.Once
	stop    *time.Timer // cancels ctx closeWait after Close
}

// closeWait bounds how long Close lets handshakes under way finish: as long
// as net/http's Shutdown waits for a connection that has not sent its first
// request (internal/serve waits as long).
const closeWait = 5 * time.Second

func newHandshakingListener(ln net.Listener, cfg *tls.Config, failed func(*tls.Conn, error)) *handshakingListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &handshakingListener{
		Listener: ln, cfg: cfg, failed: failed,
		ready: make(chan net.Conn), errs: make(chan error),
		ctx: ctx, cancel: cancel, closing: make(chan struct{}), drained: make(chan struct{}),
	}
	go l.acceptLoop()
	return l
}

func (l *handshakingListener) acceptLoop() {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			// After Close, Accept says net.ErrClosed once the
			// handshakes are handed over, not before. Otherwise
			// net/http decides: it retries a temporary error and
			// closes the listener on any other.
			select {
			case <-l.closing:
				return
			default:
			}
			select {
			case l.errs <- err:
			case <-l.closing:
				return
			}
			continue
		}
		if !l.add() {
			raw.Close() // accepted as Close came: refused, as later ones are
			continue
		}
		go l.handshake(raw)
	}
}

// add counts a handshake as pending, unless Close has come.
func (l *handshakingListener) add() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closing:
		return false
	default:
	}
	l.pending++
	return true
}

func (l *handshakingListener) done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending--
	l.checkDrained()
}

// checkDrained closes drained once closing with nothing pending; l.mu held.
func (l *handshakingListener) checkDrained() {
	select {
	case <-l.closing:
	default:
		return
	}
	if l.pending == 0 {
		select {
		case <-l.drained:
		default:
			close(l.drained)
			l.stop.Stop()
			l.cancel()
		}
	}
}

func (l *handshakingListener) handshake(raw net.Conn) {
	defer l.done()
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
	case <-l.drained:
		return nil, net.ErrClosed
	}
}

// Close stops accepting connections; see handshakingListener for those whose
// handshake is under way.
func (l *handshakingListener) Close() error {
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		l.stop = time.AfterFunc(closeWait, l.cancel)
		close(l.closing)
		l.checkDrained()
		l.mu.Unlock()
		err = l.Listener.Close()
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
		// Who the certificate says it is; refused, so not authenticated.
		attrs = append(attrs, slog.String(middleware.KeyPrincipal, peerPrincipal(&tls.ConnectionState{PeerCertificates: peers})),
			slog.Any("peerCertificate", tlsdir.CertLogValue(peers[0])))
	case errors.Is(err, io.EOF):
		// The client hung up before saying anything: a port probe, most
		// often, not worth a warning.
		level = slog.LevelDebug
	}
	attrs = append(attrs, slog.String(middleware.KeyReason, reason), slog.String(middleware.KeyError, err.Error()))
	// No request, so no HTTP layer: name the component as it does, through
	// the context, so that a logger already naming it does not repeat it.
	ctx := logging.WithAttrs(context.Background(), slog.String(middleware.KeyComponent, "gateway"))
	g.access.LogAttrs(ctx, level, "tls handshake failed", attrs...)
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
