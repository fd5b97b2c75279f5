package authn

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// Sources cited by the conformance rows below:
//
//	[status.cc]  envoyproxy/envoy source/common/jwt/status.cc (401 bodies)
//	[jwt.cc]     envoyproxy/envoy source/common/jwt/jwt.cc (parse order, verifyTimeConstraint, 60 s skew)
//	[verify.cc]  envoyproxy/envoy source/common/jwt/verify.cc (kid/alg matching)
//	[auth.cc]    envoyproxy/envoy source/extensions/filters/http/jwt_authn/authenticator.cc
//	[extract.cc] envoyproxy/envoy source/extensions/filters/http/jwt_authn/extractor.cc
//	[headers]    envoyproxy/envoy source/common/http/header_map_impl.cc insertByKey (inline headers joined)
//	[filter.cc]  envoyproxy/envoy source/extensions/filters/http/jwt_authn/filter.cc (status code, www-authenticate)
//	[applier]    istio/istio pilot/pkg/security/authn/policy_applier.go (provider OR allow_missing)
//	[ra-docs]    https://istio.io/latest/docs/reference/config/security/request_authentication/
func TestAuthenticateConformance(t *testing.T) {
	testKeys(t)
	c := newClock()
	now := c.Now()
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{
		"key-1": &rsaKey1.PublicKey, "ec-1": &ecKey.PublicKey,
	}, true))
	a := newAuthenticator(t, []*securityv1beta1.JWTRule{identityRule(googleJWKS)}, c,
		map[string]string{googleJWKS: srv.URL})

	good := signJWS(t, rsaKey1, jwa.RS256(), "key-1", claimsAt(now))
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hdr := func(kv ...any) map[string]any { return with(map[string]any{"alg": "RS256", "kid": "key-1"}, kv...) }

	tests := []struct {
		name, source string
		req          *http.Request
		wantStatus   int // 0: passes
		wantBody     string
		wantSub      string
	}{
		{name: "a request without a token passes with no principal", source: "[applier] allow_missing; [ra-docs]",
			req: httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/healthz", nil)},
		{name: "a valid RS256 token in Authorization: Bearer passes", source: "[extract.cc] default header",
			req: bearer(good), wantSub: "user-1"},
		{name: "a valid ES256 token passes", source: "[verify.cc] EC keys",
			req: bearer(signJWS(t, ecKey, jwa.ES256(), "ec-1", claimsAt(now))), wantSub: "user-1"},
		{name: "a valid token in the access_token query parameter passes", source: "[extract.cc] default param",
			req: httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json?access_token="+good, nil), wantSub: "user-1"},
		{name: "an Authorization header without the Bearer prefix carries no token", source: "[extract.cc] prefix not found: skip",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json", nil)
				r.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
				return r
			}()},
		{name: "a token expired more than 60 s ago is refused", source: "[jwt.cc] verifyTimeConstraint; [status.cc] JwtExpired",
			req:        bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "exp", now.Add(-61*time.Second).Unix()))),
			wantStatus: 401, wantBody: "Jwt is expired"},
		{name: "a token expired 59 s ago is still inside the clock skew", source: "[jwt.cc] kClockSkewInSecond = 60",
			req: bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "exp", now.Add(-59*time.Second).Unix()))), wantSub: "user-1"},
		{name: "a token expired exactly 60 s ago is still valid", source: "[jwt.cc] expired only when now > exp + skew",
			req: bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "exp", now.Add(-60*time.Second).Unix()))), wantSub: "user-1"},
		{name: "a token whose nbf is exactly 60 s ahead is valid", source: "[jwt.cc] not yet valid only when now + skew < nbf",
			req: bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "nbf", now.Add(60*time.Second).Unix()))), wantSub: "user-1"},
		{name: "a token whose nbf is more than 60 s ahead is not yet valid", source: "[jwt.cc]; [status.cc] JwtNotYetValid",
			req:        bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "nbf", now.Add(61*time.Second).Unix()))),
			wantStatus: 401, wantBody: "Jwt not yet valid"},
		{name: "a token whose nbf is 59 s ahead is inside the clock skew", source: "[jwt.cc]",
			req: bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "nbf", now.Add(59*time.Second).Unix()))), wantSub: "user-1"},
		{name: "a token with iat in the future passes, as Envoy does not check iat", source: "[jwt.cc] iat parsed, never compared",
			req: bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "iat", now.Add(time.Hour).Unix()))), wantSub: "user-1"},
		{name: "a token from another issuer is refused", source: "[auth.cc] isIssuerAllowed; [status.cc] JwtUnknownIssuer",
			req:        bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "iss", "https://evil.example"))),
			wantStatus: 401, wantBody: "Jwt issuer is not configured"},
		{name: "a token for another audience is forbidden", source: "[filter.cc] JwtAudienceNotAllowed is 403",
			req:        bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "aud", "other-project"))),
			wantStatus: 403, wantBody: "Audiences in Jwt are not allowed"},
		{name: "an audience list containing ours passes", source: "[ra-docs] audiences: any of them",
			req: bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "aud", []string{"x", testProject}))), wantSub: "user-1"},
		{name: "an audience differing only by scheme and trailing slash passes", source: "jwt_verify_lib check_audience.cc sanitizeAudience",
			req: bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "aud", "https://"+testProject+"/"))), wantSub: "user-1"},
		{name: "a token without aud is refused when audiences are configured", source: "[auth.cc] areAudiencesAllowed",
			req:        bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(now), "aud", nil))),
			wantStatus: 403, wantBody: "Audiences in Jwt are not allowed"},
		{name: "a token that is not three sections is refused", source: "[status.cc] JwtBadFormat",
			req: bearer("not-a-jwt"), wantStatus: 401, wantBody: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{name: "a token with four sections is refused", source: "[jwt.cc] exactly 3 sections",
			req: bearer(good + ".extra"), wantStatus: 401, wantBody: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{name: "a token with an empty signature is refused", source: "[jwt.cc] SkipEmpty split",
			req: bearer(seg(t, hdr()) + "." + seg(t, claimsAt(now)) + "."), wantStatus: 401, wantBody: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{name: "a header that is not base64url is refused", source: "[status.cc] JwtHeaderParseErrorBadBase64",
			req: bearer("e$$$.e30.c2ln"), wantStatus: 401, wantBody: "Jwt header is an invalid Base64url encoded"},
		{name: "a header that is not JSON is refused", source: "[status.cc] JwtHeaderParseErrorBadJson",
			req: bearer(base64.RawURLEncoding.EncodeToString([]byte("{nope")) + ".e30.c2ln"), wantStatus: 401, wantBody: "Jwt header is an invalid JSON"},
		{name: "a header with bytes after its JSON object is refused", source: "[status.cc] JwtHeaderParseErrorBadJson",
			req: bearer(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256"}]`)) + ".e30.c2ln"), wantStatus: 401, wantBody: "Jwt header is an invalid JSON"},
		{name: "a header without alg is refused", source: "[status.cc] JwtHeaderBadAlg",
			req: bearer(seg(t, map[string]any{"kid": "key-1"}) + ".e30.c2ln"), wantStatus: 401, wantBody: "Jwt header [alg] field is required and must be a string"},
		{name: "alg none is refused", source: "[jwt.cc] isImplemented; [status.cc] JwtHeaderNotImplementedAlg",
			req: bearer(seg(t, map[string]any{"alg": "none"}) + "." + seg(t, claimsAt(now)) + ".c2ln"), wantStatus: 401, wantBody: "Jwt header [alg] is not supported"},
		{name: "a numeric kid is refused", source: "[status.cc] JwtHeaderBadKid",
			req: bearer(seg(t, hdr("kid", 7)) + ".e30.c2ln"), wantStatus: 401, wantBody: "Jwt header [kid] field is not a string"},
		{name: "a payload that is not JSON is refused", source: "[status.cc] JwtPayloadParseErrorBadJson",
			req: bearer(seg(t, hdr()) + "." + base64.RawURLEncoding.EncodeToString([]byte("[1,2]")) + ".c2ln"), wantStatus: 401, wantBody: "Jwt payload is an invalid JSON"},
		{name: "a numeric iss is refused", source: "[status.cc] JwtPayloadParseErrorIssNotString",
			req: bearer(seg(t, hdr()) + "." + seg(t, with(claimsAt(now), "iss", 1)) + ".c2ln"), wantStatus: 401, wantBody: "Jwt payload [iss] field is not a string"},
		{name: "a string exp is refused", source: "[status.cc] JwtPayloadParseErrorExpNotInteger",
			req: bearer(seg(t, hdr()) + "." + seg(t, with(claimsAt(now), "exp", "tomorrow")) + ".c2ln"), wantStatus: 401, wantBody: "Jwt payload [exp] field is not an integer"},
		{name: "a negative nbf is refused", source: "[status.cc] JwtPayloadParseErrorNbfOutOfRange",
			req: bearer(seg(t, hdr()) + "." + seg(t, with(claimsAt(now), "nbf", -1)) + ".c2ln"), wantStatus: 401, wantBody: "Jwt payload [nbf] field is not a positive 64 bit integer"},
		{name: "a numeric aud is refused", source: "[status.cc] JwtPayloadParseErrorAudNotString",
			req: bearer(seg(t, hdr()) + "." + seg(t, with(claimsAt(now), "aud", 5)) + ".c2ln"), wantStatus: 401, wantBody: "Jwt payload [aud] field is not a string or string list"},
		{name: "a signature that is not base64url is refused", source: "[status.cc] JwtSignatureParseErrorBadBase64",
			req: bearer(seg(t, hdr()) + "." + seg(t, claimsAt(now)) + ".$$$"), wantStatus: 401, wantBody: "Jwt signature is an invalid Base64url encoded"},
		{name: "a tampered payload fails verification", source: "[status.cc] JwtVerificationFail",
			req:        bearer(strings.Split(good, ".")[0] + "." + seg(t, with(claimsAt(now), "sub", "admin")) + "." + strings.Split(good, ".")[2]),
			wantStatus: 401, wantBody: "Jwt verification fails"},
		{name: "a token signed by a key the JWKS lacks, with its kid, fails verification", source: "[verify.cc] kid matched, signature not",
			req: bearer(signJWS(t, rsaKey2, jwa.RS256(), "key-1", claimsAt(now))), wantStatus: 401, wantBody: "Jwt verification fails"},
		{name: "a token naming an unknown kid is refused", source: "[verify.cc] JwksKidAlgMismatch",
			req: bearer(signJWS(t, rsaKey2, jwa.RS256(), "key-unknown", claimsAt(now))), wantStatus: 401, wantBody: "Jwks doesn't have key to match kid or alg from Jwt"},
		{name: "HS256 keyed with the issuer's public key is refused", source: "[verify.cc] alg must match the JWK's alg",
			req:        bearer(signHMAC(t, pubPEM, map[string]any{"alg": "HS256", "kid": "key-1"}, claimsAt(now))),
			wantStatus: 401, wantBody: "Jwks doesn't have key to match kid or alg from Jwt"},
		{name: "a kid with path and SQL tricks matches no key", source: "[verify.cc] kid compared as an opaque string",
			req:        bearer(signRaw(t, rsaKey1, hdr("kid", "../../etc/passwd' OR '1'='1"), claimsAt(now))),
			wantStatus: 401, wantBody: "Jwks doesn't have key to match kid or alg from Jwt"},
		{name: "a crit header is refused even with a valid signature", source: "RFC 7515 §4.1.11; stricter than Envoy",
			req: bearer(signRaw(t, rsaKey1, hdr("crit", []string{"exp"}), claimsAt(now))), wantStatus: 401, wantBody: "Jwt verification fails"},
		{name: "a valid token with a jku header is accepted on the JWKS's key alone", source: "[verify.cc] keys only from the configured JWKS",
			req: bearer(signRaw(t, rsaKey1, hdr("jku", "https://evil.example/jwks", "x5u", "https://evil.example/cert"), claimsAt(now))), wantSub: "user-1"},
		{name: "a jku header cannot bring the attacker's key", source: "[verify.cc] keys only from the configured JWKS",
			req: bearer(signRaw(t, rsaKey2, hdr("jku", "https://evil.example/jwks"), claimsAt(now))), wantStatus: 401, wantBody: "Jwt verification fails"},
		{name: "a good token in the header with a bad one in the query is refused", source: "[auth.cc] all tokens must be valid",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json?access_token=garbage", nil)
				r.Header.Set("Authorization", "Bearer "+good)
				return r
			}(), wantStatus: 401, wantBody: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{name: "a payload nested 20,000 levels deep is refused as invalid JSON", source: "[status.cc] JwtPayloadParseErrorBadJson; hostile input",
			req:        bearer(seg(t, hdr()) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"a":`+strings.Repeat("[", 20000)+strings.Repeat("]", 20000)+`}`)) + ".c2ln"),
			wantStatus: 401, wantBody: "Jwt payload is an invalid JSON"},
		{name: "a 60 KB token of filler is refused", source: "[status.cc] JwtHeaderParseErrorBadJson; hostile input",
			req:        bearer(strings.Repeat("A", 20000) + "." + strings.Repeat("B", 20000) + "." + strings.Repeat("C", 20000)),
			wantStatus: 401, wantBody: "Jwt header is an invalid JSON"},
		{name: "a 10 KB kid matches no key", source: "[verify.cc] JwksKidAlgMismatch; hostile input",
			req:        bearer(signRaw(t, rsaKey1, hdr("kid", strings.Repeat("k", 10000)), claimsAt(now))),
			wantStatus: 401, wantBody: "Jwks doesn't have key to match kid or alg from Jwt"},
		{name: "the same valid token in the header and the query passes", source: "[auth.cc] every token verified",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json?access_token="+good, nil)
				r.Header.Set("Authorization", "Bearer "+good)
				return r
			}(), wantSub: "user-1"},
		{name: "two Authorization headers are one joined value whose token is malformed", source: "[headers] repeated inline headers joined with ','; [extract.cc] the rest after the prefix",
			req: withAuthorization("Bearer "+good, "Bearer "+good), wantStatus: 401, wantBody: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{name: "a Basic header then a Bearer header is the Bearer token, found inside the joined value", source: "[headers]; [extract.cc] the prefix found anywhere",
			req: withAuthorization("Basic dXNlcjpwYXNz", "Bearer "+good), wantSub: "user-1"},
		{name: "a lowercase bearer header then a Bearer header is the second one's token", source: "[headers]; [extract.cc] the prefix is matched case-sensitively",
			req: withAuthorization("bearer not-a-jwt", "Bearer "+good), wantSub: "user-1"},
		{name: "two Bearer tokens joined by a comma in one header are malformed", source: "[extract.cc] the rest after the prefix",
			req: withAuthorization("Bearer " + good + ", Bearer " + good), wantStatus: 401, wantBody: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{name: "a lowercase bearer prefix carries no token", source: "[extract.cc] the prefix is matched case-sensitively",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json", nil)
				r.Header.Set("Authorization", "bearer "+good)
				return r
			}()},
		{name: "a CORS preflight skips JWT checks", source: "[filter.cc] isCorsPreflightRequest; [applier] BypassCorsPreflight",
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodOptions, "https://api.internal.example/api/secure.json", nil)
				r.Header.Set("Authorization", "Bearer garbage")
				r.Header.Set("Origin", "https://frontend.example")
				r.Header.Set("Access-Control-Request-Method", "GET")
				return r
			}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, fail := a.Authenticate(tt.req)
			if tt.wantStatus == 0 {
				if fail != nil {
					t.Fatalf("%s: want the request to pass, got %d %q", tt.source, fail.Status, fail.Body)
				}
				wantPrincipal := ""
				if tt.wantSub != "" {
					wantPrincipal = testIssuer + "/" + tt.wantSub
				}
				if res.RequestPrincipal != wantPrincipal {
					t.Errorf("%s: RequestPrincipal = %q, want %q", tt.source, res.RequestPrincipal, wantPrincipal)
				}
				return
			}
			if fail == nil {
				t.Fatalf("%s: want %d %q, the request passed as %q", tt.source, tt.wantStatus, tt.wantBody, res.RequestPrincipal)
			}
			if fail.Status != tt.wantStatus || fail.Body != tt.wantBody {
				t.Errorf("%s: got %d %q, want %d %q", tt.source, fail.Status, fail.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestFailureCarriesEnvoysHeaders(t *testing.T) {
	testKeys(t)
	c := newClock()
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true))
	a := newAuthenticator(t, []*securityv1beta1.JWTRule{identityRule(srv.URL)}, c, nil)

	r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json?x=1", nil)
	r.Header.Set("Authorization", "Bearer "+signJWS(t, rsaKey1, jwa.RS256(), "key-1",
		with(claimsAt(c.Now()), "exp", c.Now().Add(-time.Hour).Unix())))
	_, fail := a.Authenticate(r)
	if fail == nil {
		t.Fatal("want an expired token refused, it passed")
	}
	// filter.cc: realm is the original URI, error="invalid_token" for anything but a missing token.
	want := `Bearer realm="https://api.internal.example/api/secure.json?x=1", error="invalid_token"`
	if fail.WWWAuthenticate != want {
		t.Errorf("WWWAuthenticate = %q, want %q", fail.WWWAuthenticate, want)
	}
	// filter.cc generateRcDetails: spaces become underscores.
	if want := "jwt_authn_access_denied{Jwt_is_expired}"; fail.Reason != want {
		t.Errorf("Reason = %q, want %q", fail.Reason, want)
	}

	long := httptest.NewRequest(http.MethodGet, "https://api.internal.example/"+strings.Repeat("a", 400), nil)
	long.Header.Set("Authorization", "Bearer x.y.z")
	_, fail = a.Authenticate(long)
	if fail == nil {
		t.Fatal("want a garbage token refused, it passed")
	}
	// filter.cc MaximumUriLength: the path in the realm is cut at 256 bytes.
	wantRealm := `Bearer realm="https://api.internal.example/` + strings.Repeat("a", 255) + `", error="invalid_token"`
	if fail.WWWAuthenticate != wantRealm {
		t.Errorf("WWWAuthenticate for a long path = %q, want %q", fail.WWWAuthenticate, wantRealm)
	}
}

func TestApplyRewritesTheUpstreamRequest(t *testing.T) {
	testKeys(t)
	c := newClock()
	now := c.Now()
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true))
	claims := with(claimsAt(now), "n", 42, "f", 1.5, "ok", true, "nested", map[string]any{"group": "admins"}, "list", []string{"a"},
		"evil", "x\r\nX-Injected: 1")
	tok := signJWS(t, rsaKey1, jwa.RS256(), "key-1", claims)

	rule := func(forward bool) *securityv1beta1.JWTRule {
		r := identityRule(srv.URL)
		r.ForwardOriginalToken = forward
		r.OutputPayloadToHeader = "x-jwt-payload"
		r.OutputClaimToHeaders = []*securityv1beta1.ClaimToHeader{
			{Header: "x-jwt-claim-sub", Claim: "sub"},
			{Header: "x-jwt-n", Claim: "n"},
			{Header: "x-jwt-f", Claim: "f"},
			{Header: "x-jwt-ok", Claim: "ok"},
			{Header: "x-jwt-group", Claim: "nested.group"},
			{Header: "x-jwt-list", Claim: "list"},
			{Header: "x-jwt-missing", Claim: "missing"},
			{Header: "x-jwt-evil", Claim: "evil"},
		}
		return r
	}
	// Envoy's claim_to_headers formatting (authenticator.cc addJWTClaimToHeader).
	wantSet := map[string]string{
		"X-Jwt-Claim-Sub": "user-1",
		"X-Jwt-N":         "42",
		"X-Jwt-F":         "1.500000",
		"X-Jwt-Ok":        "true",
		"X-Jwt-Group":     "admins",
		"X-Jwt-Payload":   strings.Split(tok, ".")[1],
	}
	wantAbsent := []string{"X-Jwt-List", "X-Jwt-Missing", "X-Jwt-Evil", "X-Injected"}

	spoofed := func(r *http.Request) {
		for _, h := range []string{"x-jwt-claim-sub", "x-jwt-payload", "x-jwt-list", "x-jwt-missing"} {
			r.Header.Add(h, "spoofed")
		}
	}

	tests := []struct {
		name          string
		forward       bool
		inQuery       bool
		wantAuthz     bool
		wantRawQuery  string
		noTokenAtAll  bool
		wantNoOutputs bool
	}{
		{name: "forwardOriginalToken true keeps the Authorization header", forward: true, wantAuthz: true},
		{name: "forwardOriginalToken false removes the Authorization header", forward: false, wantAuthz: false},
		{name: "forwardOriginalToken false removes the access_token parameter and keeps the rest", forward: false, inQuery: true, wantRawQuery: "a=1&b=2"},
		{name: "a request without a token still loses the client's copies of output headers", forward: true, noTokenAtAll: true, wantNoOutputs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuthenticator(t, []*securityv1beta1.JWTRule{rule(tt.forward)}, c, nil)
			var in *http.Request
			switch {
			case tt.noTokenAtAll:
				in = httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json", nil)
			case tt.inQuery:
				in = httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json?a=1&access_token="+tok+"&b=2", nil)
			default:
				in = bearer(tok)
			}
			spoofed(in)
			res, fail := a.Authenticate(in)
			if fail != nil {
				t.Fatalf("want the token accepted, got %d %q", fail.Status, fail.Body)
			}
			out := in.Clone(in.Context())
			res.Apply(out)
			// ApplyHeader makes the same header changes, for what RBAC sees.
			seen := in.Header.Clone()
			res.ApplyHeader(seen)
			if !reflect.DeepEqual(seen, out.Header) {
				t.Errorf("ApplyHeader gave %v, Apply gave %v; want the same headers", seen, out.Header)
			}

			if tt.wantNoOutputs {
				for _, h := range []string{"X-Jwt-Claim-Sub", "X-Jwt-Payload", "X-Jwt-List", "X-Jwt-Missing"} {
					if v := out.Header.Values(h); len(v) != 0 {
						t.Errorf("%s = %q, want the client's copy removed", h, v)
					}
				}
				return
			}
			for h, want := range wantSet {
				if got := out.Header.Values(h); len(got) != 1 || got[0] != want {
					t.Errorf("%s = %q, want exactly [%q]", h, got, want)
				}
			}
			for _, h := range wantAbsent {
				if got := out.Header.Values(h); len(got) != 0 {
					t.Errorf("%s = %q, want it absent", h, got)
				}
			}
			if got := out.Header.Get("Authorization") != ""; got != tt.wantAuthz && !tt.inQuery {
				t.Errorf("Authorization present = %v, want %v", got, tt.wantAuthz)
			}
			if tt.inQuery && out.URL.RawQuery != tt.wantRawQuery {
				t.Errorf("RawQuery = %q, want %q", out.URL.RawQuery, tt.wantRawQuery)
			}
		})
	}
}

func TestTokenLocationsFromTheRule(t *testing.T) {
	testKeys(t)
	c := newClock()
	now := c.Now()
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true))
	rule := identityRule(srv.URL)
	rule.FromHeaders = []*securityv1beta1.JWTHeader{{Name: "x-jwt-assertion", Prefix: "Token "}}
	rule.FromParams = []string{"my_token"}
	rule.FromCookies = []string{"session"}
	a := newAuthenticator(t, []*securityv1beta1.JWTRule{rule}, c, nil)
	good := signJWS(t, rsaKey1, jwa.RS256(), "key-1", claimsAt(now))

	req := func(mutate func(r *http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json", nil)
		mutate(r)
		return r
	}
	tests := []struct {
		name     string
		req      *http.Request
		wantPass bool
		wantSub  bool
	}{
		{name: "a token in the configured header with its prefix is used",
			req: req(func(r *http.Request) { r.Header.Set("X-Jwt-Assertion", "Token "+good) }), wantPass: true, wantSub: true},
		{name: "a token in the configured query parameter is used",
			req: req(func(r *http.Request) { r.URL.RawQuery = "my_token=" + good }), wantPass: true, wantSub: true},
		{name: "a token in the configured cookie is used",
			req: req(func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session", Value: good}) }), wantPass: true, wantSub: true},
		{name: "a bad token in the configured cookie is refused",
			req: req(func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session", Value: "x.y.z"}) })},
		{name: "the default Authorization header is not used once locations are configured",
			req: req(func(r *http.Request) { r.Header.Set("Authorization", "Bearer garbage") }), wantPass: true},
		{name: "the default access_token parameter is not used once locations are configured",
			req: req(func(r *http.Request) { r.URL.RawQuery = "access_token=garbage" }), wantPass: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, fail := a.Authenticate(tt.req)
			if (fail == nil) != tt.wantPass {
				t.Fatalf("passed = %v (failure %+v), want %v", fail == nil, fail, tt.wantPass)
			}
			if tt.wantSub && res.RequestPrincipal != testIssuer+"/user-1" {
				t.Errorf("RequestPrincipal = %q, want %q", res.RequestPrincipal, testIssuer+"/user-1")
			}
		})
	}
}

func TestIssuerIsCheckedPerLocation(t *testing.T) {
	testKeys(t)
	c := newClock()
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true))
	other := &securityv1beta1.JWTRule{Issuer: "https://other.example", JwksUri: srv.URL,
		FromHeaders: []*securityv1beta1.JWTHeader{{Name: "x-other-token"}}}
	a := newAuthenticator(t, []*securityv1beta1.JWTRule{identityRule(srv.URL), other}, c, nil)

	// A token of the first issuer, valid in every other respect, sent where
	// only the second issuer's tokens are expected (extractor.cc JwtIssuerChecker).
	r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json", nil)
	r.Header.Set("X-Other-Token", signJWS(t, rsaKey1, jwa.RS256(), "key-1", claimsAt(c.Now())))
	_, fail := a.Authenticate(r)
	if fail == nil || fail.Body != "Jwt issuer is not configured" {
		t.Fatalf("got %+v, want 401 %q", fail, "Jwt issuer is not configured")
	}

	r = httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json", nil)
	r.Header.Set("X-Other-Token", signJWS(t, rsaKey1, jwa.RS256(), "key-1", with(claimsAt(c.Now()), "iss", "https://other.example", "aud", "anything")))
	res, fail := a.Authenticate(r)
	if fail != nil {
		t.Fatalf("want the second issuer's token accepted in its header, got %d %q", fail.Status, fail.Body)
	}
	if want := "https://other.example/user-1"; res.RequestPrincipal != want {
		t.Errorf("RequestPrincipal = %q, want %q", res.RequestPrincipal, want)
	}
}

func TestSpaceDelimitedClaimsBecomeLists(t *testing.T) {
	testKeys(t)
	c := newClock()
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, true))
	rule := identityRule(srv.URL)
	rule.SpaceDelimitedClaims = []string{"roles"}
	a := newAuthenticator(t, []*securityv1beta1.JWTRule{rule}, c, nil)

	res, fail := a.Authenticate(bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1",
		with(claimsAt(c.Now()), "scope", "read write", "roles", "admin  dev", "name", "Ada Lovelace"))))
	if fail != nil {
		t.Fatalf("want the token accepted, got %d %q", fail.Status, fail.Body)
	}
	// Istio's policy_applier.go always adds scope and permission (buildSpaceDelimitedClaims).
	for claim, want := range map[string][]any{"scope": {"read", "write"}, "roles": {"admin", "dev"}} {
		got, ok := res.Claims[claim].([]any)
		if !ok || len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("Claims[%q] = %#v, want %#v", claim, res.Claims[claim], want)
		}
	}
	if got := res.Claims["name"]; got != "Ada Lovelace" {
		t.Errorf("Claims[name] = %#v, want the string left alone", got)
	}
}

func TestNewRejectsWhatItCannotHonour(t *testing.T) {
	ok := func() *securityv1beta1.JWTRule { return identityRule("https://example.com/jwks") }
	tests := []struct {
		name    string
		rule    func() *securityv1beta1.JWTRule
		opts    func(*Options)
		wantErr string
	}{
		{name: "a rule without an issuer", rule: func() *securityv1beta1.JWTRule { r := ok(); r.Issuer = ""; return r },
			wantErr: "jwtRules[0]: issuer is required"},
		{name: "a rule with both jwks and jwksUri", rule: func() *securityv1beta1.JWTRule { r := ok(); r.Jwks = `{"keys":[]}`; return r },
			wantErr: "only one of jwks or jwksUri"},
		{name: "a rule with neither jwks nor jwksUri", rule: func() *securityv1beta1.JWTRule { r := ok(); r.JwksUri = ""; return r },
			wantErr: "jwksUri or jwks is required"},
		{name: "a jwksUri that is not http(s)", rule: func() *securityv1beta1.JWTRule { r := ok(); r.JwksUri = "file:///etc/passwd"; return r },
			wantErr: "jwksUri"},
		{name: "an inline jwks without a usable key", rule: func() *securityv1beta1.JWTRule {
			r := ok()
			r.JwksUri, r.Jwks = "", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`
			return r
		}, wantErr: "jwks: Jwks doesn't have any valid public key"},
		{name: "an output claim header with a bad name", rule: func() *securityv1beta1.JWTRule {
			r := ok()
			r.OutputClaimToHeaders = []*securityv1beta1.ClaimToHeader{{Header: "bad header", Claim: "sub"}}
			return r
		}, wantErr: "outputClaimToHeaders[0].header"},
		{name: "a repeated output claim header", rule: func() *securityv1beta1.JWTRule {
			r := ok()
			r.OutputClaimToHeaders = append(r.OutputClaimToHeaders, &securityv1beta1.ClaimToHeader{Header: "X-JWT-CLAIM-SUB", Claim: "email"})
			return r
		}, wantErr: "outputClaimToHeaders[2].header \"X-JWT-CLAIM-SUB\" is repeated"},
		{name: "a fromHeaders entry without a name", rule: func() *securityv1beta1.JWTRule {
			r := ok()
			r.FromHeaders = []*securityv1beta1.JWTHeader{{Prefix: "Bearer "}}
			return r
		}, wantErr: "fromHeaders[0].name is required"},
		{name: "an override to a non-URL", rule: ok, opts: func(o *Options) { o.JWKSOverride = map[string]string{"x": "not a url"} },
			wantErr: "Options.JWKSOverride"},
		{name: "missing HTTP client", rule: ok, opts: func(o *Options) { o.HTTPClient = nil }, wantErr: "Options.HTTPClient is required"},
	}
	for _, tt := range tests {
		t.Run("New refuses "+tt.name, func(t *testing.T) {
			opts := Options{HTTPClient: http.DefaultClient, Now: time.Now, Logger: discardLogger()}
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, err := New([]*securityv1beta1.JWTRule{tt.rule()}, opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestInlineJWKS(t *testing.T) {
	testKeys(t)
	c := newClock()
	rule := identityRule("")
	rule.Jwks = string(jwksJSON(t, map[string]crypto.PublicKey{"key-1": &rsaKey1.PublicKey}, false))
	a := newAuthenticator(t, []*securityv1beta1.JWTRule{rule}, c, nil)
	if _, fail := a.Authenticate(bearer(signJWS(t, rsaKey1, jwa.RS256(), "key-1", claimsAt(c.Now())))); fail != nil {
		t.Fatalf("want a token verified by the inline JWKS, got %d %q", fail.Status, fail.Body)
	}
	// Without alg on the JWK, an HS256 token reaches the key and fails
	// verification instead (verify.cc: the alg check only applies when the JWK has one).
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey1.PublicKey)
	_, fail := a.Authenticate(bearer(signHMAC(t, pubDER, map[string]any{"alg": "HS256", "kid": "key-1"}, claimsAt(c.Now()))))
	if fail == nil || fail.Body != "Jwt verification fails" {
		t.Fatalf("got %+v, want 401 %q", fail, "Jwt verification fails")
	}
}

// withAuthorization is a request carrying each value as an Authorization
// header of its own, as a client may send them.
func withAuthorization(values ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://api.internal.example/api/secure.json", nil)
	for _, v := range values {
		r.Header.Add("Authorization", v)
	}
	return r
}
