package authn

// Verified tokens are cached (internal/tokencache, Envoy's per-provider
// jwt_cache in shape), so the same token does not pay an RSA verification on
// every request. Only the signature result is cached: exp, nbf, issuer
// location and audience are checked again on every hit, and the verifying key
// must still be in the issuer's JWKS, so an entry never outlives its token's
// validity or its key; expired entries are dropped when met. Entries
// therefore carry no expiry of their own.
//
// Istio configures Envoy without a jwt_cache; this cache changes the cost of
// a repeated token, never its outcome.

// verified is everything derived from a verified token that does not depend
// on the request, computed once.
type verified struct {
	token     string
	provider  *provider
	jwt       *jwt
	key       *publicKey // the JWKS key that verified it
	principal string
	claims    map[string]any // normalized; shared, never mutated
	headers   [][2]string    // outputPayloadToHeader and outputClaimToHeaders
}
