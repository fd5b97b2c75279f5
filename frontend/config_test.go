package frontend

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	base := map[string]string{
		"GOOGLE_CLOUD_PROJECT": "demo-acme",
		"FIREBASE_API_KEY":     "AIza-public",
		"GATEWAY_URL":          "https://10.10.0.100",
		"CLIENT_TLS_DIR":       "/secrets/frontend",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		check   func(*testing.T, Config)
	}{
		{name: "Cloud Run's environment is enough", env: with("PORT", "8080"), check: func(t *testing.T, c Config) {
			if c.Addr != ":8080" || c.FirebaseAuthDomain != "demo-acme.firebaseapp.com" || c.GatewayServerName != "api.internal.example" {
				t.Errorf("got %+v; want :8080, the default auth domain and gateway name", c)
			}
		}},
		{name: "without PORT it listens on loopback only", env: base, check: func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:8080" {
				t.Errorf("Addr %q, want 127.0.0.1:8080", c.Addr)
			}
		}},
		{name: "three separate certificate files replace the directory", env: with("CLIENT_TLS_DIR", "",
			"CLIENT_TLS_CERT_FILE", "/a/tls.crt", "CLIENT_TLS_KEY_FILE", "/b/tls.key", "CLIENT_TLS_CA_FILE", "/c/ca.crt")},
		{name: "the emulator needs no API key", env: with("FIREBASE_API_KEY", "", "FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099"),
			check: func(t *testing.T, c Config) {
				if c.FirebaseAPIKey == "" || c.emulatorURL() != "http://127.0.0.1:9099" {
					t.Errorf("got key %q and emulator URL %q", c.FirebaseAPIKey, c.emulatorURL())
				}
			}},
		{name: "the session secret's file comes from SESSION_KEY_FILE", env: with("SESSION_KEY_FILE", "/secrets/session/key"),
			check: func(t *testing.T, c Config) {
				if c.SessionKeyFile != "/secrets/session/key" {
					t.Errorf("SessionKeyFile %q, want /secrets/session/key", c.SessionKeyFile)
				}
			}},
		{name: "a missing project is named", env: with("GOOGLE_CLOUD_PROJECT", ""), wantErr: "ProjectID is required"},
		{name: "a plain-HTTP gateway is refused", env: with("GATEWAY_URL", "http://10.0.0.1"), wantErr: "GatewayURL"},
		{name: "a gateway URL with a path is refused", env: with("GATEWAY_URL", "https://10.0.0.1/api"), wantErr: "GatewayURL"},
		{name: "only some certificate files is refused", env: with("CLIENT_TLS_DIR", "", "CLIENT_TLS_CERT_FILE", "/a"), wantErr: "ClientCertFile"},
		{name: "a bad emulator address is named", env: with("FIREBASE_AUTH_EMULATOR_HOST", "nope"), wantErr: "AuthEmulatorHost"},
		{name: "a zero timeout is refused", args: []string{"-backend-timeout", "0s"}, env: base, wantErr: "BackendTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestConfigIsPrintedWithoutSecrets(t *testing.T) {
	c := Config{GatewayURL: "https://user:hunter2@10.0.0.1", ClientKeyFile: "/secrets/tls.key"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("printed config %s contains the password from GatewayURL", buf.String())
	}
	if !strings.Contains(buf.String(), "/secrets/tls.key") {
		t.Errorf("printed config %s: want the key's path (not its content) shown", buf.String())
	}
}
