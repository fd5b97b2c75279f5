package gateway

import (
	"errors"
	"strings"
)

// errNulInPath is Envoy's refusal of a path holding %00.
var errNulInPath = errors.New("path contains %00")

// NormalizePath applies Istio's default path normalization, BASE, to the
// escaped path of a request (no query string), as the gateway does before it
// evaluates authorization policies and routes, and forwards the result:
//
//   - percent-encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_",
//     "~") are decoded, once, case-insensitively; %2F and %5C stay encoded
//     (decoding them is DECODE_AND_MERGE_SLASHES, not the default);
//   - %00, or a raw NUL, rejects the request (400);
//   - backslashes become forward slashes;
//   - "." and ".." segments are removed per RFC 3986 section 5.2.4, also when
//     they were written as %2E;
//   - slashes are not merged (that is MERGE_SLASHES, not the default);
//   - bytes that may not appear raw in a path, and a "%" that starts no
//     valid escape, are percent-encoded.
//
// Istio's default is BASE: meshConfig.pathNormalization, and
// https://istio.io/latest/docs/reference/config/security/normalization/ ;
// Envoy's normalize_path:
// https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto#envoy-v3-api-field-extensions-filters-network-http-connection-manager-v3-httpconnectionmanager-normalize-path
func NormalizePath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, `\`) {
		return "", errors.New("path does not start with /")
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p) && isHexDigit(p[i+1]) && isHexDigit(p[i+2]):
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			switch {
			case d == 0:
				return "", errNulInPath
			case isUnreserved(d):
				b.WriteByte(d)
			default:
				b.WriteString(p[i : i+3])
			}
			i += 2
		case c == 0:
			return "", errNulInPath
		case c == '\\':
			b.WriteByte('/')
		case mustEscape(c) || c == '%':
			// A stray "%" (not starting a valid escape) is escaped too, so
			// that it cannot combine with decoded characters into a new
			// escape that a backend would decode a second time. (Go's HTTP
			// server rejects such paths before they get here anyway.)
			b.WriteByte('%')
			b.WriteByte(upperhex[c>>4])
			b.WriteByte(upperhex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return removeDotSegments(b.String()), nil
}

// removeDotSegments is RFC 3986 section 5.2.4 for an absolute path: a "."
// segment disappears, a ".." segment removes the one before it (never above
// the root), and a trailing dot segment leaves the trailing slash.
func removeDotSegments(p string) string {
	if !strings.Contains(p, "/.") {
		return p // the common case pays nothing
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

const upperhex = "0123456789ABCDEF"

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isUnreserved is RFC 3986's unreserved set, the characters whose
// percent-encoded and plain forms are equivalent.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// mustEscape lists what a canonical path never holds raw: controls, space,
// non-ASCII bytes and the delimiters URL canonicalizers escape in paths.
func mustEscape(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '#'
}
