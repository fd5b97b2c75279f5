package apiclient

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"

	"github.com/acme/cloudrun-istio-gke/internal/config"
	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

// Options is a command line of cmd/apiclient, parsed: whom to call, as whom,
// and how to print the outcome. It lives here, beside Config, so that the
// deployment's tests can check that the Cloud Run job's environment parses.
type Options struct {
	URL        string
	Config     Config        // Config.TLS is left nil: open TLSFiles for it
	TLSFiles   tlsdir.Config // where the client certificate is
	JSON       bool          // print one JSON object for scripts
	PrintToken bool          // print the ID token too
	// APIKey, when set, makes the call a partner app's: the key in
	// x-api-key to the public frontend, with no certificate and no token
	// (KeyClient); Config and TLSFiles are then unused.
	APIKey string
}

// UsageError is a command line that cannot be run.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

const usage = `Usage: apiclient -url https://GATEWAY/api/secure.json -audience AUDIENCE -client-tls-dir DIR [flags]
       apiclient -url https://FRONTEND/api/secure.json -api-key KEY [flags]

The second form calls as a partner app: the API key in x-api-key to the
public frontend, which relays it to the gateway; no certificate, no token
(http:// is accepted for a frontend on this machine, as devstack's).

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

// ParseFlags parses the command line of cmd/apiclient, each flag with its
// environment variable as fallback. -h prints the usage to out and returns
// flag.ErrHelp; a command line that cannot be run is a *UsageError.
func ParseFlags(args []string, getenv func(string) string, out io.Writer) (Options, error) {
	fs := flag.NewFlagSet("apiclient", flag.ContinueOnError)
	fs.SetOutput(out)
	var o Options
	fs.StringVar(&o.URL, "url", "", "the API URL to GET, e.g. https://10.10.0.100/api/secure.json")
	fs.StringVar(&o.Config.Audience, "audience", "", "the audience of the ID token: the API's, e.g. https://api.internal.example")
	fs.StringVar(&o.Config.ServerName, "server-name", "api.internal.example", "name the gateway's certificate must carry")
	fs.StringVar(&o.TLSFiles.Dir, "client-tls-dir", "", "directory with the client certificate: tls.crt, tls.key, ca.crt")
	fs.StringVar(&o.TLSFiles.CertFile, "client-tls-cert-file", "", "client certificate (overrides <client-tls-dir>/tls.crt)")
	fs.StringVar(&o.TLSFiles.KeyFile, "client-tls-key-file", "", "client private key (overrides <client-tls-dir>/tls.key)")
	fs.StringVar(&o.TLSFiles.CAFile, "client-tls-ca-file", "", "CA that verifies the gateway (overrides <client-tls-dir>/ca.crt)")
	fs.StringVar(&o.Config.CredentialsFile, "credentials", "", "a service-account key or impersonated-service-account file; empty: Application Default Credentials")
	fs.StringVar(&o.Config.ImpersonationHint, "service-account", "", "the caller's service account, named in the advice given to user credentials")
	fs.DurationVar(&o.Config.Timeout, "timeout", DefaultTimeout, "timeout of the call, token fetch included")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON object (status, body, error) for scripts")
	fs.BoolVar(&o.PrintToken, "print-token", false, "print the ID token too (it is a credential: keep it out of logs)")
	fs.StringVar(&o.APIKey, "api-key", "", "call as a partner app: send this API key in x-api-key to the public frontend's -url (http:// on loopback only); no certificate or token")
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
		"api-key":              "API_KEY",
	})
	if errors.Is(err, flag.ErrHelp) {
		return o, err
	}
	if err != nil {
		return o, &UsageError{err}
	}
	if o.APIKey != "" {
		return o, checkKeyOptions(o)
	}
	switch {
	case o.Config.Audience == "":
		return o, &UsageError{errors.New("-audience is required")}
	case o.URL == "" && !o.PrintToken:
		return o, &UsageError{errors.New("-url is required (or -print-token alone)")}
	}
	if u, err := url.Parse(o.URL); o.URL != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		return o, &UsageError{fmt.Errorf("-url %q is not an https:// URL: the gateway speaks mutual TLS only", o.URL)}
	}
	return o, nil
}
