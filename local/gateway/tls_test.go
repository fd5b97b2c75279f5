package gateway

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
	"github.com/acme/cloudrun-istio-gke/local/pki"
)

const gatewayHost = "api.internal.example"

// devPKI issues the dev PKI (CA, gateway server cert, frontend client cert)
// in a fresh directory.
func devPKI(t testing.TB) *pki.Bundle {
	t.Helper()
	b, err := pki.Ensure(pki.Config{Dir: filepath.Join(t.TempDir(), "pki"), GatewayHosts: []string{gatewayHost}})
	if err != nil {
		t.Fatalf("pki.Ensure: %v", err)
	}
	return b
}

func openDir(t testing.TB, dir string) *tlsdir.Dir {
	t.Helper()
	d, err := tlsdir.Open(tlsdir.Config{Dir: dir})
	if err != nil {
		t.Fatalf("tlsdir.Open(%s): %v", dir, err)
	}
	return d
}

// serveTLS serves a handler that answers with the client's principal on a
// loopback listener using the listener's TLS config.
func serveTLS(t *testing.T, l *listener) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, peerPrincipal(r.TLS))
		}),
	}
	srv.ErrorLog = discardLog()
	srv.TLSConfig = l.tlsConfig()
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestGatewayServerTLSFollowsServerTLSSettings(t *testing.T) {
	// https://istio.io/latest/docs/reference/config/networking/gateway/#ServerTLSSettings
	ours := devPKI(t)
	foreign := devPKI(t) // another CA: its client certificate must not pass
	gatewayDir := openDir(t, ours.GatewayDir)
	newListener := func(t *testing.T, s *networking.ServerTLSSettings) *listener {
		ts, err := newTLSServer("test", []string{"istio-ingress/" + gatewayHost}, s, func(string) (*tlsdir.Dir, error) { return gatewayDir, nil })
		if err != nil {
			t.Fatalf("newTLSServer: %v", err)
		}
		return &listener{port: 443, tls: true, servers: []*tlsServer{ts}}
	}
	mutual := &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_MUTUAL, CredentialName: "api-gateway-mtls", MinProtocolVersion: networking.ServerTLSSettings_TLSV1_2}
	withSANs := func(sans ...string) *networking.ServerTLSSettings {
		s := proto.Clone(mutual).(*networking.ServerTLSSettings)
		s.SubjectAltNames = sans
		return s
	}
	tests := []struct {
		name       string
		settings   *networking.ServerTLSSettings
		clientDir  string // "" presents no certificate
		serverName string
		maxVersion uint16
		want       string // principal on success; "" means the handshake must fail
	}{
		{name: "MUTUAL accepts the frontend's certificate and yields its principal", settings: mutual, clientDir: ours.FrontendDir, serverName: gatewayHost, want: "acme.internal/ns/frontend/sa/frontend"},
		{name: "MUTUAL refuses a client without a certificate", settings: mutual, serverName: gatewayHost},
		{name: "MUTUAL refuses a certificate from another CA", settings: mutual, clientDir: foreign.FrontendDir, serverName: gatewayHost},
		{name: "a client whose SNI no server's hosts match gets no handshake", settings: mutual, clientDir: ours.FrontendDir, serverName: "localhost"},
		{name: "minProtocolVersion TLSV1_2 refuses TLS 1.1", settings: mutual, clientDir: ours.FrontendDir, serverName: gatewayHost, maxVersion: tls.VersionTLS11},
		{name: "subjectAltNames admits a certificate naming one of them", settings: withSANs("spiffe://other", "spiffe://acme.internal/ns/frontend/sa/frontend"), clientDir: ours.FrontendDir, serverName: gatewayHost, want: "acme.internal/ns/frontend/sa/frontend"},
		{name: "subjectAltNames refuses a certificate naming none of them", settings: withSANs("spiffe://acme.internal/ns/other/sa/other"), clientDir: ours.FrontendDir, serverName: gatewayHost},
		{name: "SIMPLE asks for no certificate", settings: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_SIMPLE, CredentialName: "x"}, serverName: gatewayHost, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serveTLS(t, newListener(t, tt.settings))
			// The client trusts our CA for the server whichever certificate it
			// presents, so that only the server's checks are tested.
			cfg, err := openDir(t, ours.FrontendDir).ClientConfig(tt.serverName)
			if err != nil {
				t.Fatal(err)
			}
			switch tt.clientDir {
			case "":
				cfg.GetClientCertificate = nil
			case foreign.FrontendDir:
				fc, _ := openDir(t, foreign.FrontendDir).ClientConfig(tt.serverName)
				cfg.GetClientCertificate = fc.GetClientCertificate
			}
			if tt.maxVersion != 0 {
				cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tt.maxVersion
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
			resp, err := client.Get("https://" + addr + "/")
			mustSucceed := tt.want != "" || tt.settings.GetMode() == networking.ServerTLSSettings_SIMPLE
			if !mustSucceed {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET over TLS: got status %d, want the handshake to fail", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET over TLS: %v, want success", err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if string(b) != tt.want {
				t.Fatalf("principal: got %q, want %q", b, tt.want)
			}
		})
	}
}

func TestNewTLSServerRefusesWhatItCannotHonour(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    *networking.ServerTLSSettings
	}{
		{"PASSTHROUGH", &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_PASSTHROUGH, CredentialName: "x"}},
		{"file paths instead of credentialName", &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_SIMPLE, ServerCertificate: "/etc/cert"}},
		{"no credentialName", &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_MUTUAL}},
		{"cipherSuites", &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_MUTUAL, CredentialName: "x", CipherSuites: []string{"ECDHE-RSA-AES128-GCM-SHA256"}}},
	} {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			_, err := newTLSServer("gw.yaml: Gateway ns/gw: spec.servers[0]", nil, tt.s, func(string) (*tlsdir.Dir, error) {
				t.Fatal("no credential should be opened for a refused server")
				return nil, nil
			})
			if err == nil {
				t.Fatal("newTLSServer: got nil error, want a refusal naming the field")
			}
			if got := err.Error(); len(got) < len("gw.yaml") || got[:7] != "gw.yaml" {
				t.Fatalf("error %q: want it to start with the resource's place", got)
			}
		})
	}
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
