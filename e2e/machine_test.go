package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/auth/credentials/idtoken"

	"github.com/acme/cloudrun-istio-gke/internal/cputime"
	"github.com/acme/cloudrun-istio-gke/local/google"
	"github.com/acme/cloudrun-istio-gke/local/stack"
)

// intruderAccount is a service account of the project that the Google
// stand-in holds but istio/'s allowlist does not name.
const intruderAccount = "intruder@demo-acme.iam.gserviceaccount.com"

// The machine path end to end: a workload's Google ID token from the
// unmodified cloud.google.com/go/auth/credentials/idtoken — through
// Application Default Credentials, from the metadata server (GCE_METADATA_HOST)
// or a key file (GOOGLE_APPLICATION_CREDENTIALS) — over the machine caller's
// client certificate, through the gateway enforcing istio/, to the backend,
// which verifies it again and names the caller.

// adcToken gets an ID token for audience the way a workload does: Application
// Default Credentials as found in the environment, then the library's token.
func adcToken(t testing.TB, audience string) string {
	t.Helper()
	creds, err := idtoken.NewCredentials(&idtoken.Options{Audience: audience})
	if err != nil {
		t.Fatalf("idtoken.NewCredentials: %v", err)
	}
	tok, err := creds.Token(t.Context())
	if err != nil {
		t.Fatalf("getting an ID token: %v", err)
	}
	noteSecret(tok.Value)
	return tok.Value
}

// fromMetadataServer makes the process look like a Cloud Run job, a GKE pod
// or a VM: no key file, no gcloud login, a metadata server.
func fromMetadataServer(t *testing.T, st *stack.Stack) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("HOME", t.TempDir()) // no ~/.config/gcloud ADC file to find first
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(st.GoogleURL, "http://"))
}

// fromKeyFile makes ADC find the key file devstack writes.
func fromKeyFile(t *testing.T, path string) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1") // never reached
}

// gatewayCall GETs path through the gateway over tlsCfg with token (if any).
func gatewayCall(t testing.TB, hc *http.Client, path, token string) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, env.gatewayURL+path, nil)
	req.Host = env.gatewayServerName
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func httpClient(t testing.TB, cfg *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

func TestAWorkloadReachesTheAPIWithAGoogleIDTokenFromADC(t *testing.T) {
	st := requireLocal(t, "the machine caller's credentials are the local stand-in's")
	machine := httpClient(t, clientTLS(t, st.MachineTLSDir, true))
	want := `{"message":"Hello World","caller":{"kind":"service-account","email":"` + st.MachineAccount + `"}}`
	for _, tc := range []struct {
		name string
		adc  func(t *testing.T)
	}{
		{"from the metadata server, as on Cloud Run, GKE and Compute Engine", func(t *testing.T) { fromMetadataServer(t, st) }},
		{"from a service-account key file", func(t *testing.T) { fromKeyFile(t, st.MachineKeyFile) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.adc(t)
			status, body, err := gatewayCall(t, machine, "/api/secure.json", adcToken(t, st.MachineAudience))
			if err != nil {
				t.Fatal(err)
			}
			if status != 200 || strings.TrimSpace(body) != want {
				t.Errorf("got %d %q, want 200 %s", status, body, want)
			}
		})
	}
}

func TestTheGatewayRefusesWhatTheMachineRuleDoesNotAdmit(t *testing.T) {
	st := requireLocal(t, "the refused tokens are minted by the local stand-in")
	fromMetadataServer(t, st)
	machineTLS := clientTLS(t, st.MachineTLSDir, true)
	machine := httpClient(t, machineTLS)
	frontend := httpClient(t, clientTLS(t, env.clientCertDir, true))
	noCert := httpClient(t, clientTLS(t, st.MachineTLSDir, false))

	valid := adcToken(t, st.MachineAudience)
	otherAudience := adcToken(t, "https://other.example")
	notAllowed, err := st.Google.SignIDToken(intruderAccount, st.MachineAudience)
	if err != nil {
		t.Fatal(err)
	}
	// The stand-in's keys with a clock two hours back: a token that expired
	// an hour ago. Same accounts, so its state file is left as it is.
	past, err := google.New(google.Config{ProjectID: st.ProjectID, StateDir: st.GoogleStateDir, URL: st.GoogleURL,
		ServiceAccounts: st.ServiceAccounts, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := past.SignIDToken(st.MachineAccount, st.MachineAudience)
	if err != nil {
		t.Fatal(err)
	}
	user := userTokens(t).valid

	const rbac = "RBAC: access denied"
	tests := []struct {
		name       string
		client     *http.Client
		token      string
		wantStatus int
		wantBody   string
	}{
		{"a token for another audience is refused by authentication", machine, otherAudience, 403, "Audiences in Jwt are not allowed"},
		{"a service account not on the allowlist is refused by authorization", machine, notAllowed, 403, rbac},
		{"an expired token is refused by authentication", machine, expired, 401, "Jwt is expired"},
		{"a user's token does not pass the machine rule", machine, user, 403, rbac},
		{"a service account's token does not pass the user rule (over the frontend's certificate)", frontend, valid, 403, rbac},
		{"the machine caller's certificate without a token is refused", machine, "", 403, rbac},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, err := gatewayCall(t, tt.client, "/api/secure.json", tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	t.Run("a valid machine token without any client certificate gets no TLS handshake", func(t *testing.T) {
		status, body, err := gatewayCall(t, noCert, "/api/secure.json", valid)
		if err == nil {
			t.Fatalf("got %d %q, want the handshake refused (the gateway is MUTUAL for everyone)", status, body)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %v, want a TLS alert about the missing certificate", err)
		}
	})
}

func TestTheStandInsRefuseWhatGoogleRefuses(t *testing.T) {
	st := requireLocal(t, "the stand-ins are local")
	t.Run("the metadata server refuses a request without Metadata-Flavor: Google", func(t *testing.T) {
		resp, err := http.Get(st.GoogleURL + "/computeMetadata/v1/instance/service-accounts/default/identity?audience=" + st.MachineAudience)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 403 || !strings.Contains(string(body), "Missing Metadata-Flavor:Google header.") {
			t.Errorf("got %d %q, want 403 saying the header is missing", resp.StatusCode, body)
		}
	})
	t.Run("a key file whose assertion is signed by a foreign key gets no token", func(t *testing.T) {
		raw, err := os.ReadFile(st.MachineKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		var key map[string]any
		if err := json.Unmarshal(raw, &key); err != nil {
			t.Fatal(err)
		}
		foreign, _ := rsa.GenerateKey(rand.Reader, 2048)
		der, _ := x509.MarshalPKCS8PrivateKey(foreign)
		key["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		forged, _ := json.Marshal(key)
		path := filepath.Join(t.TempDir(), "forged.json")
		if err := os.WriteFile(path, forged, 0o600); err != nil {
			t.Fatal(err)
		}
		fromKeyFile(t, path)
		creds, err := idtoken.NewCredentials(&idtoken.Options{Audience: st.MachineAudience})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := creds.Token(t.Context())
		if err == nil {
			noteSecret(tok.Value)
			t.Fatal("got an ID token for an assertion signed by a foreign key, want invalid_grant")
		}
		if !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("error %v, want Google's invalid_grant", err)
		}
	})
}

// BenchmarkSecureJSONCallers puts a user's call and a workload's call through
// the gateway side by side, in one run: mTLS kept alive, each with its own
// certificate and token, both checked by the gateway's JWT rule and policy
// and again by the backend. The difference is the cost of the machine path.
func BenchmarkSecureJSONCallers(b *testing.B) {
	requireGateway(b)
	st := requireLocal(b, "the workload's token comes from the local stand-in")
	machineTok, err := st.Google.SignIDToken(st.MachineAccount, st.MachineAudience)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, certDir, token string
	}{
		{"user", env.clientCertDir, userTokens(b).valid},
		{"service-account", st.MachineTLSDir, machineTok},
	} {
		b.Run(c.name, func(b *testing.B) {
			hc := &http.Client{Timeout: 10 * time.Second,
				Transport: &http.Transport{TLSClientConfig: clientTLS(b, c.certDir, true), MaxIdleConnsPerHost: 4}}
			defer hc.CloseIdleConnections()
			if status, body, err := gatewayCall(b, hc, "/api/secure.json", c.token); err != nil || status != 200 {
				b.Fatalf("GET /api/secure.json as %s: %d %q %v, want 200", c.name, status, body, err)
			}
			cpu := cputime.Used(b)
			for b.Loop() {
				if status, _, err := gatewayCall(b, hc, "/api/secure.json", c.token); err != nil || status != 200 {
					b.Fatalf("status %d, %v", status, err)
				}
			}
			cputime.ReportPerOp(b, cpu)
		})
	}
}
