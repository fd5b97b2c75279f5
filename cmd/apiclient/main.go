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
	"fmt"
	"io"
	"os"

	"github.com/acme/cloudrun-istio-gke/apiclient"
	"github.com/acme/cloudrun-istio-gke/internal/command"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

func main() {
	command.Main("apiclient", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout) }, exitCode)
}

// Exit statuses (the usage in apiclient/flags.go lists them too): what
// failed, so that a job's retry policy or a script can
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
	var ce *apiclient.UsageError
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

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := apiclient.ParseFlags(args, getenv, stdout)
	if err != nil {
		return err
	}
	out := result{URL: o.URL}
	if o.APIKey != "" {
		return runWithKey(ctx, o, stdout, out)
	}
	certs, err := tlsdir.Open(o.TLSFiles)
	if err != nil {
		return report(stdout, o.JSON, out, fmt.Errorf("loading the client certificate: %w", err))
	}
	cfg := o.Config
	cfg.TLS = certs
	c, err := apiclient.New(ctx, cfg)
	if err != nil {
		return report(stdout, o.JSON, out, err)
	}
	defer c.Close()

	if o.PrintToken {
		tok, err := c.Token(ctx)
		if err != nil {
			return report(stdout, o.JSON, out, err)
		}
		out.Token = tok
	}
	if o.URL != "" {
		a, err := c.Get(ctx, o.URL)
		if a != nil {
			out.Status, out.Body = a.Status, body(a.Body)
		}
		if err != nil {
			return report(stdout, o.JSON, out, err)
		}
	}
	return report(stdout, o.JSON, out, nil)
}

// runWithKey calls as a partner app: the API key to the public frontend.
func runWithKey(ctx context.Context, o apiclient.Options, stdout io.Writer, out result) error {
	c, err := apiclient.NewKeyClient(o.APIKey, o.Config.Timeout)
	if err != nil {
		return report(stdout, o.JSON, out, err)
	}
	defer c.Close()
	a, err := c.Get(ctx, o.URL)
	if a != nil {
		out.Status, out.Body = a.Status, body(a.Body)
	}
	return report(stdout, o.JSON, out, err)
}

// result is what -json prints: one object, whatever happened. Severity and
// message are the keys Cloud Logging reads from a JSON line on stdout, so a
// job's failed call shows as an error in its log.
type result struct {
	Severity string          `json:"severity"`
	Message  string          `json:"message"`
	URL      string          `json:"url,omitempty"`
	Status   int             `json:"status,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"` // the answer's JSON, or a JSON string
	Error    *failure        `json:"error,omitempty"`
	Token    string          `json:"token,omitempty"` // only with -print-token
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
		out.Severity, out.Message = "INFO", fmt.Sprintf("HTTP %d", out.Status)
		if out.Status == 0 {
			out.Message = "token printed"
		}
		if out.Error != nil {
			out.Severity, out.Message = "ERROR", out.Error.Message
		}
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
