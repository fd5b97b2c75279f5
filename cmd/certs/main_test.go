package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

func noEnv(string) string { return "" }

func runCerts(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, noEnv, &out)
	return out.String(), err
}

// decodeSecret strictly decodes the Secret manifest: an unknown or misspelt
// field fails.
func decodeSecret(t *testing.T, path string) corev1.Secret {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		t.Fatalf("strict decoding %s: %v", path, err)
	}
	return s
}

func TestIssuesTheProductionCertificates(t *testing.T) {
	out := t.TempDir()
	stdout, err := runCerts(t, "-out", out, "-gateway-ip", "10.10.0.100")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	secretPath := filepath.Join(out, "api-gateway-mtls.secret.yaml")
	for _, want := range []string{secretPath, "kubectl apply -f " + secretPath, "gcloud secrets create frontend-tls-key --data-file=" + filepath.Join(out, "frontend", "tls.key"),
		"Istio principal acme.internal/ns/frontend/sa/frontend", "Istio principal acme.internal/ns/jobs/sa/reporter",
		"gcloud secrets create apiclient-tls-crt --data-file=" + filepath.Join(out, "apiclient", "tls.crt"),
		"gcloud secrets create apiclient-tls-key --data-file=" + filepath.Join(out, "apiclient", "tls.key"),
		"gcloud secrets create apiclient-tls-ca --data-file=" + filepath.Join(out, "apiclient", "ca.crt")} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output does not mention %q:\n%s", want, stdout)
		}
	}

	s := decodeSecret(t, secretPath)
	t.Run("the Secret is the gateway's credentialName in istio-ingress with the three keys Istio reads", func(t *testing.T) {
		if s.APIVersion != "v1" || s.Kind != "Secret" || s.Name != "api-gateway-mtls" || s.Namespace != "istio-ingress" || s.Type != corev1.SecretTypeOpaque {
			t.Errorf("Secret = %s/%s %s/%s type %q, want v1/Secret istio-ingress/api-gateway-mtls type Opaque", s.APIVersion, s.Kind, s.Namespace, s.Name, s.Type)
		}
		var keys []string
		for k := range s.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"ca.crt", "tls.crt", "tls.key"}; !slices.Equal(keys, want) || len(s.StringData) != 0 {
			t.Errorf("Secret keys = %v (stringData %v), want data with exactly %v", keys, s.StringData, want)
		}
	})

	gw, err := certgen.ParsePair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		t.Fatalf("gateway tls.crt/tls.key from the Secret: %v", err)
	}
	fe := readDir(t, filepath.Join(out, "frontend"))
	mc := readDir(t, filepath.Join(out, "apiclient"))
	ca := readDir(t, filepath.Join(out, "ca"))
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	tests := []struct {
		name string
		cert *x509.Certificate
		ca   []byte // the ca.crt shipped beside it
		opts x509.VerifyOptions
		more func(t *testing.T, c *x509.Certificate)
	}{
		{
			name: "the gateway certificate chains to the CA for the load balancer's IP and host name",
			cert: gw.Cert, ca: s.Data["ca.crt"],
			opts: x509.VerifyOptions{DNSName: "api.internal.example", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
			more: func(t *testing.T, c *x509.Certificate) {
				if err := c.VerifyHostname("10.10.0.100"); err != nil {
					t.Errorf("gateway certificate does not name the ILB IP: %v", err)
				}
			},
		},
		{
			name: "the frontend certificate chains to the CA as a client with its SPIFFE ID",
			cert: fe.Cert, ca: readFile(t, filepath.Join(out, "frontend", "ca.crt")),
			opts: x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			more: func(t *testing.T, c *x509.Certificate) {
				if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://acme.internal/ns/frontend/sa/frontend" {
					t.Errorf("frontend URI SANs = %v, want [spiffe://acme.internal/ns/frontend/sa/frontend]", c.URIs)
				}
			},
		},
		{
			name: "the machine caller's certificate chains to the CA as a client with its own SPIFFE ID",
			cert: mc.Cert, ca: readFile(t, filepath.Join(out, "apiclient", "ca.crt")),
			opts: x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			more: func(t *testing.T, c *x509.Certificate) {
				if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://acme.internal/ns/jobs/sa/reporter" {
					t.Errorf("apiclient URI SANs = %v, want [spiffe://acme.internal/ns/jobs/sa/reporter]", c.URIs)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Equal(tt.ca, certgen.Bundle(ca.Cert)) {
				t.Error("the ca.crt shipped beside it is not the CA's certificate")
			}
			tt.opts.Roots = roots
			if _, err := tt.cert.Verify(tt.opts); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got, want := tt.cert.NotAfter.Sub(tt.cert.NotBefore), 365*24*time.Hour; got < want || got > want+10*time.Minute {
				t.Errorf("certificate valid for %s, want about %s", got, want)
			}
			tt.more(t, tt.cert)
		})
	}

	t.Run("every private key and the Secret are readable by the owner only", func(t *testing.T) {
		for _, p := range []string{secretPath, filepath.Join(out, "frontend", "tls.key"), filepath.Join(out, "apiclient", "tls.key"), filepath.Join(out, "ca", "tls.key")} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("%s mode = %o, want 600", p, got)
			}
		}
	})

	t.Run("the gateway's Secret and each caller's files speak mutual TLS to each other", func(t *testing.T) {
		gwDir := t.TempDir()
		for k, v := range s.Data {
			os.WriteFile(filepath.Join(gwDir, k), v, 0o600)
		}
		gwTLS, err := tlsdir.Open(tlsdir.Config{Dir: gwDir})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.TLS.PeerCertificates[0].URIs[0].String())
		}))
		srv.TLS = gwTLS.ServerConfig(tls.RequireAndVerifyClientCert)
		srv.StartTLS()
		defer srv.Close()
		for dir, want := range map[string]string{
			"frontend":  "spiffe://acme.internal/ns/frontend/sa/frontend",
			"apiclient": "spiffe://acme.internal/ns/jobs/sa/reporter",
		} {
			callerTLS, err := tlsdir.Open(tlsdir.Config{Dir: filepath.Join(out, dir)})
			if err != nil {
				t.Fatal(err)
			}
			tr := &http.Transport{DialTLSContext: callerTLS.DialTLSContext("api.internal.example"), ForceAttemptHTTP2: true}
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(srv.URL)
			if err != nil {
				t.Fatalf("GET with %s's files: %v", dir, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			tr.CloseIdleConnections()
			if string(body) != want {
				t.Errorf("gateway saw the %s as %q, want %q", dir, body, want)
			}
		}
	})
}

func TestRefusesToOverwrite(t *testing.T) {
	out := t.TempDir()
	if _, err := runCerts(t, "-out", out, "-gateway-ip", "10.10.0.100"); err != nil {
		t.Fatal(err)
	}
	secretPath := filepath.Join(out, "api-gateway-mtls.secret.yaml")
	first := readFile(t, secretPath)

	_, err := runCerts(t, "-out", out, "-gateway-ip", "10.10.0.100")
	if err == nil || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("second run without -force: error = %v, want a refusal mentioning -force", err)
	}
	if !bytes.Equal(readFile(t, secretPath), first) {
		t.Error("a refused run changed the Secret, want it untouched")
	}

	if _, err := runCerts(t, "-out", out, "-gateway-ip", "10.10.0.100", "-force"); err != nil {
		t.Fatalf("run with -force: %v", err)
	}
	if bytes.Equal(readFile(t, secretPath), first) {
		t.Error("run with -force left the Secret as it was, want new certificates")
	}
}

func TestRenewsWithAnExistingCA(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	if _, err := runCerts(t, "-out", first, "-gateway-host", "api.internal.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := runCerts(t, "-out", second, "-gateway-host", "api.internal.example", "-ca-dir", filepath.Join(first, "ca")); err != nil {
		t.Fatalf("run with -ca-dir: %v", err)
	}
	ca := readDir(t, filepath.Join(first, "ca"))
	fe := readDir(t, filepath.Join(second, "frontend"))
	if err := fe.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("renewed frontend certificate is not signed by the existing CA: %v", err)
	}
	if _, err := os.Stat(filepath.Join(second, "ca")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("with -ca-dir the CA was written again (stat: %v), want it left where it is", err)
	}
}

func TestRefusesACAThatWouldExpireFirst(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	if _, err := runCerts(t, "-out", first, "-gateway-ip", "10.0.0.1", "-ca-validity", "48h", "-leaf-validity", "24h"); err != nil {
		t.Fatal(err)
	}
	_, err := runCerts(t, "-out", second, "-gateway-ip", "10.0.0.1", "-ca-dir", filepath.Join(first, "ca"))
	if err == nil || !strings.Contains(err.Error(), "expires at") {
		t.Errorf("renewing a year's certificates with a 2-day CA: error = %v, want a refusal saying when the CA expires", err)
	}
	if entries, _ := os.ReadDir(second); len(entries) != 0 {
		t.Errorf("a refused run wrote %d entries into -out, want none", len(entries))
	}
}

func TestFlags(t *testing.T) {
	t.Run("-h documents every flag", func(t *testing.T) {
		out, err := runCerts(t, "-h")
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("run -h: error = %v, want flag.ErrHelp", err)
		}
		for _, f := range []string{"-out", "-gateway-ip", "-gateway-host", "-client-uri", "-machine-uri", "-secret-name", "-namespace", "-ca-dir", "-ca-validity", "-leaf-validity", "-force"} {
			if !strings.Contains(out, "\n  "+f+" ") && !strings.Contains(out, "\n  "+f+"\n") {
				t.Errorf("-h output does not document %s:\n%s", f, out)
			}
		}
	})

	t.Run("the output dir and gateway IP can come from the environment", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		env := map[string]string{"CERTS_OUT": out, "GATEWAY_IP": "10.1.2.3"}
		var stdout bytes.Buffer
		if err := run(context.Background(), nil, func(k string) string { return env[k] }, &stdout); err != nil {
			t.Fatalf("run with CERTS_OUT and GATEWAY_IP: %v", err)
		}
		s := decodeSecret(t, filepath.Join(out, "api-gateway-mtls.secret.yaml"))
		gw, err := certgen.ParsePair(s.Data["tls.crt"], s.Data["tls.key"])
		if err != nil {
			t.Fatal(err)
		}
		if err := gw.Cert.VerifyHostname("10.1.2.3"); err != nil {
			t.Errorf("gateway certificate does not name GATEWAY_IP: %v", err)
		}
	})

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a run without -out is refused", []string{"-gateway-ip", "10.0.0.1"}, "-out is required"},
		{"a run without any gateway name is refused", []string{"-out", "x", "-gateway-host", ""}, "-gateway-ip or -gateway-host"},
		{"a gateway name that is not a host is refused", []string{"-out", "x", "-gateway-ip", "10.0.0.1/24"}, `"10.0.0.1/24"`},
		{"a relative client URI is refused", []string{"-out", "x", "-gateway-ip", "10.0.0.1", "-client-uri", "frontend"}, "ClientURI"},
		{"a machine identity equal to the frontend's is refused", []string{"-out", "x", "-gateway-ip", "10.0.0.1",
			"-machine-uri", "spiffe://acme.internal/ns/frontend/sa/frontend"}, "MachineURI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, a := range tt.args {
				if a == "x" {
					tt.args[i] = filepath.Join(t.TempDir(), "out")
				}
			}
			_, err := runCerts(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run %v: error = %v, want one containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readDir(t *testing.T, dir string) *certgen.Pair {
	t.Helper()
	p, err := certgen.ParsePair(readFile(t, filepath.Join(dir, "tls.crt")), readFile(t, filepath.Join(dir, "tls.key")))
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return p
}
