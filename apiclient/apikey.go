package apiclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// KeyClient calls the API as a partner app does: through the public
// frontend, with an API key in x-api-key and nothing else (no client
// certificate, no ID token). The frontend relays the key to the gateway,
// where the API-key decision service checks it.
type KeyClient struct {
	http    *http.Client
	key     string
	timeout time.Duration
}

// NewKeyClient returns a client sending key; timeout bounds each call
// (zero: DefaultTimeout).
func NewKeyClient(key string, timeout time.Duration) (*KeyClient, error) {
	if key == "" {
		return nil, errors.New("apiclient: an API key is required")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &KeyClient{http: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}, key: key, timeout: timeout}, nil
}

// Get calls GET rawURL with the key. Answers are classified as Client.Get's:
// a non-2xx answer comes with an *Error (429, the quota used up, is
// KindStatus with the answer's Retry-After in Answer.Header).
func (c *KeyClient) Get(ctx context.Context, rawURL string) (*Answer, error) {
	u, err := keyURL(rawURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Api-Key", c.key)
	req.Header.Set("Accept", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return nil, &Error{Kind: KindNetwork, Err: err}
	}
	return answerOf(res)
}

// Close releases idle connections.
func (c *KeyClient) Close() { c.http.CloseIdleConnections() }

// keyURL accepts https://, or http:// to a loopback host only (devstack's
// frontend): a key sent in clear over a network is a key given away.
func keyURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("apiclient: %q is not a URL", rawURL)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("apiclient: %q: an API key goes over https://, or http:// to this machine only", rawURL)
}

func checkKeyOptions(o Options) error {
	switch {
	case o.URL == "":
		return &UsageError{errors.New("-url is required with -api-key: the frontend's API URL, e.g. http://127.0.0.1:8080/api/secure.json")}
	case o.PrintToken:
		return &UsageError{errors.New("-print-token has no token to print with -api-key")}
	}
	if _, err := keyURL(o.URL); err != nil {
		return &UsageError{err}
	}
	return nil
}
