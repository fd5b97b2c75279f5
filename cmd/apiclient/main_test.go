package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/auth/credentials/idtoken"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
	"github.com/acme/cloudrun-istio-gke/local/google"
)

const (
	reporter = "reporter@demo-acme.iam.gserviceaccount.com"
	stranger = "stranger@demo-acme.iam.gserviceaccount.com"
	audience = "https://api.internal.example"
)

// setup serves the Google stand-in and a mutual-TLS gateway that admits
// reporter's Google ID tokens for audience (refusing the rest in Envoy's
// words), and writes reporter's and stranger's key files and a client
// certificate directory. It returns the environment a caller would have.
func setup(t *testing.T) (env map[string]string, gateway string, g *google.Google) {
	t.Helper()
	gs := httptest.NewUnstartedServer(nil)
	g, err := google.New(google.Config{
		ProjectID: "demo-acme", StateDir: t.TempDir(), URL: "http://" + gs.Listener.Addr().String(),
		ServiceAccounts: []string{reporter, stranger},
	})
	if err != nil {
		t.Fatal(err)
	}
	gs.Config.Handler = g.Handler()
	gs.Start()
	t.Cleanup(gs.Close)

	v := certgen.For(time.Now(), time.Hour)
	ca, err := certgen.NewCA("test CA", v)
	if err != nil {
		t.Fatal(err)
	}
	server, _ := ca.IssueServer([]string{"api.internal.example"}, v)
	u, _ := url.Parse("spiffe://acme.internal/ns/jobs/sa/reporter")
	client, _ := ca.IssueClient("reporter", u, v)
	dir := filepath.Join(t.TempDir(), "client")
	if err := certgen.WriteDir(dir, client, ca.CertPEM); err != nil {
		t.Fatal(err)
	}
	kp, _ := tls.X509KeyPair(server.CertPEM, server.KeyPEM)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	validator, _ := idtoken.NewValidator(&idtoken.ValidatorOptions{RS256CertsURL: g.CertsURL()})
	gw := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p, err := validator.Validate(r.Context(), tok, audience)
		switch {
		case err != nil && strings.Contains(err.Error(), "audience"):
			http.Error(w, "Audiences in Jwt are not allowed", http.StatusUnauthorized)
		case err != nil:
			http.Error(w, "Jwt verification fails", http.StatusUnauthorized)
		case p.Claims["email"] != reporter:
			http.Error(w, "RBAC: access denied", http.StatusForbidden)
		default:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"message": "Hello World",
				"caller": map[string]any{"kind": "service-account", "email": p.Claims["email"]}})
		}
	}))
	gw.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	gw.StartTLS()
	t.Cleanup(gw.Close)

	keys := t.TempDir()
	key, err := g.WriteKeyFile(keys, reporter)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteKeyFile(keys, stranger); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"GOOGLE_APPLICATION_CREDENTIALS": key,
		"CLIENT_TLS_DIR":                 dir,
		"API_AUDIENCE":                   audience,
	}, gw.URL + "/api/secure.json", g
}

func runWith(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(t.Context(), args, func(k string) string { return env[k] }, &out)
	return out.String(), err
}

func TestPrintsTheAnswerAndNotTheToken(t *testing.T) {
	env, gw, _ := setup(t)
	out, err := runWith(t, env, "-url", gw)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(out, `"email":"`+reporter+`"`) {
		t.Errorf("output %q does not show the answer naming %s", out, reporter)
	}
	if strings.Contains(out, "eyJ") {
		t.Errorf("output %q holds what looks like a JWT; tokens are printed only with -print-token", out)
	}
}

func TestPrintTokenPrintsAValidToken(t *testing.T) {
	env, _, g := setup(t)
	out, err := runWith(t, env, "-print-token")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	v, _ := idtoken.NewValidator(&idtoken.ValidatorOptions{RS256CertsURL: g.CertsURL()})
	p, err := v.Validate(t.Context(), strings.TrimSpace(out), audience)
	if err != nil || p.Claims["email"] != reporter {
		t.Errorf("printed %q: %v; want a valid token for %s", out, err, reporter)
	}
}

func TestJSONAndExitStatusSayWhatFailed(t *testing.T) {
	env, gw, _ := setup(t)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closed.Close()
	userCreds := filepath.Join(t.TempDir(), "user.json")
	os.WriteFile(userCreds, []byte(`{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`), 0o600)
	strangerKey := filepath.Join(filepath.Dir(env["GOOGLE_APPLICATION_CREDENTIALS"]), "stranger.json")

	for _, tc := range []struct {
		name   string
		args   []string
		exit   int
		kind   string
		status int
		reason string
	}{
		{"an admitted caller gets 200 and exit 0", []string{"-url", gw}, 0, "", 200, ""},
		{"another audience is 401 with Envoy's reason", []string{"-url", gw, "-audience", "https://elsewhere.example"},
			exitUnauthenticated, "unauthenticated", 401, "Audiences in Jwt are not allowed"},
		{"a service account not admitted is 403", []string{"-url", gw, "-credentials", strangerKey},
			exitForbidden, "forbidden", 403, "RBAC: access denied"},
		{"an unreachable gateway is a network failure", []string{"-url", "https://" + closed.Addr().String() + "/api/secure.json"},
			exitNetwork, "network", 0, ""},
		{"user credentials are refused", []string{"-url", gw, "-credentials", userCreds},
			exitCredentials, "credentials", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runWith(t, env, append(tc.args, "-json")...)
			if code := exitCode(err); err != nil && code != tc.exit || err == nil && tc.exit != 0 {
				t.Fatalf("exit %d (%v), want %d", code, err, tc.exit)
			}
			var r result
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("-json printed %q: %v", out, err)
			}
			if r.Status != tc.status {
				t.Errorf("status %d, want %d", r.Status, tc.status)
			}
			switch {
			case tc.kind == "" && r.Error != nil:
				t.Errorf("error %+v, want none", r.Error)
			case tc.kind != "" && (r.Error == nil || r.Error.Kind != tc.kind || r.Error.Reason != tc.reason):
				t.Errorf("error %+v, want kind %q reason %q", r.Error, tc.kind, tc.reason)
			}
			if wantSeverity := map[bool]string{true: "INFO", false: "ERROR"}[tc.exit == 0]; r.Severity != wantSeverity || r.Message == "" {
				t.Errorf("severity %q message %q, want %s and a message for Cloud Logging", r.Severity, r.Message, wantSeverity)
			}
			if r.Token != "" {
				t.Error("-json printed the token without -print-token")
			}
		})
	}
}

func TestUserCredentialsGetTheImpersonationCommand(t *testing.T) {
	env, gw, _ := setup(t)
	userCreds := filepath.Join(t.TempDir(), "user.json")
	os.WriteFile(userCreds, []byte(`{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`), 0o600)
	env["GOOGLE_APPLICATION_CREDENTIALS"] = userCreds
	_, err := runWith(t, env, "-url", gw, "-service-account", reporter)
	want := "gcloud auth application-default login --impersonate-service-account=" + reporter
	if exitCode(err) != exitCredentials || err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got exit %d: %v; want exit %d saying %q", exitCode(err), err, exitCredentials, want)
	}
}

func TestBadFlagsAreUsageErrors(t *testing.T) {
	env, _, _ := setup(t)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"a plain http URL is refused", []string{"-url", "http://10.10.0.100/api/secure.json"}, env},
		{"no URL is refused", nil, env},
		{"no audience is refused", []string{"-url", "https://10.10.0.100/"}, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runWith(t, tc.env, tc.args...)
			if exitCode(err) != exitUsage {
				t.Errorf("got exit %d (%v), want %d", exitCode(err), err, exitUsage)
			}
		})
	}
	t.Run("-h prints the usage", func(t *testing.T) {
		out, err := runWith(t, env, "-h")
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "Exit status:") {
			t.Errorf("got %v and %q, want flag.ErrHelp and the usage", err, out)
		}
	})
}
