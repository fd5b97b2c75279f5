package authn

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Authenticate checks the tokens of r. A request without any token passes
// with an empty RequestPrincipal (Istio's allow_missing); every token found
// must verify, or the request is refused with Envoy's answer. r is not
// modified: call Result.Apply on the request sent upstream.
func (a *Authenticator) Authenticate(r *http.Request) (Result, *Failure) {
	res := Result{sanitize: a.sanitize}
	if len(a.providers) == 0 || isCORSPreflight(r) {
		return res, nil
	}
	tokens := extract(a.locations, r)
	if len(tokens) == 0 {
		return res, nil
	}
	now := a.now().Unix()
	for i, f := range tokens {
		v, st := a.verify(r.Context(), f, now)
		if st != statusOK {
			return Result{}, a.failure(r, st)
		}
		if i == 0 {
			// Istio leaves the principal of a request with several tokens
			// undefined; the first one found (Envoy's order) is used.
			res.RequestPrincipal, res.Claims = v.principal, v.claims
		}
		res.setHeaders = append(res.setHeaders, v.headers...)
		if !v.provider.forward {
			switch f.loc.kind {
			case inHeader:
				res.removeHeaders = append(res.removeHeaders, f.loc.name)
			case inParam:
				res.removeParams = append(res.removeParams, f.loc.name)
			}
		}
	}
	return res, nil
}

// verify is AuthenticatorImpl::startVerify for one token, in Envoy's order:
// parse, issuer allowed at this location, provider by issuer, time, audience,
// then the signature (from the cache when this token verified before).
func (a *Authenticator) verify(ctx context.Context, f found, now int64) (*verified, status) {
	if v, ok := a.cache.Get(f.token, time.Unix(now, 0)); ok && a.stillTrusted(ctx, v) {
		if !f.loc.issuers[v.jwt.iss] {
			return nil, statusUnknownIssuer
		}
		if st := v.jwt.checkTime(now); st != statusOK {
			if st == statusExpired {
				a.cache.Remove(f.token)
			}
			return nil, st
		}
		if !v.provider.audienceAllowed(v.jwt.audiences) {
			return nil, statusAudienceNotAllowed
		}
		return v, statusOK
	}

	j, st := parseJWT(f.token)
	if st != statusOK {
		return nil, st
	}
	if !f.loc.issuers[j.iss] {
		return nil, statusUnknownIssuer
	}
	p := a.providerFor(j.iss)
	if p == nil {
		return nil, statusUnknownIssuer
	}
	if st := j.checkTime(now); st != statusOK {
		return nil, st
	}
	if !p.audienceAllowed(j.audiences) {
		return nil, statusAudienceNotAllowed
	}
	set := p.keys.keys(ctx)
	if set == nil {
		// Never fetched. istiod (default JWKS fetch mode) then gives Envoy a
		// public key whose private half was discarded (pilot/pkg/model
		// jwks_resolver.go PublicOnlyJwks): every token fails verification.
		return nil, statusVerificationFail
	}
	key, st := verifySignature(j, set)
	if st == statusKidAlgMismatch && j.kid != "" && !set.hasKid(j.kid) {
		// The issuer may have rotated to a key we have not seen yet.
		if fresh := p.keys.refreshForKid(ctx); fresh != nil && fresh != set {
			key, st = verifySignature(j, fresh)
		}
	}
	if st != statusOK {
		return nil, st
	}
	v := p.verified(j, key)
	a.cache.Put(v.token, v, time.Time{})
	return v, statusOK
}

// stillTrusted reports whether the key that verified a cached token is still
// in its issuer's current JWKS, so that a key the issuer withdraws stops
// working at the next JWKS refresh, as it does in Envoy (which Istio runs
// without a token cache). Otherwise the token is verified again.
func (a *Authenticator) stillTrusted(ctx context.Context, v *verified) bool {
	set := v.provider.keys.keys(ctx)
	if set == nil || !set.has(v.key) {
		a.cache.Remove(v.token)
		return false
	}
	return true
}

// providerFor is JwksCache::findByIssuer: the first rule with this issuer.
func (a *Authenticator) providerFor(iss string) *provider {
	for _, p := range a.providers {
		if p.issuer == iss {
			return p
		}
	}
	return nil
}

// verified derives what a verified token contributes to requests.
func (p *provider) verified(j *jwt, key *publicKey) *verified {
	v := &verified{token: j.raw, provider: p, jwt: j, key: key, principal: j.iss + "/" + j.sub}
	if p.payloadHeader != "" {
		// The payload segment as it came, unpadded base64url: istiod leaves
		// pad_forward_payload_header false.
		v.headers = append(v.headers, [2]string{p.payloadHeader, j.payloadB64})
	}
	for _, ch := range p.claimHeaders {
		if s, ok := claimHeaderValue(j.claims, ch.claim); ok {
			v.headers = append(v.headers, [2]string{ch.header, s})
		}
	}
	v.claims = normalizeClaims(j.claims, p.spaceDelimited)
	return v
}

// claimHeaderValue is authenticator.cc addJWTClaimToHeader: the claim at a
// dot-separated path, if it is a string, number or bool and not empty.
// Values that are not valid in a header (control characters) are dropped
// rather than forwarded.
func claimHeaderValue(claims map[string]any, path string) (string, bool) {
	v, ok := lookupPath(claims, path)
	if !ok {
		return "", false
	}
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case json.Number:
		s = formatNumber(t)
	case bool:
		s = strconv.FormatBool(t)
	default:
		return "", false
	}
	if s == "" || !httpguts.ValidHeaderFieldValue(s) {
		return "", false
	}
	return s, true
}

func lookupPath(claims map[string]any, path string) (any, bool) {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// formatNumber is convertClaimDoubleToString: whole numbers in uint64 range
// print as integers, anything else as C++ std::to_string(double) ("%f").
func formatNumber(n json.Number) string {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return ""
	}
	if f >= 0 && f < math.Pow(2, 64) && f == math.Trunc(f) {
		return strconv.FormatUint(uint64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 6, 64)
}

// normalizeClaims is Envoy's normalize_payload_in_metadata: each listed claim
// holding a string becomes the list of its space-separated words, so
// authorization can match one scope among several. The input is not changed.
func normalizeClaims(claims map[string]any, spaceDelimited []string) map[string]any {
	out := claims
	copied := false
	for _, name := range spaceDelimited {
		s, ok := claims[name].(string)
		if !ok {
			continue
		}
		if !copied {
			out = make(map[string]any, len(claims))
			for k, v := range claims {
				out[k] = v
			}
			copied = true
		}
		words := strings.Fields(s)
		list := make([]any, len(words))
		for i, w := range words {
			list[i] = w
		}
		out[name] = list
	}
	return out
}

// failure builds Envoy's local reply (filter.cc Filter::onComplete).
func (a *Authenticator) failure(r *http.Request, st status) *Failure {
	code := http.StatusUnauthorized
	if st == statusAudienceNotAllowed {
		code = http.StatusForbidden
	}
	return &Failure{
		Status:          code,
		Body:            string(st),
		WWWAuthenticate: `Bearer realm="` + originalURI(r) + `", error="invalid_token"`,
		Reason:          "jwt_authn_access_denied{" + strings.ReplaceAll(string(st), " ", "_") + "}",
	}
}

// originalURI is Http::Utility::buildOriginalUri with filter.cc's 256-byte
// path limit: scheme, host and path (with query) as the client sent them.
func originalURI(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	path := ""
	if r.URL != nil {
		// Not r.RequestURI: a client may send the absolute form.
		path = r.URL.RequestURI()
	}
	if len(path) > maxRealmPathLength {
		path = path[:maxRealmPathLength]
	}
	return scheme + "://" + r.Host + path
}
