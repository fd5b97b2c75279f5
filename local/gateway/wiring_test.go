package gateway

import (
	"path/filepath"
	"testing"
)

func TestLocalConfigDerivesEveryMappingFromTheResources(t *testing.T) {
	rs, err := Load(filepath.Join("..", "..", "istio"), "demo-acme")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LocalConfig(rs, Local{CredentialDir: "/pki/gateway", Upstream: "127.0.0.1:8081", JWKSOrigin: "http://127.0.0.1:9099"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Credentials["api-gateway-mtls"]; got != "/pki/gateway" || len(cfg.Credentials) != 1 {
		t.Errorf("Credentials = %v, want api-gateway-mtls → /pki/gateway only", cfg.Credentials)
	}
	if len(cfg.Upstreams) != 2 || cfg.Upstreams[backendDst] != "127.0.0.1:8081" || cfg.Upstreams[apikeysDst] != "127.0.0.1:8081" {
		t.Errorf("Upstreams = %v, want %s and %s → 127.0.0.1:8081 only", cfg.Upstreams, backendDst, apikeysDst)
	}
	const google = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
	const local = "http://127.0.0.1:9099/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
	if got := cfg.JWKSOverride[google]; got != local || len(cfg.JWKSOverride) != 1 {
		t.Errorf("JWKSOverride = %v, want only %s → %s", cfg.JWKSOverride, google, local)
	}
	if got := cfg.Overrides(); len(got) != 1 || got[0] != google+" → "+local {
		t.Errorf("Overrides() = %q", got)
	}
	if _, err := LocalConfig(rs, Local{JWKSOrigin: "127.0.0.1:9099"}); err == nil {
		t.Error("LocalConfig accepted a JWKSOrigin without a scheme")
	}
}
