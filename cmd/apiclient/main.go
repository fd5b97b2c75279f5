// Command apiclient calls the private API as a workload — a Cloud Run job, a
// GKE pod, a VM, a server on the VPN — with its client certificate and a
// Google ID token from Application Default Credentials, and prints the
// answer. The exit status says what failed, for scripts and job retries.
// The logic is in package apiclient; this maps flags onto it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/acme/cloudrun-istio-gke/apiclient"
	"github.com/acme/cloudrun-istio-gke/internal/config"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiclient:", err)
		os.Exit(exitCode(err))
	}
}

// Exit statuses: what failed, so that a job's retry policy or a script can
// tell a network blip from a refusal.
const (
	exitFailure           = 1 // anything else: configuration, an unreadable certificate
	exitUsage             = 2 // bad flags
	exitCredentials       = 3 // no ID token: no usable credentials, user credentials, or the token source refused
	exitNetwork           = 4 // the gateway was not reached, or the connection broke
	exitServerCertificate = 5 // we refused the gateway's certificate
	exitClientCertificate = 6 // the gateway refused our client certificate
	exitUnauthenticated   = 7 // 401: the token was refused (Envoy's reason is printed)
	exitForbidden         = 8 // 403: this caller is not allowed
	exitStatus            = 9 // another non-2xx answer
)

var exitByKind = map[apiclient.Kind]int{
	apiclient.KindCredentials:       exitCredentials,
	apiclient.KindNetwork:           exitNetwork,
	apiclient.KindServerCertificate: exitServerCertificate,
	apiclient.KindClientCertificate: exitClientCertificate,
	apiclient.KindUnauthenticated:   exitUnauthenticated,
	apiclient.KindForbidden:         exitForbidden,
	apiclient.KindStatus:            exitStatus,
}

func exitCode(err error) int {
	var e *apiclient.Error
	var ue *apiclient.UserCredentialsError
	var ce *usageError
	switch {
	case errors.As(err, &ue):
		return exitCredentials
	case errors.As(err, &e):
		return exitByKind[e.Kind]
	case errors.As(err, &ce):
		return exitUsage
	}
	return exitFailure
}

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

const usage = `Usage: apiclient -url https://GATEWAY/api/secure.json -audience AUDIENCE -client-tls-dir DIR [flags]

Calls the URL over mutual TLS with the client certificate in DIR (tls.crt,
tls.key, ca.crt) and a Google ID token for AUDIENCE from Application Default
Credentials: the metadata server on Cloud Run, GKE and Compute Engine
(GCE_METADATA_HOST reaches a local stand-in), a service-account key file
(-credentials or GOOGLE_APPLICATION_CREDENTIALS), or an impersonated service
account (gcloud auth application-default login --impersonate-service-account=SA).
User credentials are refused. Prints the answer; tokens only with -print-token.

Exit status: 0 answered 2xx, 1 other failure, 2 bad flags, 3 no ID token,
4 network, 5 gateway certificate refused, 6 client certificate refused,
7 HTTP 401, 8 HTTP 403, 9 other HTTP status.

Flags:
`

type options struct {
	url, serverName, credentials, serviceAccount string
	tls                                          tlsdir.Config
	audience                                     string
	timeout                                      time.Duration
	json, printToken                             bool
	// An -api-key flag (issue 16) will sit beside the token here.
}

func parse(args []string, getenv func(string) string, stdout io.Writer) (options, error) {
	fs := flag.NewFlagSet("apiclient", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var o options
	fs.StringVar(&o.url, "url", "", "the API URL to GET, e.g. https://10.10.0.100/api/secure.json")
	fs.StringVar(&o.audience, "audience", "", "the audience of the ID token: the API's, e.g. https://api.internal.example")
	fs.StringVar(&o.serverName, "server-name", "api.internal.example", "name the gateway's certificate must carry")
	fs.StringVar(&o.tls.Dir, "client-tls-dir", "", "directory with the client certificate: tls.crt, tls.key, ca.crt")
	fs.StringVar(&o.tls.CertFile, "client-tls-cert-file", "", "client certificate (overrides <client-tls-dir>/tls.crt)")
	fs.StringVar(&o.tls.KeyFile, "client-tls-key-file", "", "client private key (overrides <client-tls-dir>/tls.key)")
	fs.StringVar(&o.tls.CAFile, "client-tls-ca-file", "", "CA that verifies the gateway (overrides <client-tls-dir>/ca.crt)")
	fs.StringVar(&o.credentials, "credentials", "", "a service-account key or impersonated-service-account file; empty: Application Default Credentials")
	fs.StringVar(&o.serviceAccount, "service-account", "", "the caller's service account, named in the advice given to user credentials")
	fs.DurationVar(&o.timeout, "timeout", apiclient.DefaultTimeout, "timeout of the call, token fetch included")
	fs.BoolVar(&o.json, "json", false, "print one JSON object (status, body, error) for scripts")
	fs.BoolVar(&o.printToken, "print-token", false, "print the ID token too (it is a credential: keep it out of logs)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	err := config.Parse(fs, args, getenv, map[string]string{
		"url":                  "API_URL",
		"audience":             "API_AUDIENCE",
		"server-name":          "GATEWAY_SERVER_NAME",
		"client-tls-dir":       "CLIENT_TLS_DIR",
		"client-tls-cert-file": "CLIENT_TLS_CERT_FILE",
		"client-tls-key-file":  "CLIENT_TLS_KEY_FILE",
		"client-tls-ca-file":   "CLIENT_TLS_CA_FILE",
		"credentials":          "GOOGLE_APPLICATION_CREDENTIALS",
		"service-account":      "APICLIENT_SERVICE_ACCOUNT",
		"timeout":              "APICLIENT_TIMEOUT",
	})
	if errors.Is(err, flag.ErrHelp) {
		return o, err
	}
	if err != nil {
		return o, &usageError{err}
	}
	switch {
	case o.audience == "":
		return o, &usageError{errors.New("-audience is required")}
	case o.url == "" && !o.printToken:
		return o, &usageError{errors.New("-url is required (or -print-token alone)")}
	}
	if u, err := url.Parse(o.url); o.url != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		return o, &usageError{fmt.Errorf("-url %q is not an https:// URL: the gateway speaks mutual TLS only", o.url)}
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parse(args, getenv, stdout)
	if err != nil {
		return err
	}
	out := result{URL: o.url}
	certs, err := tlsdir.Open(o.tls)
	if err != nil {
		return report(stdout, o.json, out, fmt.Errorf("loading the client certificate: %w", err))
	}
	c, err := apiclient.New(ctx, apiclient.Config{
		Audience: o.audience, ServerName: o.serverName, TLS: certs,
		CredentialsFile: o.credentials, ImpersonationHint: o.serviceAccount, Timeout: o.timeout,
	})
	if err != nil {
		return report(stdout, o.json, out, err)
	}
	defer c.Close()

	if o.printToken {
		tok, err := c.Token(ctx)
		if err != nil {
			return report(stdout, o.json, out, err)
		}
		out.Token = tok
	}
	if o.url != "" {
		a, err := c.Get(ctx, o.url)
		if a != nil {
			out.Status, out.Body = a.Status, body(a.Body)
		}
		if err != nil {
			return report(stdout, o.json, out, err)
		}
	}
	return report(stdout, o.json, out, nil)
}

// result is what -json prints: one object, whatever happened.
type result struct {
	URL    string          `json:"url,omitempty"`
	Status int             `json:"status,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"` // the answer's JSON, or a JSON string
	Error  *failure        `json:"error,omitempty"`
	Token  string          `json:"token,omitempty"` // only with -print-token
}

type failure struct {
	Kind        string `json:"kind"` // credentials, network, server-certificate, client-certificate, unauthenticated, forbidden, status
	Reason      string `json:"reason,omitempty"`
	Certificate string `json:"certificate,omitempty"`
	Message     string `json:"message"`
}

func body(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// report prints the outcome and returns err, which main turns into the exit
// status and a line on stderr.
func report(stdout io.Writer, asJSON bool, out result, err error) error {
	if err != nil {
		out.Error = &failure{Kind: "other", Message: err.Error()}
		var e *apiclient.Error
		var ue *apiclient.UserCredentialsError
		if errors.As(err, &ue) {
			out.Error.Kind = apiclient.KindCredentials.String()
		}
		if errors.As(err, &e) {
			out.Error.Kind, out.Error.Reason = e.Kind.String(), e.Reason
			if e.Certificate != nil {
				out.Error.Certificate = tlsdir.Describe(e.Certificate)
			}
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		if werr := enc.Encode(out); werr != nil {
			return errors.Join(err, werr)
		}
		return err
	}
	if out.Token != "" {
		fmt.Fprintln(stdout, out.Token)
	}
	if out.Status != 0 {
		var s string
		if json.Unmarshal(out.Body, &s) != nil {
			s = string(out.Body)
		}
		fmt.Fprintln(stdout, s)
	}
	return err
}
