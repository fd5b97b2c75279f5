package frontend

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Partner apps hold an API key and no certificate: they call the public
// frontend's /api/... with x-api-key, and the frontend relays the call to the
// gateway under its own client certificate, where the CUSTOM policy's
// decision service checks the key (istio/authorizationpolicy-apikeys.yaml).
// The relay sends the key and nothing else that names a caller: no bearer
// token, no cookie, and never a client's x-api-app, which only the decision
// service may set.
const (
	headerAPIKey = "X-Api-Key"
	headerAPIApp = "X-Api-App"
)

// partnerHeaders are the gateway's answer headers a partner sees: the body's
// type and the quota. Envoy's own (server, x-envoy-*, www-authenticate
// naming the internal host) stay behind.
var partnerHeaders = []string{"Content-Type", "Cache-Control", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Retry-After"}

func hasAPIKey(r *http.Request) bool { return len(r.Header.Values(headerAPIKey)) > 0 }

// partnerAPI relays one partner call. A call without a key is not a
// partner's: /api/secure.json has its own handler for users, and nothing
// else under /api/ is served to them.
func (s *server) partnerAPI(c echo.Context) error {
	r := c.Request()
	keys := r.Header.Values(headerAPIKey)
	switch {
	case len(keys) == 0:
		return echo.ErrNotFound
	case len(keys) > 1 || strings.TrimSpace(keys[0]) == "":
		return echo.NewHTTPError(http.StatusUnauthorized, "Send one API key in the x-api-key header.").
			SetInternal(errors.New("not exactly one x-api-key"))
	}
	// The key alone; r.Header (with any x-api-app, Authorization, Cookie)
	// is never copied.
	h := http.Header{headerAPIKey: {strings.TrimSpace(keys[0])}}
	resp, err := s.gateway.send(r.Context(), r.Method, r.URL.EscapedPath(), r.URL.RawQuery, nil, h)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "The API is unavailable right now.").SetInternal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendBody))
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "The API is unavailable right now.").SetInternal(err)
	}
	// The API's and the decision service's answers are JSON and are the
	// partner's to read; a gateway's plain-text verdict is logged, not shown.
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && resp.StatusCode != http.StatusOK {
		for _, k := range partnerHeaders[2:] {
			if v := resp.Header.Get(k); v != "" {
				c.Response().Header().Set(k, v)
			}
		}
		return echo.NewHTTPError(resp.StatusCode, http.StatusText(resp.StatusCode)).
			SetInternal(errors.New("the gateway answered " + resp.Status + ": " + snippet(body)))
	}
	for _, k := range partnerHeaders {
		if v := resp.Header.Get(k); v != "" {
			c.Response().Header().Set(k, v)
		}
	}
	c.Response().WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		_, _ = c.Response().Write(body)
	}
	return nil
}
