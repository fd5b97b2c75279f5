package tlsdir_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

// BenchmarkGetConfigForClient is what tlsdir adds to every server handshake:
// the rotation check (a stat at most once per CheckInterval) and the lookup
// of the current config.
func BenchmarkGetConfigForClient(b *testing.B) {
	gw, _ := benchDirs(b)
	get := gw.ServerConfig(tls.RequireAndVerifyClientCert).GetConfigForClient
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := get(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkClientConfig is what tlsdir adds to every new client connection.
func BenchmarkClientConfig(b *testing.B) {
	_, fe := benchDirs(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := fe.ClientConfig("localhost"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMutualHandshake is one full TLS 1.3 mutual handshake in memory,
// with tlsdir's configs and, for comparison, with static ones.
func BenchmarkMutualHandshake(b *testing.B) {
	gw, fe := benchDirs(b)
	serverCfg := gw.ServerConfig(tls.RequireAndVerifyClientCert)
	clientCfg, err := fe.ClientConfig("localhost")
	if err != nil {
		b.Fatal(err)
	}
	static, err := serverCfg.GetConfigForClient(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		server *tls.Config
		client func() (*tls.Config, error)
	}{
		{"tlsdir", serverCfg, func() (*tls.Config, error) { return fe.ClientConfig("localhost") }},
		{"static", static, func() (*tls.Config, error) { return clientCfg, nil }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cc, err := bc.client()
				if err != nil {
					b.Fatal(err)
				}
				cc.SessionTicketsDisabled = true // measure full handshakes
				c1, c2 := net.Pipe()
				srv := tls.Server(c1, bc.server)
				errc := make(chan error, 1)
				go func() { errc <- srv.Handshake() }()
				if err := tls.Client(c2, cc).Handshake(); err != nil {
					b.Fatal(err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				c1.Close()
				c2.Close()
			}
		})
	}
}

func benchDirs(b *testing.B) (gw, fe *tlsdir.Dir) {
	now := time.Now()
	ca, err := certgen.NewCA("bench CA", certgen.For(now, time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	server, _ := ca.IssueServer([]string{"localhost"}, certgen.For(now, time.Hour))
	client, _ := ca.IssueClient("frontend", mustURL(clientID), certgen.For(now, time.Hour))
	gwDir, feDir := b.TempDir(), b.TempDir()
	for dir, p := range map[string]*certgen.Pair{gwDir: server, feDir: client} {
		if err := certgen.WriteDir(dir, p, certgen.Bundle(ca.Cert)); err != nil {
			b.Fatal(err)
		}
	}
	if gw, err = tlsdir.Open(tlsdir.Config{Dir: gwDir}); err != nil {
		b.Fatal(err)
	}
	if fe, err = tlsdir.Open(tlsdir.Config{Dir: feDir}); err != nil {
		b.Fatal(err)
	}
	return gw, fe
}
