package gateway

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLocalConfigDerivesEveryMappingFromTheResources(t *testing.T) {
	rs, err := Load(filepath.Join("..", "..", "istio"), "demo-acme")
	if err != nil {
		t.Fatal(err)
	}
	const (
		securetoken    = "https://securetoken.google.com/demo-acme"
		securetokenKey = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
		emulatorKey    = "http://127.0.0.1:9099/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
		google         = "https://accounts.google.com"
		googleKey      = "https://www.googleapis.com/oauth2/v3/certs"
		standInKey     = "http://127.0.0.1:9300/www.googleapis.com/oauth2/v3/certs"
	)
	both := map[string]string{securetoken: emulatorKey, google: standInKey}
	cfg, err := LocalConfig(rs, Local{CredentialDir: "/pki/gateway", Upstream: "127.0.0.1:8081", JWKS: both})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Credentials["api-gateway-mtls"]; got != "/pki/gateway" || len(cfg.Credentials) != 1 {
		t.Errorf("Credentials = %v, want api-gateway-mtls → /pki/gateway only", cfg.Credentials)
	}
	if len(cfg.Upstreams) != 2 || cfg.Upstreams[backendDst] != "127.0.0.1:8081" || cfg.Upstreams[apikeysDst] != "127.0.0.1:8081" {
		t.Errorf("Upstreams = %v, want %s and %s → 127.0.0.1:8081 only", cfg.Upstreams, backendDst, apikeysDst)
	}
	t.Run("each issuer's jwksUri is fetched from its own stand-in", func(t *testing.T) {
		if cfg.JWKSOverride[securetokenKey] != emulatorKey || cfg.JWKSOverride[googleKey] != standInKey || len(cfg.JWKSOverride) != 2 {
			t.Errorf("JWKSOverride = %v, want %s → %s and %s → %s", cfg.JWKSOverride, securetokenKey, emulatorKey, googleKey, standInKey)
		}
	})
	t.Run("the start-up lines name issuer, jwksUri and where it is fetched from", func(t *testing.T) {
		want := []string{
			"issuer " + google + ": jwksUri " + googleKey + " → " + standInKey,
			"issuer " + securetoken + ": jwksUri " + securetokenKey + " → " + emulatorKey,
		}
		if got := cfg.Overrides(); !slices.Equal(got, want) {
			t.Errorf("Overrides() = %q, want %q", got, want)
		}
	})

	tests := []struct {
		name string
		jwks map[string]string
		want string
	}{
		{"an issuer without a local key set is refused, not fetched from Google", map[string]string{securetoken: emulatorKey}, `issuer "https://accounts.google.com"`},
		{"a local key set that is no URL is refused", map[string]string{securetoken: emulatorKey, google: "127.0.0.1:9300"}, "Local.JWKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LocalConfig(rs, Local{JWKS: tt.jwks})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LocalConfig error = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestTheRenderedPolicyNamesTheMachineCallersAndTheirAudience(t *testing.T) {
	rs, err := Load(filepath.Join("..", "..", "istio"), "my-project")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rs.AllowedClaimValues("email"), []string{"reporter@my-project.iam.gserviceaccount.com"}; !slices.Equal(got, want) {
		t.Errorf("AllowedClaimValues(email) = %q, want %q (the project id substituted into the allowlist)", got, want)
	}
	if got, want := rs.Audiences("https://accounts.google.com"), []string{"https://api.internal.example"}; !slices.Equal(got, want) {
		t.Errorf("Audiences(Google) = %q, want %q (API_AUDIENCE of istio/project.env)", got, want)
	}
	if got, want := rs.Audiences("https://securetoken.google.com/my-project"), []string{"my-project"}; !slices.Equal(got, want) {
		t.Errorf("Audiences(Identity Platform) = %q, want %q", got, want)
	}
}

func TestKeysAtPutsEveryIssuersKeyPathOnOneOrigin(t *testing.T) {
	rs, err := Load(filepath.Join("..", "..", "istio"), "demo-acme")
	if err != nil {
		t.Fatal(err)
	}
	got := KeysAt(rs, "http://127.0.0.1:9099/")
	want := map[string]string{
		"https://securetoken.google.com/demo-acme": "http://127.0.0.1:9099/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
		"https://accounts.google.com":              "http://127.0.0.1:9099/oauth2/v3/certs",
	}
	if len(got) != len(want) {
		t.Fatalf("KeysAt = %v, want %v", got, want)
	}
	for iss, u := range want {
		if got[iss] != u {
			t.Errorf("KeysAt[%s] = %q, want %q", iss, got[iss], u)
		}
	}
}
