package google

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/acme/cloudrun-istio-gke/internal/certgen"
)

// keyFile is a service-account key file as
// `gcloud iam service-accounts keys create` writes it.
type keyFile struct {
	Type                    string `json:"type"`
	ProjectID               string `json:"project_id"`
	PrivateKeyID            string `json:"private_key_id"`
	PrivateKey              string `json:"private_key"`
	ClientEmail             string `json:"client_email"`
	ClientID                string `json:"client_id"`
	AuthURI                 string `json:"auth_uri"`
	TokenURI                string `json:"token_uri"`
	AuthProviderX509CertURL string `json:"auth_provider_x509_cert_url"`
	ClientX509CertURL       string `json:"client_x509_cert_url"`
	UniverseDomain          string `json:"universe_domain"`
}

// WriteKeyFile writes the key file of the service account email into dir
// (created 0700 if missing) as <account name>.json, mode 0600, and returns
// its path: what GOOGLE_APPLICATION_CREDENTIALS names. Its token_uri is the
// stand-in's TokenURL, so the Google auth libraries exchange it here.
func (g *Google) WriteKeyFile(dir, email string) (string, error) {
	a, ok := g.accounts[email]
	if !ok {
		return "", fmt.Errorf("google: writing a key file: no service account %q", email)
	}
	der, err := x509.MarshalPKCS8PrivateKey(a.priv)
	if err != nil {
		return "", err
	}
	f := keyFile{
		Type:         "service_account",
		ProjectID:    g.project,
		PrivateKeyID: a.keyID,
		PrivateKey:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		ClientEmail:  a.email,
		ClientID:     a.uniqueID,
		AuthURI:      "https://accounts.google.com/o/oauth2/auth",
		TokenURI:     g.TokenURL(),
		// Google publishes each account's public keys at this address; the
		// stand-in does not serve it, nothing in this project reads it.
		AuthProviderX509CertURL: "https://www.googleapis.com/oauth2/v1/certs",
		ClientX509CertURL:       "https://www.googleapis.com/robot/v1/metadata/x509/" + strings.ReplaceAll(a.email, "@", "%40"),
		// Without it the library assumes googleapis.com anyway; written
		// because the key files Google issues today carry it.
		UniverseDomain: "googleapis.com",
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("google: writing a key file: %w", err)
	}
	name, _, _ := strings.Cut(a.email, "@")
	path := filepath.Join(dir, name+".json")
	if err := certgen.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("google: writing a key file: %w", err)
	}
	return path, nil
}
