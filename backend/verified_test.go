package backend_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/acme/cloudrun-istio-gke/internal/hopfacts"
)

func TestTheAnswerReportsWhatTheBackendVerified(t *testing.T) {
	st := startStack(t)
	_, ts, _ := newBackend(t, st.verifier)
	uid, tok := st.signIn(t, "alice@example.com", 0)
	parsed, err := jwt.ParseInsecure([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := parsed.Expiration()
	wantToken := hopfacts.Token{Issuer: "https://securetoken.google.com/" + project, Subject: uid, Audience: project, Expires: exp.UTC()}

	const (
		frontendURI = "spiffe://acme.internal/ns/frontend/sa/frontend"
		hash        = "4f1c0ad2a7d0e9b2b8b6a1f0c3d2e1f09a8b7c6d5e4f30211f0e0d0c0b0a0908"
	)
	tests := []struct {
		name string
		xfcc []string
		want hopfacts.ClientCert
	}{
		{"a request without x-forwarded-client-cert reports the token alone", nil, hopfacts.ClientCert{}},
		{"the gateway's element gives the caller's identity and certificate hash",
			[]string{`Hash=` + hash + `;Cert="-----BEGIN%20CERTIFICATE-----%0A";Subject="CN=frontend,O=Acme";URI=` + frontendURI},
			hopfacts.ClientCert{URI: frontendURI, Hash: hash}},
		{"with several elements the last, the gateway's own, is reported",
			[]string{`Hash=00;URI=spiffe://evil/sa/admin`, `Hash=` + hash + `;URI=` + frontendURI},
			hopfacts.ClientCert{URI: frontendURI, Hash: hash}},
		{"separators inside a quoted subject do not split the element",
			[]string{`Hash=` + hash + `;Subject="CN=a\"b;URI=spiffe://evil,O=x";URI=` + frontendURI},
			hopfacts.ClientCert{URI: frontendURI, Hash: hash}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := bearer(tok)
			h["X-Forwarded-Client-Cert"] = tt.xfcc
			a := get(t, "GET", ts.URL+"/api/secure.json", h)
			if a.status != http.StatusOK {
				t.Fatalf("status %d, want 200 (%v)", a.status, a.body)
			}
			got, ok := hopfacts.ReadReport(a.header)
			if !ok {
				t.Fatalf("no verified-token report in the answer's headers: %v", a.header)
			}
			if got.Token != wantToken {
				t.Errorf("token reported as %+v, want %+v", got.Token, wantToken)
			}
			if got.ClientCert != tt.want {
				t.Errorf("client certificate reported as %+v, want %+v", got.ClientCert, tt.want)
			}
			if d, ok := hopfacts.ServerTimingDur(a.header.Values("Server-Timing"), "backend"); !ok || d < 0 || d > time.Minute {
				t.Errorf("Server-Timing %q: want a backend;dur= metric", a.header.Values("Server-Timing"))
			}
		})
	}

	t.Run("a refused request reports nothing", func(t *testing.T) {
		a := get(t, "GET", ts.URL+"/api/secure.json", http.Header{"X-Forwarded-Client-Cert": {"URI=" + frontendURI}})
		if a.status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", a.status)
		}
		for _, k := range []string{hopfacts.HeaderTokenIssuer, hopfacts.HeaderTokenSubject, hopfacts.HeaderClientCertURI} {
			if v := a.header.Get(k); v != "" {
				t.Errorf("%s: %q on a refusal, want none", k, v)
			}
		}
	})
}
