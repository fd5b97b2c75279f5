package frontend

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// secureJSON keeps the original tutorial's browser fetch working: GET
// /api/secure.json on the frontend returns the backend's secret message for
// the signed-in user. It is not a relay for whatever a caller sends: the
// frontend is public and the gateway is not, so the frontend decides first.
//
//   - Exactly one credential: the session cookie, or an Authorization: Bearer
//     header (what the tutorial's fetch sends). Both may come together only
//     when they carry the same token; two Authorization values, two session
//     cookies, or a header and a cookie naming different tokens are refused
//     (400) rather than resolved by a rule the gateway might not share.
//   - The token is verified here with the same verifier as the session, and
//     its email must be verified, before anything is sent to the gateway.
//   - Answers are the frontend's own: the backend's JSON re-encoded on
//     success, {"error","requestId"} otherwise. The gateway's bodies and
//     headers (Envoy's verdicts, a WWW-Authenticate naming the internal host,
//     x-envoy-*) stay in the log.
func (s *server) secureJSON(c echo.Context) error {
	r := c.Request()
	if hasAPIKey(r) {
		return s.partnerAPI(c) // a partner app's call (partner.go)
	}
	token, err := s.apiToken(r)
	if err != nil {
		return s.apiRefused(c, err)
	}
	tok, err := s.verifier.Verify(r.Context(), token)
	if err != nil {
		return s.apiRefused(c, sessionRefused(err))
	}
	if !emailVerified(tok) {
		return echo.NewHTTPError(http.StatusForbidden, "Verify your email address first: open the link we sent you.").
			SetInternal(errors.New("email not verified"))
	}
	m, _, err := s.gateway.SecureMessage(r.Context(), token)
	switch {
	case errors.Is(err, ErrUnauthorized):
		return s.apiRefused(c, echo.NewHTTPError(http.StatusUnauthorized, "Your sign-in was not accepted. Sign in again.").SetInternal(err))
	case errors.Is(err, ErrForbidden):
		return echo.NewHTTPError(http.StatusForbidden, "You are not allowed to read the secret message.").SetInternal(err)
	case err != nil:
		return echo.NewHTTPError(http.StatusServiceUnavailable, "The backend is unavailable right now.").SetInternal(err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, m)
}

// apiRefused adds the frontend's own challenge to a 401 (RFC 6750 section 3:
// a 401 names the scheme), with no realm that could name an internal host.
func (s *server) apiRefused(c echo.Context, err error) error {
	if he, ok := errors.AsType[*echo.HTTPError](err); ok && he.Code == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	return err
}

// errTwoCredentials is the internal cause of a request carrying two tokens.
var errTwoCredentials = errors.New("more than one credential")

// apiToken returns the one ID token an API request carries, or the error
// to answer with. A request with none is answered 401 here: the gateway
// would only deny it.
func (s *server) apiToken(r *http.Request) (string, error) {
	ambiguous := func(why string) error {
		return echo.NewHTTPError(http.StatusBadRequest, "Send one sign-in: the session cookie or one Authorization: Bearer header.").
			SetInternal(fmt.Errorf("%w: %s", errTwoCredentials, why))
	}
	var header string
	switch vals := r.Header.Values("Authorization"); len(vals) {
	case 0:
	case 1:
		scheme, tok, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
		tok = strings.TrimSpace(tok)
		// An ID token is a JWT: no spaces or commas. One that has them is
		// two values joined, or not a token.
		if !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t,") {
			return "", echo.NewHTTPError(http.StatusUnauthorized, "Send your sign-in as Authorization: Bearer <ID token>.").
				SetInternal(errors.New("Authorization is not one bearer token"))
		}
		header = tok
	default:
		return "", ambiguous("two Authorization headers")
	}
	cookie, err := s.sessionToken(r)
	if errors.Is(err, errTwoCredentials) {
		return "", ambiguous(err.Error())
	}
	if err != nil {
		return "", sessionRefused(err)
	}
	switch {
	case header != "" && cookie != "" && header != cookie:
		return "", ambiguous("the Authorization header and the session cookie carry different tokens")
	case header != "":
		return header, nil
	case cookie != "":
		return cookie, nil
	}
	return "", echo.NewHTTPError(http.StatusUnauthorized, "Sign in to read the secret message.").
		SetInternal(errors.New("no credential"))
}
