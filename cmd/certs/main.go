// Command certs issues the certificates for the production mTLS hops to the
// Istio ingress gateway: a CA, the gateway's server certificate (named by the
// internal load balancer's IP and/or host name) and the client certificates
// of the Cloud Run frontend and of the machine caller, the apiclient job (each
// a SPIFFE URI SAN of its own). It writes the Kubernetes Secret the Gateway's
// credentialName names, and the three files each caller mounts from Secret
// Manager. The logic is in
// internal/prodpki; this maps flags onto it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/acme/cloudrun-istio-gke/internal/command"
	"github.com/acme/cloudrun-istio-gke/internal/config"
	"github.com/acme/cloudrun-istio-gke/internal/prodpki"
)

func main() {
	command.Main("certs", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout) }, nil)
}

const usage = `Usage: go run ./cmd/certs -out DIR -gateway-ip IP [-gateway-host NAME] [flags]

Issues a CA, the Istio ingress gateway's server certificate and the client
certificates of the frontend and of the machine caller (the apiclient job), and
writes into DIR:

  DIR/<secret-name>.secret.yaml  the gateway's Secret (tls.crt, tls.key, ca.crt):
                                 kubectl apply -f it; never commit it
  DIR/frontend/{tls.crt,tls.key,ca.crt}
                                 the frontend's files for Secret Manager
  DIR/apiclient/{tls.crt,tls.key,ca.crt}
                                 the apiclient job's files for Secret Manager
  DIR/ca/{tls.crt,tls.key,ca.crt} the CA; keep tls.key offline, and renew
                                 certificates later with -ca-dir DIR/ca

Existing files are never overwritten without -force.

Flags:
`

func run(_ context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		cfg        prodpki.Config
		ips, hosts string
	)
	fs.StringVar(&cfg.OutDir, "out", "", "directory to write into (required)")
	fs.StringVar(&ips, "gateway-ip", "", "the internal load balancer's IP address(es), comma-separated, as SANs of the gateway certificate")
	fs.StringVar(&hosts, "gateway-host", "api.internal.example", "host name(s) of the gateway, comma-separated, as SANs of the gateway certificate; the frontend's server name")
	fs.StringVar(&cfg.ClientURI, "client-uri", prodpki.DefaultClientURI, "the frontend's identity, the URI SAN of its client certificate (Istio principal: the URI without spiffe://)")
	fs.StringVar(&cfg.MachineURI, "machine-uri", prodpki.DefaultMachineURI, "the machine caller's identity, the URI SAN of the apiclient job's client certificate (the gateway's policy admits service-account tokens only with it)")
	fs.StringVar(&cfg.SecretName, "secret-name", prodpki.DefaultSecretName, "name of the gateway's Secret: the Gateway's credentialName")
	fs.StringVar(&cfg.Namespace, "namespace", prodpki.DefaultNamespace, "namespace of the ingress gateway, where its Secret must live")
	fs.StringVar(&cfg.CADir, "ca-dir", "", "an existing CA directory (tls.crt, tls.key) to sign with instead of creating a new CA")
	fs.DurationVar(&cfg.CAValidity, "ca-validity", prodpki.DefaultCAValidity, "validity of a new CA")
	fs.DurationVar(&cfg.LeafValidity, "leaf-validity", prodpki.DefaultLeafValidity, "validity of the gateway and frontend certificates")
	fs.BoolVar(&cfg.Force, "force", false, "overwrite existing output files")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	err := config.Parse(fs, args, getenv, map[string]string{
		"out":          "CERTS_OUT",
		"gateway-ip":   "GATEWAY_IP",
		"gateway-host": "GATEWAY_HOST",
		"client-uri":   "CLIENT_URI",
		"machine-uri":  "MACHINE_URI",
	})
	if err != nil {
		return err
	}
	if cfg.OutDir == "" {
		return errors.New("-out is required")
	}
	cfg.GatewayHosts = append(split(ips), split(hosts)...)
	if len(cfg.GatewayHosts) == 0 {
		return errors.New("-gateway-ip or -gateway-host is required: the names the frontend reaches the gateway by")
	}

	written, err := prodpki.Issue(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Wrote:")
	for _, p := range written {
		fmt.Fprintln(stdout, "  "+p)
	}
	fe := filepath.Join(cfg.OutDir, "frontend")
	mc := filepath.Join(cfg.OutDir, "apiclient")
	fmt.Fprintf(stdout, `
Gateway certificate names: %s
Frontend identity: %s (Istio principal %s)
Machine caller identity: %s (Istio principal %s)

Next, for the gateway (namespace %s):
  kubectl apply -f %s
For the frontend (the secrets deploy/cloudrun/frontend.yaml mounts; on renewal use
"gcloud secrets versions add NAME --data-file=FILE" instead):
  gcloud secrets create frontend-tls-crt --data-file=%s
  gcloud secrets create frontend-tls-key --data-file=%s
  gcloud secrets create frontend-tls-ca --data-file=%s
For the machine caller (the secrets deploy/cloudrun/apiclient-job.yaml mounts):
  gcloud secrets create apiclient-tls-crt --data-file=%s
  gcloud secrets create apiclient-tls-key --data-file=%s
  gcloud secrets create apiclient-tls-ca --data-file=%s
`, strings.Join(cfg.GatewayHosts, ", "), cfg.ClientURI, strings.TrimPrefix(cfg.ClientURI, "spiffe://"),
		cfg.MachineURI, strings.TrimPrefix(cfg.MachineURI, "spiffe://"), cfg.Namespace,
		filepath.Join(cfg.OutDir, cfg.SecretFile()),
		filepath.Join(fe, "tls.crt"), filepath.Join(fe, "tls.key"), filepath.Join(fe, "ca.crt"),
		filepath.Join(mc, "tls.crt"), filepath.Join(mc, "tls.key"), filepath.Join(mc, "ca.crt"))
	return nil
}

func split(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
