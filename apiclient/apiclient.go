// Package apiclient calls the private API as a workload: over mutual TLS
// with the workload's client certificate, and with a Google-signed ID token
// for the API's audience from Application Default Credentials — the
// metadata server on Cloud Run, GKE and GCE, a service-account key file, or
// an impersonated service account — obtained with the unmodified
// cloud.google.com/go/auth/credentials/idtoken.
//
// The token is fetched once and reused until shortly before it expires (the
// library's cache: five minutes early from the metadata server, 225 seconds
// from a key file; in that window calls still get the cached token while one
// refresh runs in the background), so a workload making many calls asks for
// about one token an hour. A failed call is an *Error whose Kind says what failed, for exit
// statuses and alerts. Tokens never appear in errors or logs.
package apiclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/credentials/idtoken"
	"cloud.google.com/go/auth/credentials/impersonate"
	"cloud.google.com/go/auth/httptransport"

	"github.com/acme/cloudrun-istio-gke/internal/tlsdir"
)

// DefaultTimeout bounds one call, token fetch included.
const DefaultTimeout = 30 * time.Second

// maxBody bounds the answer read into memory: the API's are small JSON.
const maxBody = 1 << 20

// Config says whom to call and as whom. Audience, ServerName and TLS are
// required.
type Config struct {
	// Audience is the aud of the ID token, the API's audience, e.g.
	// "https://api.internal.example".
	Audience string
	// ServerName is what the gateway's certificate must name: the gateway is
	// reached by private IP, so TLS verifies this name instead.
	ServerName string
	// TLS is the client certificate and the CA that verifies the gateway.
	TLS *tlsdir.Dir
	// CredentialsFile, when set, is a service-account key or an
	// impersonated-service-account file (what GOOGLE_APPLICATION_CREDENTIALS
	// names); otherwise credentials are found as Application Default
	// Credentials are. The file is the operator's own: impersonation and
	// external-account files are taken as they come (see the warning on
	// idtoken.NewCredentialsFromFile about files from elsewhere).
	CredentialsFile string
	// ImpersonationHint is the service account to name in the advice given
	// to a caller with user credentials; empty gives a placeholder.
	ImpersonationHint string
	Timeout           time.Duration // per call; 0 means DefaultTimeout
	// Transport carries the requests to Google's token and IAM Credentials
	// endpoints; nil means http.DefaultTransport. Tests route it to the
	// local stand-in (local/google's Transport).
	Transport http.RoundTripper
}

// Client calls the API. It is safe for concurrent use.
type Client struct {
	serverName string
	creds      *auth.Credentials
	http       *http.Client
	tls        *tlsdir.Dir
	timeout    time.Duration
}

// New finds the credentials and prepares the mutual-TLS transport. It fails
// with a *UserCredentialsError when the credentials are a person's, which
// cannot mint ID tokens for an arbitrary audience.
func New(ctx context.Context, cfg Config) (*Client, error) {
	var errs []error
	if cfg.Audience == "" {
		errs = append(errs, errors.New("apiclient: Config.Audience is required"))
	}
	if cfg.ServerName == "" {
		errs = append(errs, errors.New("apiclient: Config.ServerName is required"))
	}
	if cfg.TLS == nil {
		errs = append(errs, errors.New("apiclient: Config.TLS is required: the gateway wants a client certificate"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	creds, err := newCredentials(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{
		serverName: cfg.ServerName,
		creds:      creds,
		tls:        cfg.TLS,
		timeout:    cfg.Timeout,
		http: &http.Client{
			Transport: &http.Transport{
				DialTLSContext:  dialHTTP1(cfg.TLS, cfg.ServerName),
				IdleConnTimeout: 90 * time.Second,
			},
			// A redirect is an answer, not a place to send the token.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// dialHTTP1 dials the gateway with the client certificate, offering only
// HTTP/1.1. Under TLS 1.3 the gateway refuses a client certificate after the
// client's side of the handshake is done, with an alert that arrives at the
// first read; net/http's HTTP/1.1 reports it as the "remote error" it is,
// while its HTTP/2 client reports "client conn could not be established"
// and drops it. A caller makes a handful of calls; HTTP/2 buys it nothing.
func dialHTTP1(d *tlsdir.Dir, serverName string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cfg, err := d.ClientConfig(serverName)
		if err != nil {
			return nil, &unusableCertificateError{err} // expired, and nothing rotated in
		}
		cfg.NextProtos = []string{"http/1.1"}
		return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
	}
}

// unusableCertificateError is our client certificate refused before dialing.
type unusableCertificateError struct{ err error }

func (e *unusableCertificateError) Error() string { return e.err.Error() }
func (e *unusableCertificateError) Unwrap() error { return e.err }

func newCredentials(cfg Config) (*auth.Credentials, error) {
	google := &http.Client{Transport: cfg.Transport}
	opts := &idtoken.Options{Audience: cfg.Audience, Client: google}
	if cfg.CredentialsFile == "" {
		creds, err := idtoken.NewCredentials(opts)
		if err == nil {
			if credType(creds.JSON()) == string(credentials.ImpersonatedServiceAccount) {
				return impersonated(cfg, google, creds.JSON(), "Application Default Credentials")
			}
			return creds, nil
		}
		// The library refuses user credentials with a bare "unsupported
		// credentials type"; find out whether that is why, to say what to do.
		if adc, derr := credentials.DetectDefault(&credentials.DetectOptions{
			Scopes: []string{cloudPlatform}, Client: google,
		}); derr == nil && isUser(credType(adc.JSON())) {
			return nil, &UserCredentialsError{ServiceAccount: cfg.ImpersonationHint, Audience: cfg.Audience}
		}
		return nil, &Error{Kind: KindCredentials, Err: fmt.Errorf("finding Application Default Credentials: %w", err)}
	}
	b, err := os.ReadFile(cfg.CredentialsFile)
	if err != nil {
		return nil, &Error{Kind: KindCredentials, Err: fmt.Errorf("reading credentials: %w", err)}
	}
	var t credentials.CredType
	switch ct := credType(b); {
	case isUser(ct):
		return nil, &UserCredentialsError{ServiceAccount: cfg.ImpersonationHint, Audience: cfg.Audience}
	case ct == string(credentials.ImpersonatedServiceAccount):
		return impersonated(cfg, google, b, cfg.CredentialsFile)
	case ct == string(credentials.ServiceAccount), ct == string(credentials.ExternalAccount):
		t = credentials.CredType(ct)
	default:
		return nil, &Error{Kind: KindCredentials, Err: fmt.Errorf("%s: credentials of type %q cannot mint ID tokens", cfg.CredentialsFile, ct)}
	}
	creds, err := idtoken.NewCredentialsFromJSON(t, b, opts)
	if err != nil {
		return nil, &Error{Kind: KindCredentials, Err: fmt.Errorf("%s: %w", cfg.CredentialsFile, err)}
	}
	return creds, nil
}

const cloudPlatform = "https://www.googleapis.com/auth/cloud-platform"

// impersonated builds ID-token credentials from an impersonated service
// account file (what `gcloud auth application-default login
// --impersonate-service-account` writes) with the credentials/impersonate
// package, the source credentials authenticating the IAM call. The idtoken
// package would send that call without credentials and get a 401
// (googleapis/google-cloud-go#19939; local/google pins it in a test).
func impersonated(cfg Config, google *http.Client, b []byte, where string) (*auth.Credentials, error) {
	fail := func(err error) error {
		return &Error{Kind: KindCredentials, Err: fmt.Errorf("%s: impersonation: %w", where, err)}
	}
	var f struct {
		URL       string          `json:"service_account_impersonation_url"`
		Source    json.RawMessage `json:"source_credentials"`
		Delegates []string        `json:"delegates"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fail(err)
	}
	// .../serviceAccounts/EMAIL:generateAccessToken names the target.
	target, _, _ := strings.Cut(path.Base(f.URL), ":")
	if !strings.Contains(target, "@") {
		return nil, fail(fmt.Errorf("service_account_impersonation_url %q names no service account", f.URL))
	}
	source, err := credentials.DetectDefault(&credentials.DetectOptions{
		CredentialsJSON: f.Source, Scopes: []string{cloudPlatform}, Client: google,
	})
	if err != nil {
		return nil, fail(err)
	}
	authed, err := httptransport.NewClient(&httptransport.Options{Credentials: source, BaseRoundTripper: cfg.Transport})
	if err != nil {
		return nil, fail(err)
	}
	creds, err := impersonate.NewIDTokenCredentials(&impersonate.IDTokenOptions{
		Audience: cfg.Audience, TargetPrincipal: target, Delegates: f.Delegates,
		// The gateway admits machine callers by their email.
		IncludeEmail: true,
		Client:       authed, Credentials: source,
	})
	if err != nil {
		return nil, fail(err)
	}
	return creds, nil
}

func credType(b []byte) string {
	var f struct {
		Type string `json:"type"`
	}
	json.Unmarshal(b, &f)
	return f.Type
}

// UserCredentialsError refuses a person's credentials: Google mints ID tokens
// with an arbitrary audience only for service accounts, and the API admits
// machine callers by their service account's email. It says how to act as
// the service account instead.
type UserCredentialsError struct {
	ServiceAccount string // may be empty
	Audience       string
}

func (e *UserCredentialsError) Error() string {
	sa := e.ServiceAccount
	if sa == "" {
		sa = "SERVICE_ACCOUNT_EMAIL"
	}
	return "Application Default Credentials are user credentials, which cannot mint an ID token for " + e.Audience +
		"; act as the caller's service account instead (you need roles/iam.serviceAccountTokenCreator on it):\n" +
		"  gcloud auth application-default login --impersonate-service-account=" + sa + "\n" +
		"or, for a single token to use with curl:\n" +
		"  gcloud auth print-identity-token --impersonate-service-account=" + sa +
		" --audiences=" + e.Audience + " --include-email"
}

// Kind says which part of a call failed.
type Kind int

const (
	KindCredentials       Kind = iota + 1 // no ID token: no usable credentials, or the token source refused
	KindNetwork                           // the gateway was not reached, or the connection broke
	KindServerCertificate                 // we refused the gateway's certificate
	KindClientCertificate                 // the gateway refused our client certificate
	KindUnauthenticated                   // 401: the gateway or API refused the token
	KindForbidden                         // 403: the caller is not allowed
	KindStatus                            // another non-2xx answer
)

var kindNames = map[Kind]string{
	KindCredentials: "credentials", KindNetwork: "network", KindServerCertificate: "server-certificate",
	KindClientCertificate: "client-certificate", KindUnauthenticated: "unauthenticated",
	KindForbidden: "forbidden", KindStatus: "status",
}

func (k Kind) String() string { return kindNames[k] }

// Error is a failed call.
type Error struct {
	Kind Kind
	// Status and Reason are the answer's, for KindUnauthenticated,
	// KindForbidden and KindStatus: Reason is Envoy's words ("Jwt is
	// expired", "RBAC: access denied"), the first line of the body.
	Status int
	Reason string
	// Certificate is the certificate at fault for the TLS kinds: the
	// gateway's, or our client certificate.
	Certificate *x509.Certificate
	Err         error
}

func (e *Error) Error() string {
	switch e.Kind {
	case KindUnauthenticated, KindForbidden, KindStatus:
		return fmt.Sprintf("%s: HTTP %d: %s", e.Kind, e.Status, e.Reason)
	case KindServerCertificate:
		return fmt.Sprintf("server-certificate: refused the gateway's %s: %v", describe(e.Certificate), e.Err)
	case KindClientCertificate:
		return fmt.Sprintf("client-certificate: the gateway refused our client %s: %v", describe(e.Certificate), e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func describe(c *x509.Certificate) string {
	if c == nil {
		return "certificate (unknown)"
	}
	return tlsdir.Describe(c)
}

// Answer is the API's answer to a call.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Token returns the current ID token, fetching one only when the cached one
// is near its expiry. The caller must not log it.
func (c *Client) Token(ctx context.Context) (string, error) {
	tok, err := c.creds.Token(ctx)
	if err != nil {
		return "", &Error{Kind: KindCredentials, Err: fmt.Errorf("getting an ID token: %w", err)}
	}
	return tok.Value, nil
}

// Get calls GET rawURL with the ID token as a bearer token. A non-2xx answer
// is returned together with an *Error; every other failure with an *Error
// alone.
func (c *Client) Get(ctx context.Context, rawURL string) (*Answer, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("apiclient: %q is not an https:// URL", rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tok, err := c.Token(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	// The gateway is reached by IP; its VirtualService routes by host, the
	// name its certificate carries, as the frontend sends it.
	req.Host = c.serverName
	res, err := c.http.Do(req)
	if err != nil {
		return nil, c.classify(err)
	}
	return answerOf(res)
}

// answerOf reads an answer and classifies a non-2xx one, closing the body.
func answerOf(res *http.Response) (*Answer, error) {
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return nil, &Error{Kind: KindNetwork, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	a := &Answer{Status: res.StatusCode, Header: res.Header, Body: body}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return a, nil
	}
	e := &Error{Kind: KindStatus, Status: res.StatusCode, Reason: reason(body, res.Status)}
	switch res.StatusCode {
	case http.StatusUnauthorized:
		e.Kind = KindUnauthenticated
	case http.StatusForbidden:
		e.Kind = KindForbidden
	}
	return a, e
}

// reason is the first line of an error body — Envoy answers its refusals in
// plain text, "Jwt is expired" or "RBAC: access denied" — or the status.
func reason(body []byte, status string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	if len(line) > 200 {
		line = line[:200]
	}
	if line == "" {
		return status
	}
	return line
}

// classify names what failed in a request that got no answer.
func (c *Client) classify(err error) *Error {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		e := &Error{Kind: KindServerCertificate, Err: cve.Err}
		if len(cve.UnverifiedCertificates) > 0 {
			e.Certificate = cve.UnverifiedCertificates[0]
		}
		return e
	}
	var unusable *unusableCertificateError
	if errors.As(err, &unusable) {
		return &Error{Kind: KindClientCertificate, Certificate: c.tls.Certificate(), Err: unusable.err}
	}
	// A TLS alert from the gateway: under TLS 1.3 a refused client
	// certificate shows up so, at the first read after the handshake.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return &Error{Kind: KindClientCertificate, Certificate: c.tls.Certificate(), Err: op.Err}
	}
	return &Error{Kind: KindNetwork, Err: err}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// isUser reports whether a credentials type is a person's: a gcloud login,
// or a workforce identity federation login.
func isUser(t string) bool {
	return t == string(credentials.AuthorizedUser) || t == string(credentials.ExternalAccountAuthorizedUser)
}
