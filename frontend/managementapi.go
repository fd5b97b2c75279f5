package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"time"
)

// The API-key management API (package apikeys) as the developers' page
// calls it: through the gateway, over mTLS, as the signed-in user. The
// gateway routes managementPrefix to the decision service (istio/
// virtualservice.yaml); the service checks the user's token again and shows
// each user only their own apps.
const managementPrefix = "/api/apikeys/v1"

// Errors of the management API beyond the gateway's (ErrUnauthorized,
// ErrForbidden, ErrUnavailable), for the page to branch on.
var (
	// ErrNoSuchApp: the app does not exist or is another user's; the API
	// answers both alike, so ids cannot be probed.
	ErrNoSuchApp = errors.New("no such app")
	// ErrAppRefused: the API refused the app as asked (a bad name or
	// product list, or too many apps); Code says which.
	ErrAppRefused = errors.New("the app was refused")
)

// APIError is a 4xx the management API answered with its error code. Its
// message is the API's and stays in logs; pages show their own words.
type APIError struct {
	Status int
	Code   string // "bad_request", "too_many_apps", "not_found", ...
}

func (e *APIError) Error() string {
	return fmt.Sprintf("management API answered %d %s", e.Status, e.Code)
}

// appIDPattern is what an app id may look like in a path: the API's ids are
// "app_" and base64url. Anything else (a dot, a slash) is refused before it
// could change which path the gateway is asked for.
var appIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Product is an API product an app can be given a key for.
type Product struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Quota       struct {
		PerMinute int64 `json:"perMinute"`
		PerDay    int64 `json:"perDay"`
	} `json:"quota"`
}

// App is an app as the management API shows it (never its key).
type App struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Products []string   `json:"products"`
	Created  time.Time  `json:"created"`
	Revoked  *time.Time `json:"revoked,omitempty"`
	Active   bool       `json:"active"`
}

// CreatedApp is the answer to creating an app: the only time its key exists
// outside the decision service.
type CreatedApp struct {
	App App    `json:"app"`
	Key string `json:"key"`
}

// AppUsage is an app's usage over a window and what is left of its quotas.
type AppUsage struct {
	App     App           `json:"app"`
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Minutes []UsageMinute `json:"minutes"`
	Quota   []QuotaLeft   `json:"quota"`
}

// UsageMinute is one minute's requests by the status the check answered.
type UsageMinute struct {
	Minute   time.Time        `json:"minute"`
	Requests int64            `json:"requests"`
	ByStatus map[string]int64 `json:"byStatus"`
}

// QuotaLeft is one product's quota and what is left of it now.
type QuotaLeft struct {
	Product         string `json:"product"`
	PerMinute       int64  `json:"perMinute"`
	PerDay          int64  `json:"perDay"`
	RemainingMinute int64  `json:"remainingMinute"`
	RemainingDay    int64  `json:"remainingDay"`
}

// Products lists the API products.
func (g *GatewayClient) Products(ctx context.Context, idToken string) ([]Product, error) {
	var out struct {
		Products []Product `json:"products"`
	}
	err := g.management(ctx, http.MethodGet, "/products", nil, idToken, &out)
	return out.Products, err
}

// Apps lists the user's apps, revoked ones included.
func (g *GatewayClient) Apps(ctx context.Context, idToken string) ([]App, error) {
	var out struct {
		Apps []App `json:"apps"`
	}
	err := g.management(ctx, http.MethodGet, "/apps", nil, idToken, &out)
	return out.Apps, err
}

// CreateApp makes an app with a key for products and returns the key.
func (g *GatewayClient) CreateApp(ctx context.Context, name string, products []string, idToken string) (CreatedApp, error) {
	body, err := json.Marshal(struct {
		Name     string   `json:"name"`
		Products []string `json:"products"`
	}{name, products})
	if err != nil {
		return CreatedApp{}, fmt.Errorf("encoding the new app: %w", err)
	}
	var out CreatedApp
	err = g.management(ctx, http.MethodPost, "/apps", body, idToken, &out)
	return out, err
}

// RevokeApp revokes the app's key: the next request with it is refused.
func (g *GatewayClient) RevokeApp(ctx context.Context, appID, idToken string) (App, error) {
	if !appIDPattern.MatchString(appID) {
		return App{}, fmt.Errorf("%w: app id %q is malformed", ErrNoSuchApp, appID)
	}
	var out App
	err := g.management(ctx, http.MethodPost, "/apps/"+appID+"/revoke", []byte("{}"), idToken, &out)
	return out, err
}

// Usage returns the app's usage over the last window ("1h" or "24h") and
// its quota left.
func (g *GatewayClient) Usage(ctx context.Context, appID, window, idToken string) (AppUsage, error) {
	if !appIDPattern.MatchString(appID) {
		return AppUsage{}, fmt.Errorf("%w: app id %q is malformed", ErrNoSuchApp, appID)
	}
	var out AppUsage
	err := g.management(ctx, http.MethodGet, "/apps/"+appID+"/usage?window="+url.QueryEscape(window), nil, idToken, &out)
	return out, err
}

// management makes one call to the management API and decodes its JSON
// answer into out. Failures wrap ErrUnauthorized, ErrForbidden,
// ErrUnavailable, ErrNoSuchApp or ErrAppRefused (with an *APIError).
func (g *GatewayClient) management(ctx context.Context, method, path string, body []byte, idToken string, out any) error {
	full := managementPrefix + path
	resp, err := g.Send(ctx, method, full, body, idToken)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendBody))
	if err != nil {
		return fmt.Errorf("%w: reading %s %s: %w", ErrUnavailable, method, full, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%w: %s %s answered %d with unreadable JSON: %w", ErrUnavailable, method, full, resp.StatusCode, err)
		}
		return nil
	}
	// The decision service answers {"error": code, "message": ...}; the
	// gateway's own refusals are plain text (Envoy's verdicts).
	var apiErr struct {
		Code string `json:"error"`
	}
	json.Unmarshal(raw, &apiErr)
	switch {
	case resp.StatusCode == http.StatusNotFound && apiErr.Code == "not_found":
		return fmt.Errorf("%w: %s %s", ErrNoSuchApp, method, full)
	case (resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusConflict) && apiErr.Code != "":
		return fmt.Errorf("%w: %w", ErrAppRefused, &APIError{Status: resp.StatusCode, Code: apiErr.Code})
	}
	if err := statusError(resp.StatusCode); err != nil {
		return fmt.Errorf("%w: %s %s answered %d %q", err, method, full, resp.StatusCode, snippet(raw))
	}
	return fmt.Errorf("%w: %s %s answered %d %q", ErrUnavailable, method, full, resp.StatusCode, snippet(raw))
}
