package authn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// status is a jwt_verify_lib status, spelled exactly as Envoy sends it in a
// 401 body (envoyproxy/envoy source/common/jwt/status.cc getStatusString).
type status string

const (
	statusOK                   status = ""
	statusBadFormat            status = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
	statusHeaderBadBase64      status = "Jwt header is an invalid Base64url encoded"
	statusHeaderBadJSON        status = "Jwt header is an invalid JSON"
	statusHeaderBadAlg         status = "Jwt header [alg] field is required and must be a string"
	statusHeaderNotImplemented status = "Jwt header [alg] is not supported"
	statusHeaderBadKid         status = "Jwt header [kid] field is not a string"
	statusPayloadBadBase64     status = "Jwt payload is an invalid Base64url encoded"
	statusPayloadBadJSON       status = "Jwt payload is an invalid JSON"
	statusIssNotString         status = "Jwt payload [iss] field is not a string"
	statusSubNotString         status = "Jwt payload [sub] field is not a string"
	statusIatNotInteger        status = "Jwt payload [iat] field is not an integer"
	statusIatOutOfRange        status = "Jwt payload [iat] field is not a positive 64 bit integer"
	statusNbfNotInteger        status = "Jwt payload [nbf] field is not an integer"
	statusNbfOutOfRange        status = "Jwt payload [nbf] field is not a positive 64 bit integer"
	statusExpNotInteger        status = "Jwt payload [exp] field is not an integer"
	statusExpOutOfRange        status = "Jwt payload [exp] field is not a positive 64 bit integer"
	statusJtiNotString         status = "Jwt payload [jti] field is not a string"
	statusAudNotString         status = "Jwt payload [aud] field is not a string or string list"
	statusSignatureBadBase64   status = "Jwt signature is an invalid Base64url encoded"
	statusNotYetValid          status = "Jwt not yet valid"
	statusExpired              status = "Jwt is expired"
	statusUnknownIssuer        status = "Jwt issuer is not configured"
	statusAudienceNotAllowed   status = "Audiences in Jwt are not allowed"
	statusVerificationFail     status = "Jwt verification fails"
	statusKidAlgMismatch       status = "Jwks doesn't have key to match kid or alg from Jwt"
	statusNoValidKeys          status = "Jwks doesn't have any valid public key"
)

// implementedAlgs is jwt.cc's isImplemented: an alg outside it is refused at
// parse time ("alg: none" among them). HS* and EdDSA pass this step as in
// Envoy but can never verify here: only RSA and EC keys are kept (jwks.go).
var implementedAlgs = map[string]bool{
	"ES256": true, "ES384": true, "ES512": true,
	"HS256": true, "HS384": true, "HS512": true,
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"EdDSA": true,
}

// jwt is a token whose structure and claim types were checked; its signature
// is verified separately, by lestrrat-go/jwx (jwks.go).
type jwt struct {
	raw        string
	alg, kid   string
	iss, sub   string
	audiences  []string
	nbf, exp   uint64
	payloadB64 string
	claims     map[string]any
}

// parseJWT checks a compact JWT the way jwt.cc Jwt::parseFromString does, in
// the same order, so a malformed token gets the same status as from Envoy.
// It only classifies: the signature and the header's meaning are left to
// jwx's verifier, which re-reads the same bytes.
func parseJWT(tok string) (*jwt, status) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, statusBadFormat
	}
	header, ok := decodeSegment(parts[0])
	if !ok {
		return nil, statusHeaderBadBase64
	}
	var h map[string]any
	if err := unmarshalObject(header, &h); err != nil {
		return nil, statusHeaderBadJSON
	}
	j := &jwt{raw: tok, payloadB64: parts[1]}
	alg, ok := h["alg"].(string)
	if !ok {
		return nil, statusHeaderBadAlg
	}
	if !implementedAlgs[alg] {
		return nil, statusHeaderNotImplemented
	}
	j.alg = alg
	if kid, present := h["kid"]; present {
		s, ok := kid.(string)
		if !ok {
			return nil, statusHeaderBadKid
		}
		j.kid = s
	}

	payload, ok := decodeSegment(parts[1])
	if !ok {
		return nil, statusPayloadBadBase64
	}
	if err := unmarshalObject(payload, &j.claims); err != nil {
		return nil, statusPayloadBadJSON
	}
	var st status
	if j.iss, st = optionalString(j.claims, "iss", statusIssNotString); st != statusOK {
		return nil, st
	}
	if j.sub, st = optionalString(j.claims, "sub", statusSubNotString); st != statusOK {
		return nil, st
	}
	if _, st = optionalUint64(j.claims, "iat", statusIatNotInteger, statusIatOutOfRange); st != statusOK {
		return nil, st
	}
	if j.nbf, st = optionalUint64(j.claims, "nbf", statusNbfNotInteger, statusNbfOutOfRange); st != statusOK {
		return nil, st
	}
	if j.exp, st = optionalUint64(j.claims, "exp", statusExpNotInteger, statusExpOutOfRange); st != statusOK {
		return nil, st
	}
	if _, st = optionalString(j.claims, "jti", statusJtiNotString); st != statusOK {
		return nil, st
	}
	switch aud := j.claims["aud"].(type) {
	case nil:
		if _, present := j.claims["aud"]; present {
			return nil, statusAudNotString
		}
	case string:
		j.audiences = []string{aud}
	case []any:
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				return nil, statusAudNotString
			}
			j.audiences = append(j.audiences, s)
		}
	default:
		return nil, statusAudNotString
	}
	if _, ok := decodeSegment(parts[2]); !ok {
		return nil, statusSignatureBadBase64
	}
	return j, statusOK
}

// decodeSegment decodes base64url with or without padding, as absl's
// WebSafeBase64Unescape accepts both.
func decodeSegment(s string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return b, err == nil
}

// unmarshalObject decodes a JSON object (protobuf's Struct parser, which Envoy
// uses, accepts nothing else), keeping numbers exact.
func unmarshalObject(data []byte, v *map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if *v == nil {
		return errNotObject
	}
	// Nothing but whitespace may follow the object.
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return errNotObject
	}
	return nil
}

type jsonError string

func (e jsonError) Error() string { return string(e) }

const errNotObject = jsonError("not a single JSON object")

func optionalString(claims map[string]any, name string, wrongType status) (string, status) {
	v, present := claims[name]
	if !present {
		return "", statusOK
	}
	s, ok := v.(string)
	if !ok {
		return "", wrongType
	}
	return s, statusOK
}

// optionalUint64 is StructUtils::GetUInt64: a number, not negative and below
// 2^64 (fractions truncated, since protobuf holds it as a double).
func optionalUint64(claims map[string]any, name string, wrongType, outOfRange status) (uint64, status) {
	v, present := claims[name]
	if !present {
		return 0, statusOK
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, wrongType
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f < 0 || f >= math.Pow(2, 64) {
		return 0, outOfRange
	}
	return uint64(f), statusOK
}

// checkTime is Jwt::verifyTimeConstraint. Envoy does not check iat, and
// neither does this: the backend's Firebase SDK does.
func (j *jwt) checkTime(now int64) status {
	if now < 0 {
		now = 0
	}
	n := uint64(now)
	skew := uint64(ClockSkew / 1e9)
	if n+skew < j.nbf {
		return statusNotYetValid
	}
	if j.exp != 0 && n > j.exp+skew {
		return statusExpired
	}
	return statusOK
}

// normalizeAudience is check_audience.cc's sanitizeAudience: the scheme
// prefix and one trailing slash do not count.
func normalizeAudience(aud string) string {
	switch {
	case strings.HasPrefix(aud, "http://"):
		aud = aud[len("http://"):]
	case strings.HasPrefix(aud, "https://"):
		aud = aud[len("https://"):]
	}
	return strings.TrimSuffix(aud, "/")
}

// audienceAllowed is CheckAudience::areAudiencesAllowed; no configured
// audiences means any.
func (p *provider) audienceAllowed(jwtAudiences []string) bool {
	if len(p.audiences) == 0 {
		return true
	}
	for _, a := range jwtAudiences {
		for _, c := range p.audiences {
			if normalizeAudience(a) == c {
				return true
			}
		}
	}
	return false
}
