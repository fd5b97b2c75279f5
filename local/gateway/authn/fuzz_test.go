package authn

import (
	"crypto"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// knownBodies are every status Authenticate may answer with.
var knownBodies = map[string]bool{}

func init() {
	for _, s := range []status{statusBadFormat, statusHeaderBadBase64, statusHeaderBadJSON, statusHeaderBadAlg,
		statusHeaderNotImplemented, statusHeaderBadKid, statusPayloadBadBase64, statusPayloadBadJSON,
		statusIssNotString, statusSubNotString, statusIatNotInteger, statusIatOutOfRange, statusNbfNotInteger,
		statusNbfOutOfRange, statusExpNotInteger, statusExpOutOfRange, statusJtiNotString, statusAudNotString,
		statusSignatureBadBase64, statusNotYetValid, statusExpired, statusUnknownIssuer, statusAudienceNotAllowed,
		statusVerificationFail, statusKidAlgMismatch, statusNoValidKeys} {
		knownBodies[string(s)] = true
	}
}

// FuzzAuthenticate throws arbitrary Authorization headers, query strings and
// cookies at token extraction and parsing. Whatever comes in: no panic, a
// refusal is one of Envoy's statuses with 401 or 403, and a request that
// passes with a principal carries a token whose signature jwx verifies with
// the configured key. The committed corpus (testdata/fuzz/FuzzAuthenticate)
// holds the hostile shapes; valid tokens are added here, signed at run time.
func FuzzAuthenticate(f *testing.F) {
	testKeys(f)
	c := newClock()
	rule := identityRule("")
	rule.Jwks = string(jwksJSON(f, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true))
	rule.FromHeaders = []*securityv1beta1.JWTHeader{{Name: "Authorization", Prefix: "Bearer "}}
	rule.FromParams = []string{"access_token"}
	rule.FromCookies = []string{"session"}
	a := newAuthenticator(f, []*securityv1beta1.JWTRule{rule}, c, nil)

	good := signJWS(f, rsaKey1, jwa.RS256(), "key-1", claimsAt(c.Now()))
	f.Add("Bearer "+good, "", "")
	f.Add("", "access_token="+good, "")
	f.Add("", "", "session="+good)
	f.Add("Bearer "+good, "access_token="+good, "session="+good)
	f.Add("Bearer "+strings.Replace(good, ".", "..", 1), "", "")

	f.Fuzz(func(t *testing.T, authorization, rawQuery, cookie string) {
		r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json", nil)
		r.URL.RawQuery = rawQuery
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		res, fail := a.Authenticate(r)
		if fail != nil {
			if !knownBodies[fail.Body] || (fail.Status != 401 && fail.Status != 403) {
				t.Fatalf("refusal %d %q is not one of Envoy's answers", fail.Status, fail.Body)
			}
			if !strings.HasPrefix(fail.WWWAuthenticate, `Bearer realm="`) {
				t.Fatalf("WWWAuthenticate = %q, want Envoy's Bearer realm", fail.WWWAuthenticate)
			}
			return
		}
		for _, fd := range extract(a.locations, r) {
			if _, err := jws.Verify([]byte(fd.token), jws.WithKey(jwa.RS256(), &rsaKey1.PublicKey)); err != nil {
				t.Fatalf("request passed as %q with a token jwx does not verify: %v", res.RequestPrincipal, err)
			}
		}
	})
}
